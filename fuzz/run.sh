#!/usr/bin/env bash
# Runs modeltool's cargo-fuzz targets, one after the other, and prints what
# each run did.
#
#   fuzz/run.sh                      every target, 600 s each
#   fuzz/run.sh -t 60 csv            one target for 60 s
#   fuzz/run.sh -t 30 csv json_model several targets, 30 s each
#   fuzz/run.sh --list               the target names
#
# Targets: safetensors_header, json_model, shard_index, architecture, csv,
# gguf_header, pickle, inspect_human
# (fuzz/fuzz_targets/*.rs; each file says what it feeds and what it checks).
#
# Needs a nightly toolchain (`rustup toolchain install nightly`); installs
# cargo-fuzz if it is missing. One fuzzer process at a time (no -jobs or
# -fork), and RAYON_NUM_THREADS defaults to 1, so a run takes about one core.
#
# Each target's corpus grows in fuzz/corpus/<target> (not in git). It starts
# from fuzz/seeds/<target>, the repo's fixtures (fixtures/*.safetensors,
# *.json, *.csv, gguf/*.gguf) and every kept reproducer in
# fuzz/regressions/<target>. The reproducers are also replayed whole before
# each target is fuzzed (the corpus cuts inputs to max_len), so a fixed bug
# is retried on every run.
# Crashes, hangs (an input running longer than TIMEOUT seconds) and OOMs
# (RSS above RSS_MB) land in fuzz/artifacts/<target>; the libFuzzer output
# in fuzz/logs/<target>.log.
#
# Environment: TIMEOUT (per input, default 5), RSS_MB (default 2048),
# RAYON_NUM_THREADS (default 1), FUZZ_TOOLCHAIN (default nightly).
# Exit status: 0 when no target found anything, 1 otherwise.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
fuzz_dir=$(pwd)
repo=$(cd .. && pwd)

all_targets=(safetensors_header json_model shard_index architecture csv gguf_header pickle inspect_human)

# Longest input per target: room for every structure the parser knows (a
# header with several tensors and metadata, a shard after the index, a
# CSV with a few hundred values) while keeping executions fast.
max_len_of() {
    case "$1" in
        safetensors_header | json_model | gguf_header | inspect_human) echo 16384 ;;
        shard_index | csv | pickle) echo 8192 ;;
        architecture) echo 4096 ;;
        *) return 1 ;;
    esac
}

seconds=600
targets=()
while (($#)); do
    case "$1" in
        -t | --seconds)
            seconds=${2:?"-t needs a number of seconds"}
            shift 2
            ;;
        --list)
            printf '%s\n' "${all_targets[@]}"
            exit 0
            ;;
        -h | --help)
            awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
            exit 0
            ;;
        -*)
            echo "run.sh: unknown option $1 (see --help)" >&2
            exit 2
            ;;
        *)
            if ! max_len_of "$1" >/dev/null; then
                echo "run.sh: no target $1 (have: ${all_targets[*]})" >&2
                exit 2
            fi
            targets+=("$1")
            shift
            ;;
    esac
done
((${#targets[@]})) || targets=("${all_targets[@]}")
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds < 1)); then
    echo "run.sh: seconds must be a positive whole number, not $seconds" >&2
    exit 2
fi

toolchain=${FUZZ_TOOLCHAIN:-nightly}
timeout=${TIMEOUT:-5}
rss_mb=${RSS_MB:-2048}
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-1}

if ! cargo "+$toolchain" fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# Fills the corpus folder with the starting inputs (existing files are kept).
seed() {
    local target=$1 corpus=$fuzz_dir/corpus/$1
    mkdir -p "$corpus"
    local sources=("$fuzz_dir/seeds/$target" "$fuzz_dir/regressions/$target")
    case "$target" in
        safetensors_header | inspect_human) sources+=("$repo"/fixtures/*.safetensors) ;;
        json_model) sources+=("$repo"/fixtures/*.json) ;;
        csv) sources+=("$repo"/fixtures/*.csv) ;;
        gguf_header) sources+=("$repo"/fixtures/gguf/*.gguf) ;;
        pickle) sources+=("$repo"/fixtures/pytorch/*.pt) ;;
    esac
    local s
    for s in "${sources[@]}"; do
        if [[ -d $s ]]; then
            find "$s" -maxdepth 1 -type f ! -name '*.md' -exec cp -n {} "$corpus/" \;
        elif [[ -f $s ]]; then
            cp -n "$s" "$corpus/"
        fi
    done
}

# The value of `stat::NAME: VALUE` from libFuzzer's final statistics.
final_stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -n 1; }

echo "== building the fuzz targets ($toolchain)"
cargo "+$toolchain" fuzz build

summary=()
found=0
mkdir -p "$fuzz_dir/logs"
for target in "${targets[@]}"; do
    seed "$target"
    artifacts=$fuzz_dir/artifacts/$target
    mkdir -p "$artifacts"
    log=$fuzz_dir/logs/$target.log
    before=$(find "$artifacts" -type f | wc -l)
    max_len=$(max_len_of "$target")
    # Replay the kept reproducers whole first (the corpus truncates to max_len).
    mapfile -t kept < <(find "$fuzz_dir/regressions/$target" -maxdepth 1 -type f ! -name '*.md' 2>/dev/null | sort)
    if ((${#kept[@]})); then
        echo "== $target: replaying ${#kept[@]} file(s) from fuzz/regressions/$target"
        if ! cargo "+$toolchain" fuzz run "$target" "${kept[@]}" -- \
            -timeout="$timeout" -rss_limit_mb="$rss_mb" -malloc_limit_mb="$rss_mb" \
            >"$fuzz_dir/logs/$target.replay.log" 2>&1; then
            found=1
            line="$target: a kept reproducer fails again, see fuzz/logs/$target.replay.log"
            echo "$line"
            summary+=("$line")
        fi
    fi
    echo "== $target: $seconds s, max_len $max_len, timeout $timeout s, rss limit $rss_mb MB"
    started=$(date +%s)
    status=0
    cargo "+$toolchain" fuzz run "$target" "$fuzz_dir/corpus/$target" -- \
        -max_total_time="$seconds" -max_len="$max_len" -timeout="$timeout" \
        -rss_limit_mb="$rss_mb" -malloc_limit_mb="$rss_mb" \
        -artifact_prefix="$artifacts/" -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    elapsed=$(($(date +%s) - started))
    new=$(($(find "$artifacts" -type f | wc -l) - before))
    # The last status line: "#123 DONE cov: 1 ft: 2 corp: 3/4b ... exec/s: 5 rss: 6Mb".
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
    execs=$(final_stat number_of_executed_units "$log")
    rate=$(final_stat average_exec_per_sec "$log")
    rss=$(final_stat peak_rss_mb "$log")
    if ((status != 0 || new > 0)); then
        found=1
        what="FOUND: exit $status, $new new file(s) in fuzz/artifacts/$target"
        grep -E '^(==[0-9]+==ERROR|thread .* panicked|.*panicked at)|SUMMARY:|Test unit written to' "$log" |
            head -n 8 | sed 's/^/    /' || true
    else
        what="nothing found"
    fi
    line=$(printf '%-20s %5ss %12s execs %8s exec/s  cov %6s  ft %7s  corpus %6s  rss %5s MB  %s' \
        "$target" "$elapsed" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}" "$what")
    echo "$line"
    summary+=("$line")
done

echo
echo "== summary (logs in fuzz/logs/)"
printf '%s\n' "${summary[@]}"
exit "$found"
