#!/usr/bin/env bash
# Every benchmark, side by side with its peer, in one command; writes
# docs/PERFORMANCE.md.
#
#   bash benches/all.sh               # the full suite, ~40 minutes on 2 cores
#   QUICK=1 bash benches/all.sh       # small inputs, 3 repetitions: a smoke test
#
# 1. Builds the release binary and the three example programs it times
#    (modeltool, modeltool-loader's touch_all, modeltool-net's forward_bench,
#    modeltool-format's gguf_dequant)
#    and copies them into a scratch folder, so that a concurrent
#    `cargo build` cannot swap them mid-run.
# 2. Sets up the Python peers in a virtual environment ($VENV, default
#    target/bench-venv) from tests/python/requirements.txt (the pinned
#    safetensors and numpy, whose wheel bundles OpenBLAS), and checks that
#    `openssl`, `sha256sum` and /usr/bin/time are there.
# 3. Makes the inputs once into target/bench-cache/{full,quick}/ and reuses
#    them on later runs (remade when the scripts that make them change):
#    a ~20M-parameter f32 model, a MiniLM-shaped 91 MB model, the sparse
#    GPT-3-shaped 175B checkpoint, 512 MiB and 4 GiB files of random f32
#    with stored checksums, and a 1024x3 MLP with 8192 inputs.
# 4. Runs each group of commands with benches/measure.py: every command once
#    per repetition, in an order that rotates between repetitions, medians
#    (and min/max) of the wall time and peak RSS (/usr/bin/time's %M) of the
#    whole process. Each group's figures go to a JSON file in the results
#    folder, target/bench-results/DATE[-quick]/ (`latest` links to it).
# 5. benches/report.py renders docs/PERFORMANCE.md from that folder: the
#    machine, one table of speed rows (ours / peer / ratio / target / met?),
#    one of memory peaks, and how each figure was taken.
#
# Environment:
#   QUICK=1      small inputs and 3 repetitions; the report goes to the results
#                folder, not docs/, unless OUT is set
#   ONLY=a,b     run only these groups (the report, in the results folder, then
#                has only their rows):
#                  json    convert a ~20M-parameter model JSON <-> safetensors (#2)
#                  shapes  JSON <-> safetensors of BERT-, GPT-2-shaped and 100k-small-
#                          tensor models with trained-looking values: time, peak RSS
#                  header  inspect a safetensors file whose header lists 1.4M tensors,
#                          and two such shards with an index
#                  hash    verify of 512 MiB against openssl and sha256sum (#2)
#                  big     verify and convert --dtype bf16 of 4 GiB: memory (#3)
#                  loader  touch every tensor of a 91 MB model (#3)
#                  shards  inspect a 175B sharded checkpoint; data untouched (#3, #4)
#                  run     run an MLP against numpy; GFLOP/s in process (#5)
#                  gguf    inspect a 7B-shaped Q4_K_M GGUF against gguf-dump; dequantize
#                          100M Q4_K values against gguf.quants (#14; benches/gguf.sh)
#                  remote  inspect a 73-shard GPT-3-shaped checkpoint over HTTP (hf://,
#                          50 ms a request) against huggingface_hub; verify of 512 MiB
#                          over HTTP against curl | sha256sum (#16; remote_inspect.py)
#   OUT=PATH     where to write the report (default docs/PERFORMANCE.md)
#   REPS=N       repetitions of the fast groups (default 7; QUICK 3)
#   VENV=DIR     the virtual environment (default target/bench-venv)
#   KEEP=1       keep the scratch folder (outputs of the timed commands)
# Exit status: 0 when every target is met, 1 when one is not (the report is
# written either way), 2 when something could not run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# The commands are strings run by `sh -c`: paths must not need quoting.
[[ $ROOT != *[[:space:]]* ]] || { echo "error: the checkout's path has a space: $ROOT" >&2; exit 2; }
BENCHES=$ROOT/benches
START_S=$(date +%s)

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    MODE=quick
    REPS=${REPS:-3}
else
    MODE=full
    REPS=${REPS:-7}
fi
ALL_GROUPS=json,shapes,header,hash,big,loader,shards,run,stats,pytorch,gguf,remote
ONLY=${ONLY:-$ALL_GROUPS}
want() { [[ ",$ONLY," == *",$1,"* ]]; }
log() { printf '\n==> [%d:%02d] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*" >&2; }
die() { echo "error: $*" >&2; exit 2; }

# numpy on OpenBLAS as shipped: OpenBLAS picks its kernel for this CPU.
# OPENBLAS_CORETYPE (or OPENBLAS_L2_SIZE) from the caller's environment would
# hold it back (a forced kernel has been slower than the one it detects), so
# neither reaches any benchmark; the report says whether either was set.
CALLER_OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-}
CALLER_OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-}
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE

# ------------------------------------------------------------ tools
for tool in openssl sha256sum python3 cargo; do
    command -v "$tool" >/dev/null || die "$tool is not installed; the benchmarks need it"
done
[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) is not installed: apt-get install time"
HAVE_TRACE=1
command -v strace >/dev/null && command -v fincore >/dev/null || HAVE_TRACE=0

RESULTS=$ROOT/target/bench-results/$(date -u +%Y%m%dT%H%M%SZ)$([[ $MODE == quick ]] && echo -quick || true)
CACHE=$ROOT/target/bench-cache/$MODE
mkdir -p "$RESULTS" "$CACHE"
ln -sfn "$(basename "$RESULTS")" "$ROOT/target/bench-results/latest"
WORK=$(mktemp -d "$ROOT/target/bench-cache/scratch-XXXXXX") # outputs, and the binaries' copies
[[ ${KEEP:-0} == 1 ]] || trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/bin"
echo "results: $RESULTS" >&2

# ------------------------------------------------------------ 1. build
log "cargo build --release (modeltool, examples touch_all, forward_bench and gguf_dequant)"
BUILD=ok
for spec in "modeltool --bin modeltool:release/modeltool" \
            "modeltool-loader --example touch_all:release/examples/touch_all" \
            "modeltool-net --example forward_bench:release/examples/forward_bench" \
            "modeltool-format --example gguf_dequant:release/examples/gguf_dequant"; do
    # shellcheck disable=SC2086 # the package and target arguments split on purpose
    if ! cargo build --release --quiet -p ${spec%%:*}; then
        BUILD=failed
        echo "WARNING: cargo build --release -p ${spec%%:*} failed; using the existing target/${spec#*:}" >&2
    fi
    src=$ROOT/target/${spec#*:}
    [[ -x $src ]] || die "no binary at $src"
    cp "$src" "$WORK/bin/"
    echo "$(basename "$src") $(date -r "$src" -u '+%F %T UTC')" >>"$RESULTS/built.txt"
done
BIN=$WORK/bin/modeltool
TOUCH=$WORK/bin/touch_all
FORWARD=$WORK/bin/forward_bench
DIRTY=$(git diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null && echo clean || echo "uncommitted changes in crates/")
printf '{"build": "%s", "commit": "%s", "tree": "%s"}\n' "$BUILD" "$(git rev-parse --short HEAD)" "$DIRTY" >"$RESULTS/build.json"

# ------------------------------------------------------------ 2. Python peers
VENV=${VENV:-$ROOT/target/bench-venv}
log "Python peers in $VENV (tests/python/requirements.txt)"
[[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt \
    -r benches/requirements.txt
PYTHON=$VENV/bin/python
PEERS="$PYTHON $BENCHES/peers.py"

"$PYTHON" "$BENCHES/report.py" machine \
    --caller-openblas "$CALLER_OPENBLAS_CORETYPE" --caller-openblas-l2 "$CALLER_OPENBLAS_L2_SIZE" \
    --mode "$MODE" --reps "$REPS" --only "$ONLY" >"$RESULTS/machine.json"

# ------------------------------------------------------------ 3. inputs
# make_input NAME STAMP CMD...: runs CMD, which writes into the folder
# $CACHE/NAME and prints one line of JSON last, unless $CACHE/NAME.stamp holds
# STAMP already; keeps that line as $CACHE/NAME.json.
make_input() {
    local name=$1 stamp=$2
    shift 2
    if [[ -f $CACHE/$name.stamp && $(cat "$CACHE/$name.stamp") == "$stamp" && -f $CACHE/$name.json ]]; then
        echo "cached: $CACHE/$name" >&2
    else
        log "making input $name"
        rm -rf "${CACHE:?}/$name" "$CACHE/$name.stamp" "$CACHE/$name.json"
        mkdir -p "$CACHE/$name"
        "$@" | tail -n 1 >"$CACHE/$name.json.tmp"
        mv "$CACHE/$name.json.tmp" "$CACHE/$name.json"
        echo "$stamp" >"$CACHE/$name.stamp"
    fi
    cp "$CACHE/$name.json" "$RESULTS/input_$name.json"
}
script_hash() { cat "$@" | sha256sum | cut -c1-16; }
random_file() { # OUT --tensors N ...: make_random_safetensors.py, described as JSON
    local out=$1
    shift
    "$PYTHON" "$BENCHES/make_random_safetensors.py" "$out" "$@" >&2
    sync "$out"
    printf '{"path": "%s", "file_bytes": %s, "tensors": %s}\n' "$out" "$(stat -c %s "$out")" "$2"
}
gpt3() { # OUT: make_gpt3_shards.py, described as JSON
    "$PYTHON" "$BENCHES/make_gpt3_shards.py" "$1" >&2
    "$PYTHON" - "$1" <<'EOF'
import glob, json, os, struct, sys
files = glob.glob(sys.argv[1] + "/*.safetensors")
index = json.load(open(sys.argv[1] + "/model.safetensors.index.json"))
print(json.dumps({"path": sys.argv[1], "shards": len(files), "tensors": len(index["weight_map"]),
                  "parameters": index["metadata"]["total_size"] // 2,
                  "apparent_bytes": sum(os.path.getsize(p) for p in files),
                  "header_bytes": sum(8 + struct.unpack("<Q", open(p, "rb").read(8))[0] for p in files)}))
EOF
}

if [[ $MODE == quick ]]; then
    JSON_ARGS=(--vocab 1000 --layers 0)             # 2.7M parameters
    BIG_ARGS=(--tensors 2 --rows 8192 --cols 8192)  # 512 MiB
    MID_ARGS=(--tensors 4 --rows 2048 --cols 2048)  # 64 MiB
    MLP_ARGS=(--batch 1024)
    BIG_REPS=2 JSON_WRITE_REPS=2 GFLOPS_REPS=1
    FORWARD_PASSES=(1:50 256:10 8192:2) # batch:passes timed in process
    BERT_ARGS=(--vocab 2000 --layers 1)
    GPT2_ARGS=(--vocab 1024 --layers 1)
    SMALL_ARGS=(--tensors 10000)
    HEADER_ARGS=(--tensors 100000)
else
    JSON_ARGS=(--vocab 30522 --layers 5)             # 20.3M parameters
    BIG_ARGS=(--tensors 4 --rows 16384 --cols 16384) # 4 GiB
    MID_ARGS=(--tensors 8 --rows 4096 --cols 4096)   # 512 MiB
    MLP_ARGS=(--batch 8192)
    BIG_REPS=3 JSON_WRITE_REPS=3 GFLOPS_REPS=3
    FORWARD_PASSES=(1:200 256:50 8192:5)
    BERT_ARGS=(--vocab 30522 --layers 6)   # MiniLM's 104 tensors, 91 MB
    GPT2_ARGS=(--vocab 8192 --layers 2)    # GPT-2 shapes, vocabulary and depth cut: 85 MB
    SMALL_ARGS=(--tensors 100000)          # 100k tensors of 8-256 values
    HEADER_ARGS=(--tensors 1400000)        # a 97.7 MB header
fi
H_INPUTS=$(script_hash "$BENCHES/inputs.py")
H_RANDOM=$(script_hash "$BENCHES/make_random_safetensors.py")
H_GPT3=$(script_hash "$BENCHES/make_gpt3_shards.py")
H_SHAPES=$(script_hash "$BENCHES/shapes.py")
SHAPES=(bert gpt2 small)
shape_args() { case $1 in bert) echo "${BERT_ARGS[@]}" ;; gpt2) echo "${GPT2_ARGS[@]}" ;; small) echo "${SMALL_ARGS[@]}" ;; esac; }
if want shapes; then
    for s in "${SHAPES[@]}"; do
        # shellcheck disable=SC2046 # the arguments split on purpose
        make_input "shape_$s" "$H_SHAPES $(shape_args "$s")" \
            "$PYTHON" "$BENCHES/shapes.py" "$s" "$CACHE/shape_$s/$s.safetensors" $(shape_args "$s")
    done
fi
if want header; then
    make_input header "$H_SHAPES ${HEADER_ARGS[*]}" \
        "$PYTHON" "$BENCHES/shapes.py" header "$CACHE/header/header.safetensors" "${HEADER_ARGS[@]}"
    make_input header_shards "$H_SHAPES ${HEADER_ARGS[*]}" \
        "$PYTHON" "$BENCHES/shapes.py" header_shards "$CACHE/header_shards/ckpt" "${HEADER_ARGS[@]}" --shards 2
fi
if want json; then
    make_input json_model "$H_INPUTS ${JSON_ARGS[*]}" \
        "$PYTHON" "$BENCHES/inputs.py" json_model "$CACHE/json_model/orig.safetensors" "${JSON_ARGS[@]}"
fi
if want hash; then
    make_input mid "$H_RANDOM ${MID_ARGS[*]}" random_file "$CACHE/mid/mid.safetensors" "${MID_ARGS[@]}"
fi
if want big; then
    FREE_KB=$(df -Pk "$CACHE" | awk 'NR == 2 {print $4}')
    if [[ ! -f $CACHE/big.stamp ]] && (( FREE_KB < 10 * 1024 * 1024 )); then
        die "$CACHE has $((FREE_KB / 1024 / 1024)) GiB free; the large-file benchmark needs about 10 GiB"
    fi
    make_input big "$H_RANDOM ${BIG_ARGS[*]}" random_file "$CACHE/big/big.safetensors" "${BIG_ARGS[@]}"
fi
if want loader; then
    make_input minilm "$H_INPUTS" "$PYTHON" "$BENCHES/inputs.py" minilm "$CACHE/minilm/minilm.safetensors"
fi
if want shards; then
    make_input gpt3 "$H_GPT3" gpt3 "$CACHE/gpt3"
fi
if want run; then
    make_input mlp "$H_INPUTS ${MLP_ARGS[*]}" "$PYTHON" "$BENCHES/inputs.py" mlp "$CACHE/mlp" "${MLP_ARGS[@]}"
fi

# ------------------------------------------------------------ 4. benchmarks
# measure GROUP TITLE [measure.py options] --run ID CMD ...: the figures go to
# $RESULTS/GROUP.json; the table is printed for the log.
measure() {
    local group=$1 title=$2
    shift 2
    log "$group: $title"
    "$PYTHON" "$BENCHES/measure.py" --title "$title" --json "$RESULTS/$group.json" "$@"
}
warm() { cat "$@" >/dev/null; } # a hot page cache, for every command alike

if want json; then
    D=$CACHE/json_model
    # The JSON input is written by this binary on every run (the cached one
    # could be from an older writer).
    "$BIN" convert "$D/orig.safetensors" "$WORK/m.json" --force >/dev/null
    warm "$D/orig.safetensors" "$WORK/m.json"
    measure json_write "safetensors -> JSON" --reps "$JSON_WRITE_REPS" --warmup 0 \
        --run mt_to_json "$BIN convert $D/orig.safetensors $WORK/ours.json --force" \
        --run py_to_json "$PEERS safetensors_to_json $D/orig.safetensors $WORK/py.json"
    measure json_read "JSON -> safetensors" --reps "$((REPS < 5 ? REPS : 5))" \
        --run mt_from_json "$BIN convert $WORK/m.json $WORK/ours.safetensors --force" \
        --run py_from_json "$PEERS json_to_safetensors $WORK/m.json $WORK/py.safetensors" \
        --run py_json_arrays "$PEERS json_to_arrays $WORK/m.json"
    # Both sides gave back the original bits.
    "$PYTHON" - "$D/orig.safetensors" "$WORK/ours.safetensors" "$WORK/py.safetensors" "$WORK/m.json" \
        >"$RESULTS/json_check.json" <<'EOF'
import json, os, sys
from safetensors.numpy import load_file
orig, ours, py = (load_file(p) for p in sys.argv[1:4])
same = lambda a, b: a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a)
print(json.dumps({"ours_bit_exact": same(orig, ours), "python_bit_exact": same(orig, py),
                  "json_bytes": os.path.getsize(sys.argv[4])}))
EOF
    rm -f "$WORK"/*.json "$WORK"/*.safetensors
fi

if want shapes; then
    for s in "${SHAPES[@]}"; do
        F=$CACHE/shape_$s/$s.safetensors
        "$BIN" convert "$F" "$WORK/$s.json" --force >/dev/null
        warm "$F" "$WORK/$s.json"
        measure "shapes_$s" "$s-shaped: JSON <-> safetensors" --reps "$JSON_WRITE_REPS" --warmup 0 \
            --run mt_from_json "$BIN convert $WORK/$s.json $WORK/ours.safetensors --force" \
            --run py_from_json "$PEERS json_to_safetensors $WORK/$s.json $WORK/py.safetensors" \
            --run mt_to_json "$BIN convert $F $WORK/ours.json --force" \
            --run py_to_json "$PEERS safetensors_to_json $F $WORK/py.json"
        "$PYTHON" - "$F" "$WORK/ours.safetensors" "$WORK/py.safetensors" "$WORK/$s.json" \
            >"$RESULTS/shapes_${s}_check.json" <<'EOF'
import json, os, sys
from safetensors.numpy import load_file
orig, ours, py = (load_file(p) for p in sys.argv[1:4])
same = lambda a, b: a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a)
print(json.dumps({"ours_bit_exact": same(orig, ours), "python_bit_exact": same(orig, py),
                  "json_bytes": os.path.getsize(sys.argv[4])}))
EOF
        rm -f "$WORK"/*.json "$WORK"/*.safetensors
    done
fi

if want header; then
    F=$CACHE/header/header.safetensors
    warm "$F"
    measure header "inspect a safetensors file with a large header" --reps "$REPS" \
        --run mt_inspect "$BIN inspect $F" \
        --run mt_inspect_json "$BIN inspect $F --format json" \
        --run mt_inspect_tensors "$BIN inspect $F --tensors" \
        --run py_list_tensors "$PEERS list_tensors $F"
    D=$CACHE/header_shards/ckpt
    warm "$D"/*
    measure header_shards "inspect two shards with large headers, and their index" --reps "$REPS" \
        --run mt_inspect "$BIN inspect $D" \
        --run mt_inspect_json "$BIN inspect $D --format json" \
        --run mt_inspect_tensors "$BIN inspect $D --tensors" \
        --run py_list_shards "$PYTHON $BENCHES/list_shards.py $D"
fi

if want hash; then
    F=$CACHE/mid/mid.safetensors
    SUM=$(sha256sum "$F" | cut -d' ' -f1)
    warm "$F"
    measure hash "verify against openssl dgst -sha256 and sha256sum" --reps "$REPS" \
        --run mt_verify "$BIN verify $F" \
        --run openssl "openssl dgst -sha256 $F" \
        --run sha256sum "sha256sum $F" \
        --run mt_verify_1thread "RAYON_NUM_THREADS=1 $BIN verify $F" \
        --run mt_verify_file_sha "$BIN verify $F --sha256 $SUM"
fi

if want big; then
    F=$CACHE/big/big.safetensors
    warm "$F"
    measure big "large file: time and peak memory" --reps "$BIG_REPS" --warmup 0 \
        --run mt_verify "$BIN verify $F" \
        --run mt_convert_bf16 "$BIN convert $F $WORK/bf16.safetensors --dtype bf16 --force"
    "$BIN" verify "$WORK/bf16.safetensors" >/dev/null || die "the bf16 output does not verify"
    rm -f "$WORK/bf16.safetensors"
fi

if want loader; then
    M=$CACHE/minilm/minilm.safetensors
    warm "$M"
    measure loader "open the MiniLM-shaped model and touch every tensor" --reps "$REPS" \
        --run mt_touch_all "$TOUCH $M" \
        --run mt_touch_all_no_mmap "$TOUCH $M --no-mmap" \
        --run mt_verify "$BIN verify $M" \
        --run mt_inspect "$BIN inspect $M" \
        --run py_get_tensor "$PEERS get_tensor $M" \
        --run py_get_tensor_sha256 "$PEERS get_tensor_sha256 $M" \
        --run py_load_file "$PEERS load_file $M"
fi

if want shards; then
    G=$CACHE/gpt3
    measure shards "inspect the GPT-3-shaped checkpoint (175B parameters, sparse shards)" --reps "$REPS" \
        --run mt_inspect "$BIN inspect $G" \
        --run mt_inspect_json "$BIN inspect $G --format json" \
        --run mt_inspect_tensors "$BIN inspect $G --tensors" \
        --run mt_inspect_tensors_json "$BIN inspect $G --tensors --format json" \
        --run py_list_shards "$PYTHON $BENCHES/list_shards.py $G" \
        --run py_bare_headers "$PEERS bare_headers $G"
    # Is the tensor data touched? Empty the page cache of the shards (those
    # files only: posix_fadvise DONTNEED), run once and count the shards'
    # bytes now cached (fincore); run again under strace and count the bytes
    # read from shard files by read-family calls and the mmaps of shard files.
    if [[ $HAVE_TRACE == 1 ]]; then
        log "shards: is the tensor data touched? (fincore, strace)"
        evict() {
            "$PYTHON" -c '
import os, sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY); os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' "$G"/*.safetensors
        }
        cached() { fincore -b -n -o RES "$G"/*.safetensors | awk '{s += $1} END {print s + 0}'; }
        traced() {
            rm -f "$WORK"/trace.*
            strace -ff -y -qq -e trace=read,pread64,readv,preadv,preadv2,mmap -o "$WORK/trace" "$@" >/dev/null 2>&1
            cat "$WORK"/trace.* | awk '
                /\.safetensors>/ && /^(read|pread64|readv|preadv|preadv2)\(/ { n = $NF; if (n ~ /^[0-9]+$/) s += n }
                /\.safetensors>/ && /^mmap\(/ { m++ }
                END { printf "%d %d\n", s, m }'
            rm -f "$WORK"/trace.*
        }
        : >"$RESULTS/touched.jsonl"
        for spec in "mt_inspect_tensors|$BIN inspect $G --tensors" \
                    "py_list_shards|$PYTHON $BENCHES/list_shards.py $G"; do
            id=${spec%%|*} cmd=${spec#*|}
            evict
            sh -c "$cmd" >/dev/null 2>&1
            c=$(cached)
            read -r rb maps < <(traced sh -c "$cmd")
            printf '{"id": "%s", "cached_bytes": %s, "read_bytes": %s, "mmaps": %s}\n' \
                "$id" "$c" "$rb" "$maps" >>"$RESULTS/touched.jsonl"
        done
    else
        echo "WARNING: strace or fincore missing: not checking that inspect leaves the data untouched" >&2
    fi
fi

if want run; then
    D=$CACHE/mlp
    warm "$D"/*.safetensors
    measure run "modeltool run against numpy on OpenBLAS" --reps "$REPS" \
        --run mt_run "$BIN run $D/mlp.safetensors --activation relu --input $D/input.safetensors --output $WORK/ours.safetensors --force" \
        --run numpy_run "$PEERS mlp $D/mlp.safetensors $D/input.safetensors $WORK/numpy.safetensors"
    "$PYTHON" - "$WORK/ours.safetensors" "$WORK/numpy.safetensors" >"$RESULTS/run_check.json" <<'EOF'
import json, sys
import numpy as np
from safetensors.numpy import load_file
a, b = (load_file(p)["output"] for p in sys.argv[1:3])
print(json.dumps({"shape": list(a.shape), "max_abs_diff": float(np.abs(a - b).max()),
                  "max_abs_value": float(np.abs(b).max()),
                  "allclose": bool(np.allclose(a, b, rtol=1e-4, atol=1e-4))}))
EOF
    rm -f "$WORK/ours.safetensors" "$WORK/numpy.safetensors"
    log "run: the forward pass in process, GFLOP/s (benches/run_vs_numpy.py)"
    : >"$RESULTS/gflops.jsonl"
    for spec in "${FORWARD_PASSES[@]}"; do
        batch=${spec%%:*} repeats=${spec#*:}
        for _ in $(seq "$GFLOPS_REPS"); do
            "$PYTHON" "$BENCHES/run_vs_numpy.py" --forward-bench "$FORWARD" --json \
                --batch "$batch" --repeats "$repeats" | tee -a "$RESULTS/gflops.jsonl" >&2
        done
    done
fi

if want stats; then
    log "stats and diff against numpy"
    REPS=$REPS VENV=$VENV QUICK=$QUICK bash "$BENCHES/stats.sh" >"$RESULTS/stats.txt" ||
        echo "WARNING: a stats/diff target was not met (see $RESULTS/stats.txt)" >&2
fi

if want pytorch; then
    log "pytorch: convert a GPT-2-medium-shaped pytorch_model.bin against torch; cold inspect"
    BIN="$BIN" PYTHON="$PYTHON" REPS="$REPS" WORK="$CACHE/pytorch" bash "$BENCHES/pytorch.sh" |
        tee "$RESULTS/pytorch.txt" >&2
fi

if want gguf; then
    log "gguf: inspect a 7B-shaped Q4_K_M GGUF against gguf-dump; dequantize Q4_K against gguf.quants"
    GGUF_VALUES=$([[ $MODE == quick ]] && echo 10000000 || echo 100000000)
    BIN="$BIN" DEQUANT="$WORK/bin/gguf_dequant" PYTHON="$PYTHON" REPS="$REPS" VALUES="$GGUF_VALUES" \
        WORK="$CACHE/gguf" bash "$BENCHES/gguf.sh" | tee "$RESULTS/gguf.txt" >&2
fi

if want remote; then
    log "remote: inspect a 73-shard checkpoint over HTTP with 50 ms a request; verify 512 MiB"
    if [[ $MODE == quick ]]; then REMOTE_VERIFY=(); else
        make_input mid "$H_RANDOM ${MID_ARGS[*]}" random_file "$CACHE/mid/mid.safetensors" "${MID_ARGS[@]}"
        REMOTE_VERIFY=(--verify "$CACHE/mid/mid.safetensors")
    fi
    "$PYTHON" "$BENCHES/remote_inspect.py" "$BIN" --reps "$REPS" --dir "$CACHE/remote/gpt3" \
        "${REMOTE_VERIFY[@]}" | tee "$RESULTS/remote.txt" >&2
fi

# ------------------------------------------------------------ 5. report
END_S=$(date +%s)
printf '{"load_end": "%s", "seconds": %s}\n' "$(cut -d' ' -f1-3 /proc/loadavg)" "$((END_S - START_S))" >"$RESULTS/end.json"
if [[ -n ${OUT:-} ]]; then
    REPORT=$OUT
elif [[ $MODE == quick || $ONLY != "$ALL_GROUPS" ]]; then
    REPORT=$RESULTS/PERFORMANCE.md
else
    REPORT=$ROOT/docs/PERFORMANCE.md
fi
log "writing $REPORT"
STATUS=0
"$PYTHON" "$BENCHES/report.py" render "$RESULTS" "$REPORT" || STATUS=$?
echo "took $((END_S - START_S)) s; figures in $RESULTS; report in $REPORT" >&2
exit "$STATUS"
