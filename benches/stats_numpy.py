"""The numpy peers of `modeltool stats` and `modeltool diff` in
benches/stats.sh: the same figures, computed as a numpy user would.

    python stats_numpy.py stats MODEL.safetensors
        load_file, then per tensor: min, max, mean and std accumulated in
        float64 (`dtype=np.float64`, as `modeltool stats` accumulates),
        isnan().sum(), isinf().sum().
    python stats_numpy.py diff A.safetensors B.safetensors
        load_file both, then per common tensor: max |a-b| and its index,
        mean |a-b|, ||a-b|| / ||a||, cosine similarity and the count of
        values not isclose(equal_nan=True), in float64.
Prints one JSON object (a few figures, so the work cannot be skipped).
"""
import json
import sys

import numpy as np
from safetensors.numpy import load_file


def stats(path):
    out = {}
    for name, a in load_file(path).items():
        if a.size == 0:
            continue
        out[name] = [float(a.min()), float(a.max()), float(a.mean(dtype=np.float64)),
                     float(a.std(dtype=np.float64)), int(np.isnan(a).sum()), int(np.isinf(a).sum())]
    return out


def diff(a_path, b_path):
    a, b = load_file(a_path), load_file(b_path)
    out = {}
    for name in sorted(set(a) & set(b)):
        x, y = a[name].astype(np.float64), b[name].astype(np.float64)
        if x.shape != y.shape:
            continue
        d = np.abs(x - y)
        i = int(np.argmax(d))
        out[name] = [float(d.reshape(-1)[i]), list(map(int, np.unravel_index(i, x.shape))), float(d.mean()),
                     float(np.linalg.norm(x - y) / np.linalg.norm(x)),
                     float((x.reshape(-1) @ y.reshape(-1)) / (np.linalg.norm(x) * np.linalg.norm(y))),
                     int((~np.isclose(x, y, rtol=0, atol=0, equal_nan=True)).sum())]
    return out


def main():
    what, *paths = sys.argv[1:]
    res = stats(*paths) if what == "stats" else diff(*paths)
    print(json.dumps({"tensors": len(res)}))


if __name__ == "__main__":
    main()
