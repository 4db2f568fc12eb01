"""Runs commands side by side, alternating, and prints medians.

    measure.py [--reps N] [--warmup N] [--check 'NAME: EXPR']... \
        --run ID 'shell command' [--run ID 'shell command']...

Each repetition runs every command once, in an order that rotates from one
repetition to the next, so a burst of load from elsewhere on the machine
falls on all of them alike. Every run goes through `/usr/bin/time`, which
reports the peak resident set size (its %M: the kernel's ru_maxrss of the
command). Wall time is measured here with a monotonic clock in
milliseconds (GNU time's %e has only 10 ms resolution); it includes the
fork and exec of `time` and `sh`, about a millisecond, for every command
alike. The first --run is "ours"; the last column is each command's median
wall time divided by ours (above 1: ours is that many times faster).

Before every run the file system's dirty data is written out (`sync`,
not timed): no command waits on the writeback of the one before it. A
command that makes its output durable (modeltool syncs a file before the
rename that puts it in place) would otherwise pay for the deferred writes
of a peer that does not: measured here, a sync of modeltool's 91 MB
output took 0.10 s on a quiet disk and 0.35 s right after another program
wrote 300 MB without syncing.

--check takes a Python expression over the medians: t.ID is wall seconds,
rss.ID peak RSS in MiB, cpu.ID user+system seconds; a failing check is
printed as FAIL and makes the exit status 1.

Why not measure from Python directly: a child's ru_maxrss includes the RSS
of the process it was forked from (Linux records the old address space's
high-water mark at exec), so a child of this interpreter would report at
least Python's own ~10 MB. /usr/bin/time is a small C program.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import types

TIME = "/usr/bin/time"


def run_once(cmd, out_path):
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        start = time.perf_counter()
        proc = subprocess.run(
            [TIME, "-f", "%M %U %S %F %R %I", "-o", tf.name, "sh", "-c", cmd],
            stdout=open(out_path, "wb") if out_path else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wall = time.perf_counter() - start
        # time writes "Command exited with non-zero status N" before the figures.
        lines = [l for l in tf.read().splitlines() if l and l[0].isdigit()]
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr.decode(errors="replace"))
        raise SystemExit(f"measure.py: `{cmd}` exited with status {proc.returncode}")
    rss_kb, user, system, major, minor, inputs = lines[-1].split()
    return {
        "wall": wall,
        "rss_mib": int(rss_kb) / 1024,
        "cpu": float(user) + float(system),
        "major_faults": int(major),
        "minor_faults": int(minor),
        "fs_inputs": int(inputs),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=int(os.environ.get("REPS", 7)))
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured rounds first (page cache, dynamic loader)")
    ap.add_argument("--run", nargs=2, action="append", metavar=("ID", "CMD"), required=True)
    ap.add_argument("--check", action="append", default=[], metavar="'NAME: EXPR'")
    ap.add_argument("--title", default="")
    ap.add_argument("--json", help="also write every figure here")
    ap.add_argument("--keep-output", metavar="DIR", help="keep each command's last stdout as DIR/ID.out")
    args = ap.parse_args()

    ids = [i for i, _ in args.run]
    if len(set(ids)) != len(ids) or not all(i.isidentifier() for i in ids):
        raise SystemExit("measure.py: --run IDs must be distinct Python identifiers")
    results = {i: [] for i in ids}
    n = len(args.run)
    for rep in range(-args.warmup, args.reps):
        for k in range(n):
            rid, cmd = args.run[(k + max(rep, 0)) % n]
            out = os.path.join(args.keep_output, rid + ".out") if args.keep_output else None
            os.sync()
            r = run_once(cmd, out)
            if rep >= 0:
                results[rid].append(r)

    med = {i: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for i, rs in results.items()}
    ours = med[ids[0]]["wall"]
    if args.title:
        print(f"\n== {args.title} ({args.reps} alternating runs each, medians) ==")
    width = max(len(i) for i in ids)
    head = f"{'id':<{width}}  {'wall ms':>9} {'min':>8} {'max':>8} {'cpu ms':>8} {'peak RSS MiB':>12} {'minflt':>8} {'majflt':>6} {'fs in':>6} {'÷ ours':>7}"
    print(head)
    print("-" * len(head))
    for (rid, cmd) in args.run:
        m, rs = med[rid], results[rid]
        walls = [r["wall"] for r in rs]
        print(
            f"{rid:<{width}}  {m['wall'] * 1e3:9.1f} {min(walls) * 1e3:8.1f} {max(walls) * 1e3:8.1f} "
            f"{m['cpu'] * 1e3:8.0f} {m['rss_mib']:12.1f} {m['minor_faults']:8.0f} {m['major_faults']:6.0f} "
            f"{m['fs_inputs']:6.0f} {m['wall'] / ours:7.2f}"
        )
    print("commands:")
    for rid, cmd in args.run:
        print(f"  {rid:<{width}}  {cmd}")

    ns = {
        "t": types.SimpleNamespace(**{i: m["wall"] for i, m in med.items()}),
        "rss": types.SimpleNamespace(**{i: m["rss_mib"] for i, m in med.items()}),
        "cpu": types.SimpleNamespace(**{i: m["cpu"] for i, m in med.items()}),
    }
    failed = False
    for check in args.check:
        name, _, expr = check.partition(":")
        # Expressions come from our own scripts. "LHS OP NUMBER" also shows LHS.
        ok = bool(eval(expr, {}, ns))
        failed |= not ok
        m = re.match(r"(.*?)(>=|<=|>|<)([^<>=]*)$", expr)
        shown = f"{eval(m.group(1), {}, ns):.3g} {m.group(2)} {m.group(3).strip()}" if m else ""
        print(f"{'PASS' if ok else 'FAIL'}  {name.strip()}: {expr.strip()}   [{shown}]")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": dict(args.run), "results": results, "medians": med, "checks": args.check}, f, indent=1)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
