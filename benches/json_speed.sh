#!/usr/bin/env bash
# Reading and writing the JSON model file, against Python's json + numpy.
#
#   PYTHON=/tmp/venv/bin/python bash benches/json_speed.sh [WORKDIR]
#
# Makes a ~20M-parameter f32 model (13 tensors, the largest 30522x384, values
# like trained weights: normal * 0.02), writes it as safetensors with numpy +
# safetensors, converts it to JSON with modeltool, then times side by side:
#   (a) `modeltool convert m.json m.safetensors`, the whole process;
#   (b) Python: json.load + np.array(..., dtype=np.float32) for every tensor;
#   (c) `modeltool convert m.safetensors m.json` against Python json.dump of
#       {name: arr.tolist()}.
# and prints the ratios, and modeltool's peak RSS against the tensor bytes.
# Needs: $PYTHON (default python3) with numpy and safetensors, /usr/bin/time.
set -euo pipefail

PYTHON=${PYTHON:-python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-$(mktemp -d)}
mkdir -p "$WORK"
BIN="$ROOT/target/release/modeltool"

(cd "$ROOT" && cargo build --release -p modeltool --quiet)

"$PYTHON" - "$WORK" <<'EOF'
import sys, numpy as np
from safetensors.numpy import save_file
rng = np.random.default_rng(0)
shapes = {"embeddings.word.weight": (30522, 384), "embeddings.position.weight": (512, 384)}
for i in range(5):
    shapes[f"layer.{i}.up.weight"] = (1536, 384)
    shapes[f"layer.{i}.down.weight"] = (384, 1536)
shapes["classifier.weight"] = (5632, 384)
tensors = {n: (rng.standard_normal(s, dtype=np.float32) * np.float32(0.02)) for n, s in shapes.items()}
save_file(tensors, f"{sys.argv[1]}/orig.safetensors")
print(f"model: {len(tensors)} tensors, {sum(t.size for t in tensors.values())} f32 parameters")
EOF

cd "$WORK"
rm -f m.json m.safetensors m2.json
"$BIN" convert orig.safetensors m.json >/dev/null
TENSOR_BYTES=$(( $(stat -c %s orig.safetensors) - 8 - $("$PYTHON" -c "import struct,sys; print(struct.unpack('<Q', open('orig.safetensors','rb').read(8))[0])") ))
echo "JSON file: $(( $(stat -c %s m.json) / 1000000 )) MB, tensor bytes: $(( TENSOR_BYTES / 1000000 )) MB"
cat m.json >/dev/null # warm the page cache

# Best of 3 for modeltool, wall seconds and peak RSS in KB.
best() {
    local best_t="" best_m=""
    for _ in 1 2 3; do
        rm -f "$2"
        local line
        line=$( { /usr/bin/time -f '%e %M' "$BIN" convert "$1" "$2" >/dev/null; } 2>&1 | tail -n 1)
        local t=${line% *} m=${line#* }
        if [ -z "$best_t" ] || awk "BEGIN{exit !($t < $best_t)}"; then best_t=$t best_m=$m; fi
    done
    echo "$best_t $best_m"
}

read -r READ_T READ_KB < <(best m.json m.safetensors)
cmp <("$PYTHON" -c "
import sys
from safetensors.numpy import load_file
a, b = load_file('orig.safetensors'), load_file('m.safetensors')
assert a.keys() == b.keys() and all((a[k].view('u4') == b[k].view('u4')).all() for k in a)
print('bits equal')") <(echo "bits equal")

PY_READ_T=$("$PYTHON" - <<'EOF'
import json, time, numpy as np
start = time.perf_counter()
with open("m.json") as f:
    model = json.load(f)
arrays = {n: np.array(t["data"], dtype=np.float32) for n, t in model["tensors"].items()}
print(f"{time.perf_counter() - start:.2f}")
EOF
)

read -r WRITE_T WRITE_KB < <(best orig.safetensors m2.json)
PY_WRITE_T=$("$PYTHON" - <<'EOF'
import json, time
from safetensors.numpy import load_file
tensors = load_file("orig.safetensors")
start = time.perf_counter()
with open("py.json", "w") as f:
    json.dump({n: a.tolist() for n, a in tensors.items()}, f)
print(f"{time.perf_counter() - start:.2f}")
EOF
)
rm -f py.json

ratio() { awk "BEGIN{printf \"%.1f\", $1 / ($2 > 0 ? $2 : 0.005)}"; }
rss() { awk "BEGIN{printf \"%.2f\", $1 * 1024 / $2}"; }
echo
printf '%-44s %8s %8s %12s\n' "" "seconds" "peak MB" "RSS/tensors"
printf '%-44s %8s %8d %12s\n' "(a) modeltool convert m.json m.safetensors" "$READ_T" $((READ_KB / 1024)) "$(rss "$READ_KB" "$TENSOR_BYTES")"
printf '%-44s %8s\n' "(b) python json.load + np.array (f32)" "$PY_READ_T"
printf '%-44s %8s %8d %12s\n' "(c) modeltool convert m.safetensors m.json" "$WRITE_T" $((WRITE_KB / 1024)) "$(rss "$WRITE_KB" "$TENSOR_BYTES")"
printf '%-44s %8s\n' "    python json.dump(arr.tolist())" "$PY_WRITE_T"
echo
echo "read:  modeltool is $(ratio "$PY_READ_T" "$READ_T")x faster than python (goal: >= 10x)"
echo "write: modeltool is $(ratio "$PY_WRITE_T" "$WRITE_T")x faster than python"
