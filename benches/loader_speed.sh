#!/usr/bin/env bash
# The loader against Python's safetensors, whole processes, side by side.
#
#   PYTHON=/tmp/venv/bin/python benches/loader_speed.sh [WORKDIR]
#
# (a) A MiniLM-shaped f32 model (22,713,728 parameters, 91 MB, written by
#     Python safetensors), every tensor touched. modeltool side: the loader's
#     example program if crates/loader/examples/ has one (touch_all, touch or
#     load_all, run as `EXAMPLE MODEL`), else `modeltool verify`, which reads
#     every byte and hashes it. Python side: safe_open + get_tensor of every
#     tensor; the same plus hashlib.sha256 of each (the work verify does);
#     and safetensors.numpy.load_file.
# (b) The GPT-3-shaped checkpoint of make_gpt3_shards.py (73 sparse shards,
#     real headers, 349 GB apparent): `modeltool inspect --tensors` (human and
#     --format json) against list_shards.py. Requirement: modeltool >= 5x
#     faster. Then shows that no tensor data is read: the shards' pages in the
#     page cache after each run (fincore, cache emptied first), and the bytes
#     read from shard files and shard mappings made (strace).
# Medians of REPS (default 7) alternating runs, hot page cache. Wall times are
# whole processes; peak RSS is /usr/bin/time's %M. Large files go to WORKDIR
# (default: a new folder under /tmp), removed at the end unless KEEP=1.
set -euo pipefail
source "$(dirname "$0")/common.sh"

setup_work loader "${1:-}"
setup_bin "$WORK"
machine_note
STATUS=0

# ---------------------------------------------------------------- (a)
"$PYTHON" - "$WORK/minilm.safetensors" <<'EOF'
import sys, numpy as np
from safetensors.numpy import save_file
rng = np.random.default_rng(0)
d, ff, vocab = 384, 1536, 30522
shapes = {"embeddings.word_embeddings.weight": (vocab, d),
          "embeddings.position_embeddings.weight": (512, d),
          "embeddings.token_type_embeddings.weight": (2, d),
          "embeddings.LayerNorm.weight": (d,), "embeddings.LayerNorm.bias": (d,)}
for i in range(6):
    p = f"encoder.layer.{i}."
    for m in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
        shapes[p + m + ".weight"], shapes[p + m + ".bias"] = (d, d), (d,)
    shapes[p + "attention.output.LayerNorm.weight"] = shapes[p + "attention.output.LayerNorm.bias"] = (d,)
    shapes[p + "intermediate.dense.weight"], shapes[p + "intermediate.dense.bias"] = (ff, d), (ff,)
    shapes[p + "output.dense.weight"], shapes[p + "output.dense.bias"] = (d, ff), (d,)
    shapes[p + "output.LayerNorm.weight"] = shapes[p + "output.LayerNorm.bias"] = (d,)
shapes["pooler.dense.weight"], shapes["pooler.dense.bias"] = (d, d), (d,)
t = {n: rng.standard_normal(s, dtype=np.float32) * np.float32(0.02) for n, s in shapes.items()}
t["embeddings.position_ids"] = np.arange(512, dtype=np.int64).reshape(1, 512)
save_file(t, sys.argv[1], metadata={"format": "pt"})
print(f"MiniLM-shaped model: {len(t)} tensors, {sum(a.size for a in t.values()):,} parameters")
EOF
M=$WORK/minilm.safetensors
echo "file: $M, $(stat -c %s "$M") bytes"

cat >"$WORK/py_get_tensor.py" <<'EOF'
import sys
from safetensors import safe_open
with safe_open(sys.argv[1], framework="numpy") as f:
    n = sum(f.get_tensor(k).nbytes for k in f.keys())
print(n)
EOF
cat >"$WORK/py_get_tensor_sha.py" <<'EOF'
import hashlib, sys
from safetensors import safe_open
with safe_open(sys.argv[1], framework="numpy") as f:
    sums = {k: hashlib.sha256(f.get_tensor(k).data).hexdigest() for k in f.keys()}
print(len(sums))
EOF
cat >"$WORK/py_load_file.py" <<'EOF'
import sys
from safetensors.numpy import load_file
print(sum(a.nbytes for a in load_file(sys.argv[1]).values()))
EOF

# The loader's example program, if the lead has written one.
TOUCH="" TOUCH_NAME=""
if [[ -d $ROOT/crates/loader/examples ]]; then
    for name in touch_all touch load_all; do
        if [[ -f $ROOT/crates/loader/examples/$name.rs ]]; then
            if (cd "$ROOT" && cargo build --release -p modeltool-loader --example "$name" --quiet); then
                cp "$ROOT/target/release/examples/$name" "$WORK/$name"
                TOUCH="$WORK/$name" TOUCH_NAME=$name
            else
                echo "WARNING: crates/loader/examples/$name.rs does not build; using modeltool verify" >&2
            fi
            break
        fi
    done
fi
cat "$M" >/dev/null # hot page cache for everyone
RUNS=()
if [[ -n $TOUCH ]]; then
    echo "modeltool side: the loader example \`$TOUCH_NAME\` (crates/loader/examples/$TOUCH_NAME.rs)"
    RUNS+=(--run "mt_$TOUCH_NAME" "$TOUCH $M" --run "mt_${TOUCH_NAME}_no_mmap" "$TOUCH $M --no-mmap")
else
    echo "modeltool side: \`modeltool verify\` (crates/loader has no examples/ program): reads and sha256-hashes every tensor byte"
fi
RUNS+=(--run mt_verify "$BIN verify $M")
RUNS+=(--run mt_inspect_open_only "$BIN inspect $M")
RUNS+=(--run py_safe_open_get_tensor "$PYTHON $WORK/py_get_tensor.py $M")
RUNS+=(--run py_get_tensor_sha256 "$PYTHON $WORK/py_get_tensor_sha.py $M")
RUNS+=(--run py_load_file "$PYTHON $WORK/py_load_file.py $M")
"$PYTHON" "$MEASURE" --title "(a) open a 91 MB f32 MiniLM-shaped model and touch every tensor" "${RUNS[@]}" || STATUS=1
echo "notes: touch_all reads every tensor as f32 (borrowed from the map when aligned) and sums it; with"
echo "  --no-mmap it reads into owned buffers. get_tensor copies each tensor out of Python's map into numpy."
echo "  mt_inspect_open_only reads headers only (the cost of opening); py_get_tensor_sha256 does the work verify does."
echo "  Peak RSS of a mapped reader counts the mapped file pages it touched (page cache, shared), not only heap."

# ---------------------------------------------------------------- (b)
G=$WORK/gpt3
"$PYTHON" "$ROOT/benches/make_gpt3_shards.py" "$G"
DU_BEFORE=$(du -sk "$G" | cut -f1)
"$PYTHON" "$MEASURE" --title "(b) list every tensor of the GPT-3-shaped checkpoint (73 shards, 1,156 tensors)" \
    --run mt_inspect_tensors "$BIN inspect $G --tensors" \
    --run mt_inspect_tensors_json "$BIN inspect $G --tensors --format json" \
    --run py_list_shards "$PYTHON $ROOT/benches/list_shards.py $G" \
    --check "inspect --tensors >= 5x faster: t.py_list_shards / t.mt_inspect_tensors >= 5" \
    --check "inspect --tensors --format json >= 5x faster: t.py_list_shards / t.mt_inspect_tensors_json >= 5" \
    || STATUS=1
DU_AFTER=$(du -sk "$G" | cut -f1)

# Is the data touched? Empty the page cache of these shards (only these
# files: posix_fadvise DONTNEED), run once, and count the shards' pages that
# are now cached; and trace the reads and maps of shard files.
evict() { "$PYTHON" -c '
import os, sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY); os.fsync(fd)  # dirty pages would stay cached
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' "$G"/*.safetensors; }
cached() { fincore -b -n -o RES "$G"/*.safetensors | awk '{s += $1} END {print s + 0}'; }
traced() { # bytes read from shard files by read-family calls; shard mmaps
    rm -f "$WORK"/trace.*
    strace -ff -y -qq -e trace=read,pread64,readv,preadv,preadv2,mmap -o "$WORK/trace" "$@" >/dev/null 2>&1
    cat "$WORK"/trace.* | awk '
        /\.safetensors>/ && /^(read|pread64|readv|preadv|preadv2)\(/ { n = $NF; if (n ~ /^[0-9]+$/) s += n }
        /\.safetensors>/ && /^mmap\(/ { m++ }
        END { printf "%d %d\n", s, m }'; }
HEADERS=$("$PYTHON" -c '
import glob, struct, sys
print(sum(8 + struct.unpack("<Q", open(p, "rb").read(8))[0] for p in glob.glob(sys.argv[1] + "/*.safetensors")))' "$G")
APPARENT=$(du -sb --apparent-size "$G" | cut -f1)
echo
echo "== (b) is the tensor data touched? (apparent size $APPARENT bytes; headers $HEADERS bytes) =="
printf '%-26s %16s %18s %14s %12s\n' command "cached after (B)" "read() from shards" "shard mmaps" "majflt/fs in"
for spec in "mt_inspect_tensors|$BIN inspect $G --tensors" \
            "mt_inspect_tensors_json|$BIN inspect $G --tensors --format json" \
            "py_list_shards|$PYTHON $ROOT/benches/list_shards.py $G"; do
    id=${spec%%|*} cmd=${spec#*|}
    evict
    /usr/bin/time -f '%F %I' -o "$WORK/tv" sh -c "$cmd >/dev/null 2>&1"
    c=$(cached)
    read -r rb maps < <(traced sh -c "$cmd")
    printf '%-26s %16s %18s %14s %12s\n' "$id" "$c" "$rb" "$maps" "$(tr ' ' / <"$WORK/tv")"
done
echo "du -sk of the shards: before ${DU_BEFORE} KB, after ${DU_AFTER} KB (sparse; reading does not allocate)"
echo "cached after: bytes of the shards in the page cache after one run that started with none (fincore);"
echo "read() from shards: bytes returned by read/pread64/readv calls on shard files (strace -y);"
echo "shard mmaps: mmap calls on shard files (a mapping costs nothing until pages are touched; see 'cached after')."
exit $STATUS
