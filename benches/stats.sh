#!/usr/bin/env bash
# `modeltool stats` and `modeltool diff` against numpy, whole process against
# whole process (benches/measure.py: alternating runs, medians, peak RSS from
# /usr/bin/time):
#   - stats of a MiniLM-shaped 91 MB f32 model (104 tensors) vs load_file +
#     per-tensor min/max/mean/std/isnan/isinf in float64: >= 3x faster;
#   - stats of a 4 GiB file (4 tensors of 1 GiB of f32): >= 3x faster than
#     numpy, and below 512 MiB peak RSS;
#   - diff of the 91 MB model against itself cast to bf16 and back to f32
#     (every value compared) vs the numpy equivalent: >= 3x faster.
#
#   bash benches/stats.sh            # REPS=N (default 5), VENV=DIR, QUICK=1 (small 4 GiB stand-in)
# Inputs are made once into target/bench-cache/stats/. Exit 1 when a target
# is not met.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
REPS=${REPS:-5}
QUICK=${QUICK:-0}
PY=${VENV:+$VENV/bin/python}
PY=${PY:-${MODELTOOL_PYTHON:-python3}}
CACHE=$ROOT/target/bench-cache/stats
OUT=$ROOT/target/bench-results/stats-$(date -u +%Y%m%dT%H%M%S)
mkdir -p "$CACHE" "$OUT"
die() { echo "error: $*" >&2; exit 2; }
[[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time) is needed for peak RSS"
"$PY" -c 'import numpy, safetensors' 2>/dev/null || die "$PY lacks numpy or safetensors (set VENV or MODELTOOL_PYTHON)"

cargo build --release -p modeltool >&2
BIN=$OUT/modeltool
cp target/release/modeltool "$BIN"

if [[ ! -f $CACHE/minilm.safetensors ]]; then
    "$PY" benches/inputs.py minilm "$CACHE/minilm.safetensors" >&2
fi
if [[ ! -f $CACHE/minilm_bf16_f32.safetensors ]]; then
    "$BIN" convert "$CACHE/minilm.safetensors" "$CACHE/minilm_bf16.safetensors" --dtype bf16 >&2
    # Back to F32: the same dtype as the original, every value compared.
    "$BIN" convert "$CACHE/minilm_bf16.safetensors" "$CACHE/minilm_bf16_f32.safetensors" --dtype f32 >&2
fi
if [[ $QUICK == 1 ]]; then BIG=$CACHE/big_quick.safetensors; ROWS=2048; else BIG=$CACHE/big.safetensors; ROWS=16384; fi
if [[ ! -f $BIG ]]; then
    "$PY" benches/make_random_safetensors.py "$BIG" --tensors 4 --rows "$ROWS" --cols 16384 >&2
fi

M=$CACHE/minilm.safetensors
C=$CACHE/minilm_bf16_f32.safetensors
S=benches/stats_numpy.py
status=0
"$PY" benches/measure.py --reps "$REPS" --title "stats: 91 MB MiniLM-shaped f32 model" \
    --json "$OUT/stats_minilm.json" \
    --check "stats >= 3x numpy: t.numpy / t.ours >= 3" \
    --run ours "$BIN stats $M --format json >/dev/null" \
    --run numpy "$PY $S stats $M" || status=1
"$PY" benches/measure.py --reps "$(( REPS < 3 ? REPS : 3 ))" --warmup 1 --title "stats: $(du -h "$BIG" | cut -f1) of f32 (4 tensors)" \
    --json "$OUT/stats_big.json" \
    --check "stats >= 3x numpy: t.numpy / t.ours >= 3" \
    --check "peak RSS < 512 MiB: rss.ours < 512" \
    --run ours "$BIN stats $BIG --format json >/dev/null" \
    --run numpy "$PY $S stats $BIG" || status=1
"$PY" benches/measure.py --reps "$REPS" --title "diff: 91 MB model vs its bf16 round trip" \
    --json "$OUT/diff_minilm.json" \
    --check "diff >= 3x numpy: t.numpy / t.ours >= 3" \
    --run ours "$BIN diff $M $C --format json >/dev/null; test \$? -eq 1" \
    --run numpy "$PY $S diff $M $C" || status=1
echo "figures: $OUT" >&2
exit $status
