# Sourced by the benchmark scripts in this folder; not run on its own.
#
# Sets ROOT (the repository), PYTHON, BIN (a modeltool binary) and MEASURE
# (measure.py), after building the release binary. BIN is a copy taken when
# the script starts, so that another engineer's `cargo build` in the shared
# target/ cannot swap the binary halfway through a benchmark. Set MODELTOOL
# to a binary to skip the build and use that one.

PYTHON=${PYTHON:-python3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MEASURE="$ROOT/benches/measure.py"

# setup_work NAME [WORKDIR]: sets WORK to a new folder (under /tmp, or made
# as WORKDIR, or inside WORKDIR when that exists already) and removes that
# folder on exit unless KEEP=1. A folder that existed before is never removed.
setup_work() {
    local name=$1
    if [[ -n ${2:-} ]]; then
        WORK=$2
        if [[ -e $WORK ]]; then
            WORK=$(mktemp -d "$WORK/modeltool-$name-XXXXXX")
        else
            mkdir -p "$WORK"
        fi
    else
        WORK=$(mktemp -d "/tmp/modeltool-$name-XXXXXX")
    fi
    [[ ${KEEP:-0} == 1 ]] || trap 'rm -rf "$WORK"' EXIT
}

# setup_bin WORKDIR: builds (unless $MODELTOOL is set) and copies the binary.
setup_bin() {
    local work=$1 src
    if [[ -n ${MODELTOOL:-} ]]; then
        src=$MODELTOOL
    elif (cd "$ROOT" && cargo build --release -p modeltool --quiet); then
        src=$ROOT/target/release/modeltool
    elif [[ -x $ROOT/target/release/modeltool ]]; then
        echo "WARNING: cargo build --release -p modeltool failed (the working tree does not" >&2
        echo "WARNING: compile right now); benchmarking the existing target/release/modeltool," >&2
        echo "WARNING: built $(date -r "$ROOT/target/release/modeltool" '+%F %T')." >&2
        src=$ROOT/target/release/modeltool
    else
        echo "error: no modeltool binary: the build failed and target/release/modeltool is missing" >&2
        exit 2
    fi
    BIN=$work/modeltool
    cp "$src" "$BIN"
    echo "modeltool: $src ($(date -r "$src" '+%F %T'), git $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- crates Cargo.toml Cargo.lock || echo ', uncommitted changes in crates/'))"
}

# machine_note: a line on how busy the machine is, for the record.
machine_note() {
    echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

# fmt_kb KB: "123.4 MiB".
fmt_kb() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
