#!/usr/bin/env bash
# Bounded memory on large files, and hashing speed against openssl.
#
#   PYTHON=/tmp/venv/bin/python benches/memory.sh [WORKDIR]
#
# Writes a 4 GiB safetensors file of random f32 values (4 tensors of 1 GiB,
# real data, not sparse zeros, each with its stored sha256) with
# make_random_safetensors.py, then measures:
#   (1) `modeltool verify big.safetensors` and
#   (2) `modeltool convert big.safetensors out.safetensors --dtype bf16`:
#       requirement, peak RSS below 512 MiB for both (/usr/bin/time's
#       "Maximum resident set size");
#   (3) `modeltool verify` of a 512 MiB file (8 tensors of 64 MiB) against
#       `openssl dgst -sha256` of the same file: requirement, at least as
#       fast. For reference also verify on one thread (RAYON_NUM_THREADS=1:
#       verify hashes tensors in parallel, openssl is one stream on one core)
#       and `verify --sha256 HEX` (tensors and then the whole file, the
#       comparison by the whole-file hash the Hub lists).
# Needs about 7 GiB free in WORKDIR (default: a new folder under /tmp),
# removed at the end unless KEEP=1. REPS (default 5) alternating runs of the
# 512 MiB comparison; BIG_REPS (default 3) of the 4 GiB commands. Page cache:
# the files are read hot when memory allows (the "fs in" column counts
# 512-byte blocks read from disk).
set -euo pipefail
source "$(dirname "$0")/common.sh"

setup_work memory "${1:-}"
setup_bin "$WORK"
machine_note
FREE_KB=$(df -Pk "$WORK" | awk 'NR == 2 {print $4}')
if (( FREE_KB < 8 * 1024 * 1024 )); then
    echo "error: $WORK has $((FREE_KB / 1024 / 1024)) GiB free; this needs about 7 GiB" >&2
    exit 2
fi
echo "disk: $(df -h "$WORK" | awk 'NR == 2 {print $4 " free on " $6}')"
STATUS=0

BIG=$WORK/big.safetensors
MID=$WORK/mid.safetensors
"$PYTHON" "$ROOT/benches/make_random_safetensors.py" "$BIG" --tensors 4 --rows 16384 --cols 16384
"$PYTHON" "$ROOT/benches/make_random_safetensors.py" "$MID" --tensors 8 --rows 4096 --cols 4096
sync "$BIG" "$MID"

# The 4 GiB file: verify, and convert to bf16 (written to the same disk,
# fsynced by modeltool; --force replaces the previous repetition's output).
"$PYTHON" "$MEASURE" --reps "${BIG_REPS:-3}" --warmup 0 --title "4 GiB f32 file (4 tensors of 1 GiB): peak memory" \
    --run mt_verify_4g "$BIN verify $BIG" \
    --run mt_convert_bf16_4g "$BIN convert $BIG $WORK/out.safetensors --dtype bf16 --force" \
    --check "verify of 4 GiB peaks below 512 MiB: rss.mt_verify_4g < 512" \
    --check "convert --dtype bf16 of 4 GiB peaks below 512 MiB: rss.mt_convert_bf16_4g < 512" \
    || STATUS=1
echo "throughput: see wall ms; 4 GiB = 4295 MB of tensor data."
for spec in "verify|$BIN verify $BIG" "convert --dtype bf16|$BIN convert $BIG $WORK/out.safetensors --dtype bf16 --force"; do
    /usr/bin/time -v sh -c "${spec#*|} >/dev/null" 2>"$WORK/tv"
    echo "/usr/bin/time -v modeltool ${spec%%|*}: $(grep -E 'Maximum resident' "$WORK/tv" | sed 's/^\s*//'), $(grep -E 'Elapsed' "$WORK/tv" | sed 's/^\s*//')"
done
echo "output: $(stat -c %s "$WORK/out.safetensors") bytes; verify of it: $("$BIN" verify "$WORK/out.safetensors" | tail -1)"
rm -f "$WORK/out.safetensors"

# The 512 MiB file against openssl.
SUM=$(openssl dgst -sha256 -r "$MID" | cut -d' ' -f1)
cat "$MID" >/dev/null
"$PYTHON" "$MEASURE" --reps "${REPS:-5}" --title "512 MiB f32 file (8 tensors of 64 MiB): verify against openssl dgst -sha256" \
    --run mt_verify_512m "$BIN verify $MID" \
    --run openssl_sha256 "openssl dgst -sha256 $MID" \
    --run mt_verify_512m_1thread "RAYON_NUM_THREADS=1 $BIN verify $MID" \
    --run mt_verify_512m_file_sha "$BIN verify $MID --sha256 $SUM" \
    --check "verify at least as fast as openssl dgst -sha256: t.mt_verify_512m / t.openssl_sha256 <= 1" \
    || STATUS=1
echo "reference rows (no requirement): mt_verify_512m_1thread is verify on one core, as openssl runs;"
echo "mt_verify_512m_file_sha hashes the tensors and then the whole file (the Hub's hash)."
echo "openssl: $(openssl version)"
exit $STATUS
