#!/usr/bin/env bash
# Peak memory and speed of `modeltool inspect` on a 175B-parameter checkpoint.
#
#   PYTHON=/tmp/venv/bin/python benches/inspect_memory.sh [WORKDIR]
#
# Builds the GPT-3-shaped checkpoint of make_gpt3_shards.py (73 sparse
# shards, 1,156 tensors, 349 GB apparent, real headers) and runs
# `modeltool inspect` on it four ways (the summary, --tensors, and both with
# --format json), side by side with Python listing the same headers:
# list_shards.py (safetensors safe_open, the requirement's peer) and, for
# reference, a bare reader (struct + json, no safetensors) that does the least
# Python can do. Requirements: peak RSS of every inspect well under 64 MiB;
# inspect >= 5x faster than list_shards.py. Medians of REPS (default 7)
# alternating runs; peak RSS is /usr/bin/time's %M.
set -euo pipefail
source "$(dirname "$0")/common.sh"

setup_work inspect "${1:-}"
setup_bin "$WORK"
machine_note

G=$WORK/gpt3
"$PYTHON" "$ROOT/benches/make_gpt3_shards.py" "$G"
cat >"$WORK/bare_headers.py" <<'EOF'
# The least Python can do: read each shard's 8-byte length and JSON header.
import json, os, struct, sys
root = sys.argv[1]
index = json.load(open(os.path.join(root, "model.safetensors.index.json")))
count = 0
for shard in sorted(set(index["weight_map"].values())):
    with open(os.path.join(root, shard), "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    for name, t in header.items():
        if name != "__metadata__":
            print(name, t["dtype"], t["shape"])
            count += 1
print(count, "tensors", file=sys.stderr)
EOF

status=0
"$PYTHON" "$MEASURE" --title "inspect on the GPT-3-shaped checkpoint: peak RSS and time against Python" \
    --run mt_inspect "$BIN inspect $G" \
    --run mt_inspect_tensors "$BIN inspect $G --tensors" \
    --run mt_inspect_json "$BIN inspect $G --format json" \
    --run mt_inspect_tensors_json "$BIN inspect $G --tensors --format json" \
    --run py_list_shards "$PYTHON $ROOT/benches/list_shards.py $G" \
    --run py_bare_headers "$PYTHON $WORK/bare_headers.py $G" \
    --check "peak RSS of inspect < 64 MiB: max(rss.mt_inspect, rss.mt_inspect_tensors, rss.mt_inspect_json, rss.mt_inspect_tensors_json) < 64" \
    --check "inspect >= 5x faster than list_shards.py: t.py_list_shards / t.mt_inspect >= 5" \
    --check "inspect --tensors >= 5x faster than list_shards.py: t.py_list_shards / t.mt_inspect_tensors >= 5" \
    --check "inspect --tensors --format json >= 5x faster than list_shards.py: t.py_list_shards / t.mt_inspect_tensors_json >= 5" \
    || status=$?
echo "py_bare_headers is for reference only (no requirement): its ÷ ours column is how much faster inspect is."
echo "header bytes in all shards: $("$PYTHON" -c '
import glob, struct, sys
print(sum(8 + struct.unpack("<Q", open(p, "rb").read(8))[0] for p in glob.glob(sys.argv[1] + "/*.safetensors")))' "$G")"
/usr/bin/time -v "$BIN" inspect "$G" --tensors --format json 2>"$WORK/tv" >/dev/null
echo "/usr/bin/time -v modeltool inspect --tensors --format json:"
grep -E 'Maximum resident|Major|File system inputs' "$WORK/tv" | sed 's/^\s*/  /'
exit $status
