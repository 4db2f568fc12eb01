#!/usr/bin/env bash
# PyTorch checkpoints: modeltool against torch on a GPT-2-medium-shaped
# `pytorch_model.bin` (~516 MB of f32, 6 blocks, tied lm_head; made by torch
# with realistic values: benches/make_gpt2_pt.py).
#
#   bash benches/pytorch.sh        # needs a Python with torch and safetensors
#
# 1. convert to safetensors, whole process: `modeltool convert` against
#    `torch.load(weights_only=True)` + `save_file` (benches/torch_convert.py);
#    wall time and peak RSS from /usr/bin/time -v, best of $REPS each, warm
#    page cache for both.
# 2. `modeltool inspect`, cold: the file is evicted from the page cache
#    (dd oflag=nocache ... count=0), inspected once, and `fincore` counts
#    the pages then cached: what inspect read, kernel read-ahead included.
#
# Environment: PYTHON (default $MODELTOOL_PYTHON, else .venv/bin/python),
# BIN (default target/release/modeltool, built if missing), WORK (scratch
# folder, default target/bench-cache/pytorch), REPS (default 3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-${MODELTOOL_PYTHON:-.venv/bin/python}}
BIN=${BIN:-target/release/modeltool}
WORK=${WORK:-target/bench-cache/pytorch}
REPS=${REPS:-3}
mkdir -p "$WORK"
[ -x "$BIN" ] || cargo build --release -p modeltool
IN="$WORK/pytorch_model.bin"
if [ ! -f "$IN" ] || [ benches/make_gpt2_pt.py -nt "$IN" ]; then
    echo "making $IN"
    "$PYTHON" benches/make_gpt2_pt.py "$IN"
fi
SIZE=$(stat -c %s "$IN")
echo "input: $IN, $SIZE bytes"

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

# Best (lowest) wall time and peak RSS of REPS runs, alternating tools.
declare -A best_t best_m
for rep in $(seq "$REPS"); do
    for tool in modeltool torch; do
        out="$WORK/out-$tool.safetensors"
        rm -f "$out"
        if [ "$tool" = modeltool ]; then
            read -r t m < <(measure "$BIN" convert "$IN" "$out")
        else
            read -r t m < <(measure "$PYTHON" benches/torch_convert.py "$IN" "$out")
        fi
        echo "  run $rep $tool: ${t}s, peak RSS ${m} KB"
        if [ -z "${best_t[$tool]:-}" ] || awk "BEGIN{exit !($t < ${best_t[$tool]})}"; then
            best_t[$tool]=$t
        fi
        if [ -z "${best_m[$tool]:-}" ] || [ "$m" -lt "${best_m[$tool]}" ]; then
            best_m[$tool]=$m
        fi
    done
done
"$PYTHON" - "$WORK/out-modeltool.safetensors" "$WORK/out-torch.safetensors" <<'PY'
import sys
from safetensors.torch import load_file
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
assert a.keys() == b.keys(), "same tensors"
for k in a:
    assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].view(-1).view(__import__("torch").uint8).equal(b[k].view(-1).view(__import__("torch").uint8)), k
print(f"  outputs hold the same {len(a)} tensors, bit for bit")
PY

echo
echo "convert pytorch_model.bin -> model.safetensors (best of $REPS):"
printf "  %-10s %8ss  %8s MB\n" modeltool "${best_t[modeltool]}" "$((best_m[modeltool] / 1024))"
printf "  %-10s %8ss  %8s MB\n" torch "${best_t[torch]}" "$((best_m[torch] / 1024))"
awk -v a="${best_t[torch]}" -v b="${best_t[modeltool]}" -v c="${best_m[torch]}" -v d="${best_m[modeltool]}" \
    'BEGIN { printf "  speed-up %.1fx (target >= 3x), peak memory %.2f of torch'"'"'s (target <= 0.5)\n", a / b, d / c }'

echo
echo "inspect, cold page cache:"
dd of="$IN" oflag=nocache conv=notrunc,fdatasync count=0 status=none
before=$(fincore --bytes --noheadings --output RES "$IN")
"$BIN" inspect "$IN" >/dev/null
after=$(fincore --bytes --noheadings --output RES "$IN")
echo "  cached before: $before bytes; after inspect: $after bytes of $SIZE"
awk -v a="$after" -v s="$SIZE" 'BEGIN { printf "  inspect read %.3f%% of the file (target < 1%%)\n", 100 * a / s }'
