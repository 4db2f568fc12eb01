#!/usr/bin/env python3
"""Compare modeltool-net's forward pass with numpy on the same MLP.

The network is `layers` linear layers of `width` x `width` (float32) with relu between them,
run on a batch of `batch` rows: numpy computes `x @ W.T + b` and `np.maximum(x, 0)`, which on a
numpy wheel goes through its bundled OpenBLAS with all cores.

    python3 benches/run_vs_numpy.py [--width 1024] [--layers 3] [--batch 8192] [--repeats 10]
                                    [--forward-bench PATH] [--json]

Needs numpy (`pip install numpy`) and cargo. Prints both timings and the ratio; exits 1 when
modeltool-net is more than 10% slower than numpy (best of `repeats` runs each). `--forward-bench`
runs that already built `forward_bench` example instead of `cargo run`; `--json` prints one line
of JSON with both sides' best and median seconds and GFLOP/s (for benches/all.sh) and always
exits 0.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def numpy_times(width, layers, batch, repeats):
    rng = np.random.default_rng(0)
    scale = 1.0 / np.sqrt(width)
    weights = [
        (rng.uniform(-0.5, 0.5, (width, width)).astype(np.float32) * scale,
         rng.uniform(-0.5, 0.5, width).astype(np.float32))
        for _ in range(layers)
    ]
    x = (np.arange(batch * width) % 97).astype(np.float32).reshape(batch, width) / 97.0

    def forward(x):
        for i, (w, b) in enumerate(weights):
            x = x @ w.T + b
            if i + 1 < layers:
                x = np.maximum(x, 0)
        return x

    forward(x)  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward(x)
        times.append(time.perf_counter() - start)
    times.sort()
    return times[0], times[len(times) // 2]


def rust_times(width, layers, batch, repeats, forward_bench=None):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    args = [str(width), str(layers), str(batch), str(repeats)]
    if forward_bench:
        cmd = [forward_bench, *args]
    else:
        cmd = ["cargo", "run", "--quiet", "--release", "-p", "modeltool-net", "--example", "forward_bench", "--", *args]
    out = subprocess.run(cmd, cwd=root, check=True, capture_output=True, text=True).stdout
    report = json.loads(out.strip().splitlines()[-1])
    return report["best_s"], report["median_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--forward-bench", metavar="PATH", help="a built forward_bench example to run")
    parser.add_argument("--json", action="store_true", help="print one line of JSON, exit 0")
    args = parser.parse_args()
    shape = (args.width, args.layers, args.batch, args.repeats)

    rust_best, rust_median = rust_times(*shape, forward_bench=args.forward_bench)
    numpy_best, numpy_median = numpy_times(*shape)
    flops = 2.0 * args.batch * args.width * args.width * args.layers
    if args.json:
        print(json.dumps({
            "width": args.width, "layers": args.layers, "batch": args.batch, "repeats": args.repeats,
            "flops": flops, "threads": os.cpu_count(),
            "ours": {"best_s": rust_best, "median_s": rust_median, "gflops": flops / rust_best / 1e9,
                     "gflops_median": flops / rust_median / 1e9},
            "numpy": {"best_s": numpy_best, "median_s": numpy_median, "gflops": flops / numpy_best / 1e9,
                      "gflops_median": flops / numpy_median / 1e9},
        }))
        return
    print(f"MLP {args.layers} x [{args.width} -> {args.width}] relu, batch {args.batch}, "
          f"{os.cpu_count()} cores, numpy {np.__version__}")
    for name, best, median in [("modeltool-net", rust_best, rust_median),
                               ("numpy", numpy_best, numpy_median)]:
        print(f"  {name:14} best {best * 1e3:8.2f} ms  median {median * 1e3:8.2f} ms  "
              f"({flops / best / 1e9:6.1f} GFLOP/s)")
    ratio = rust_best / numpy_best
    print(f"  modeltool-net / numpy time: {ratio:.2f}")
    sys.exit(0 if ratio <= 1.10 else 1)


if __name__ == "__main__":
    main()
