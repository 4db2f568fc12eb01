#!/usr/bin/env bash
# `modeltool run` against numpy on OpenBLAS, whole process, side by side:
# a 1024 -> 1024 -> 1024 -> 1024 relu MLP saved nn.Sequential-style as
# safetensors, 8192 inputs from a .safetensors file to a .safetensors file.
# The numpy side loads with the reference safetensors, computes x @ W.T + b
# with relu between layers and saves. Also reports in-process GFLOP/s of the
# forward pass for batch 1, 256 and 8192 (benches/run_vs_numpy.py).
#
#   PYTHON=.venv/bin/python benches/run_speed.sh [repeats]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
repeats=${1:-5}
cargo build --release -q -p modeltool
bin=$PWD/target/release/modeltool
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$PYTHON" - "$work" <<'PY'
import sys, numpy as np
from safetensors.numpy import save_file
d = sys.argv[1]
rng = np.random.default_rng(0)
w = 1024
tensors = {}
for i in (0, 2, 4):
    tensors[f"{i}.weight"] = (rng.standard_normal((w, w), dtype=np.float32) / np.sqrt(w)).astype(np.float32)
    tensors[f"{i}.bias"] = rng.standard_normal(w, dtype=np.float32) * 0.1
save_file(tensors, f"{d}/mlp.safetensors")
save_file({"input": rng.standard_normal((8192, w), dtype=np.float32)}, f"{d}/input.safetensors")
PY

cat > "$work/numpy_run.py" <<'PY'
import sys
import numpy as np
from safetensors.numpy import load_file, save_file
model, inp, out = sys.argv[1:4]
t = load_file(model)
x = load_file(inp)["input"]
for i in (0, 2, 4):
    x = x @ t[f"{i}.weight"].T + t[f"{i}.bias"]
    if i != 4:
        x = np.maximum(x, 0)
save_file({"output": np.ascontiguousarray(x, dtype=np.float32)}, out)
PY

ours() { "$bin" run "$work/mlp.safetensors" --activation relu --input "$work/input.safetensors" --output "$work/ours.safetensors" --force; }
# numpy as shipped, with OpenBLAS picking its kernel for this CPU (see the
# env notes: OPENBLAS_CORETYPE would hold it back).
theirs() { env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PYTHON" "$work/numpy_run.py" "$work/mlp.safetensors" "$work/input.safetensors" "$work/numpy.safetensors"; }

ours; theirs  # warm the page cache and check both run
declare -a t_ours t_theirs
for _ in $(seq "$repeats"); do
    s=$(date +%s.%N); ours; e=$(date +%s.%N); t_ours+=("$(echo "$e - $s" | bc)")
    s=$(date +%s.%N); theirs; e=$(date +%s.%N); t_theirs+=("$(echo "$e - $s" | bc)")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mo=$(median "${t_ours[@]}"); mt=$(median "${t_theirs[@]}")
flops=$(echo "2 * 8192 * 1024 * 1024 * 3" | bc)

"$PYTHON" - "$work" <<'PY'
import sys, numpy as np
from safetensors.numpy import load_file
d = sys.argv[1]
a = load_file(f"{d}/ours.safetensors")["output"]; b = load_file(f"{d}/numpy.safetensors")["output"]
print(f"results: shape {a.shape}, max |ours - numpy| = {np.abs(a - b).max():.3g} (max |value| {np.abs(b).max():.3g})")
assert np.allclose(a, b, rtol=1e-4, atol=1e-4), "outputs differ"
PY
echo "whole process, 3 x 1024x1024 relu MLP, 8192 inputs, safetensors -> safetensors, median of $repeats:"
printf '  %-22s %8.3f s  (%5.1f GFLOP/s incl. load and save)\n' "modeltool run" "$mo" "$(echo "$flops / $mo / 1000000000" | bc -l)"
printf '  %-22s %8.3f s  (%5.1f GFLOP/s incl. load and save)\n' "numpy + safetensors" "$mt" "$(echo "$flops / $mt / 1000000000" | bc -l)"
printf '  modeltool / numpy time: %.2f\n' "$(echo "$mo / $mt" | bc -l)"

echo "forward pass in process (best of repeats), batch 1, 256, 8192:"
for b in 1 256 8192; do
    reps=$([ "$b" -le 256 ] && echo 200 || echo 5)
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PYTHON" benches/run_vs_numpy.py --batch "$b" --repeats "$reps" | sed -n '2,4p' || true
done
