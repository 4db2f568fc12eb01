#!/usr/bin/env bash
# GGUF: modeltool against the `gguf` Python package (llama.cpp's gguf-py).
#
#   bash benches/gguf.sh        # needs a Python with the gguf package
#
# 1. inspect of a LLaMA-7B-shaped Q4_K_M GGUF (291 tensors, a 32k-token
#    vocabulary with scores and token types, llama metadata; written by the
#    package's GGUFWriter with tests/python/gguf_llama.py, its 4 GB of tensor
#    data left a hole: a sparse file) against `gguf-dump`, whole process:
#    `modeltool inspect` (targets: at least 20x faster, peak RSS under 64 MiB).
# 2. dequantizing a Q4_K tensor of 100M values (random blocks with finite
#    scales, rows of 4096) to f32, whole process: modeltool-format's
#    `gguf_dequant` example against `gguf.quants.dequantize`
#    (benches/gguf_dequant.py), both reading the blocks from the same file
#    (target: at least 10x faster); the outputs' sha256 are compared first.
# Wall time and peak RSS from /usr/bin/time -v, median of $REPS runs each,
# the two tools alternating, warm page cache for both.
#
# Environment: PYTHON (default $MODELTOOL_PYTHON, else .venv/bin/python),
# BIN (default target/release/modeltool), DEQUANT (default
# target/release/examples/gguf_dequant; both built if missing), WORK
# (scratch folder, default target/bench-cache/gguf), REPS (default 5),
# VALUES (default 100000000).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-${MODELTOOL_PYTHON:-.venv/bin/python}}
BIN=${BIN:-target/release/modeltool}
DEQUANT=${DEQUANT:-target/release/examples/gguf_dequant}
WORK=${WORK:-target/bench-cache/gguf}
REPS=${REPS:-5}
VALUES=${VALUES:-100000000}
GGUF_DUMP=$(dirname "$PYTHON")/gguf-dump
mkdir -p "$WORK"
[ -x "$BIN" ] || cargo build --release -p modeltool
[ -x "$DEQUANT" ] || cargo build --release -p modeltool-format --example gguf_dequant
[ -x "$GGUF_DUMP" ] || { echo "error: no gguf-dump beside $PYTHON" >&2; exit 2; }

MODEL="$WORK/llama7b-q4_k_m.gguf"
if [ ! -f "$MODEL" ] || [ tests/python/gguf_llama.py -nt "$MODEL" ]; then
    echo "making $MODEL"
    "$PYTHON" tests/python/gguf_llama.py "$MODEL" >"$WORK/llama7b.json"
fi
BLOCKS="$WORK/q4k-$VALUES.bin"
if [ ! -f "$BLOCKS" ] || [ tests/python/gguf_reference.py -nt "$BLOCKS" ]; then
    echo "making $BLOCKS"
    "$PYTHON" tests/python/gguf_reference.py bench "$VALUES" "$BLOCKS" >"$WORK/q4k.json"
fi
echo "inputs: $MODEL ($(stat -c %s "$MODEL") bytes, $(du -k "$MODEL" | cut -f1) KB on disk), $BLOCKS ($(stat -c %s "$BLOCKS") bytes)"

# Runs a command under /usr/bin/time -v; prints "SECONDS KB".
measure() {
    local log
    log=$(mktemp)
    /usr/bin/time -v "$@" >/dev/null 2>"$log" || { cat "$log" >&2; rm -f "$log"; return 1; }
    awk -F': ' '
        /Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; wall = s }
        /Maximum resident set size/ { rss = $2 }
        END { printf "%.3f %d\n", wall, rss }' "$log"
    rm -f "$log"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# compare TITLE TARGET_X MEM_TARGET_KB 'A' 'B': alternates A (ours) and B
# (the peer) REPS times; prints medians, the ratio and whether targets hold.
compare() {
    local title=$1 target=$2 mem_target=$3 a=$4 b=$5 ta=() ma=() tb=() mb=() t m
    echo
    echo "$title (median of $REPS, whole process):"
    for rep in $(seq "$REPS"); do
        # shellcheck disable=SC2086 # the commands split into words on purpose
        read -r t m < <(measure $a)
        ta+=("$t") ma+=("$m")
        # shellcheck disable=SC2086
        read -r t m < <(measure $b)
        tb+=("$t") mb+=("$m")
        echo "  run $rep: modeltool ${ta[-1]}s ${ma[-1]} KB, gguf ${tb[-1]}s ${mb[-1]} KB"
    done
    local mta mtb mma mmb
    mta=$(printf '%s\n' "${ta[@]}" | median)
    mtb=$(printf '%s\n' "${tb[@]}" | median)
    mma=$(printf '%s\n' "${ma[@]}" | median)
    mmb=$(printf '%s\n' "${mb[@]}" | median)
    printf "  %-10s %8ss  %8.1f MB peak\n" modeltool "$mta" "$(awk -v k="$mma" 'BEGIN { print k / 1024 }')"
    printf "  %-10s %8ss  %8.1f MB peak\n" gguf "$mtb" "$(awk -v k="$mmb" 'BEGIN { print k / 1024 }')"
    awk -v a="$mta" -v b="$mtb" -v x="$target" -v m="$mma" -v mt="$mem_target" 'BEGIN {
        r = (a > 0) ? b / a : 0
        printf "  speed-up %.1fx (target >= %sx): %s\n", r, x, (r >= x) ? "met" : "NOT MET"
        if (mt > 0) printf "  modeltool peak %.1f MiB (target < %.0f MiB): %s\n", m / 1024, mt / 1024, (m < mt) ? "met" : "NOT MET"
    }'
}

compare "inspect a 7B-shaped Q4_K_M GGUF: modeltool inspect vs gguf-dump" 20 65536 \
    "$BIN inspect $MODEL" "$PYTHON $GGUF_DUMP $MODEL"

ours=$("$DEQUANT" Q4_K "$BLOCKS" --runs 1 | sed -n 's/.*"sha256": "\([0-9a-f]*\)".*/\1/p')
theirs=$("$PYTHON" benches/gguf_dequant.py Q4_K "$BLOCKS" --sha256 | sed -n 's/.*"sha256": "\([0-9a-f]*\)".*/\1/p')
[ -n "$ours" ] && [ "$ours" = "$theirs" ] || { echo "error: dequantized outputs differ: $ours vs $theirs" >&2; exit 1; }
echo
echo "dequantized Q4_K outputs are equal, bit for bit (sha256 $ours)"
compare "dequantize $VALUES Q4_K values to f32: gguf_dequant vs gguf.quants.dequantize" 10 0 \
    "$DEQUANT Q4_K $BLOCKS --runs 1 --no-sha256" "$PYTHON benches/gguf_dequant.py Q4_K $BLOCKS"
