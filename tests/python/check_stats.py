"""Usage: check_stats.py MODEL.safetensors STATS.json

Checks `modeltool stats --format json` of MODEL against numpy's float64
figures: min, max, largest magnitude and every count exactly, mean and
standard deviation to 1e-9 relative, and each histogram bin's count
against `numpy.histogram` with the same edges. Exits 1 naming the first
figure that differs."""

import json
import sys

import numpy as np

import numbers_ref as nr
import stlib


def close(name, what, got, want, scale):
    if want is None or not np.isfinite(want):
        stlib.check(got is None or not np.isfinite(got) or got == want, f"{name}: {what} {got}, numpy {want}")
        return
    stlib.check(got is not None, f"{name}: {what} missing, numpy {want}")
    stlib.check(abs(got - want) <= 1e-9 * max(abs(want), scale),
                f"{name}: {what} {got!r}, numpy {want!r} (relative {abs(got - want) / max(abs(want), scale):.3g})")


def main():
    model, report = sys.argv[1:]
    _, raw = stlib.read_raw(model)
    with open(report) as f:
        got = {t["name"]: t for t in json.load(f)["tensors"]}
    stlib.check(sorted(got) == sorted(raw), f"tensors {sorted(got)}, file holds {sorted(raw)}")
    for name, t in raw.items():
        g = got[name]
        x = nr.values(t)
        fin = x[np.isfinite(x)]
        stlib.check(g["values"] == x.size, f"{name}: {g['values']} values, numpy {x.size}")
        is_float = t.dtype in nr.FLOATS
        if is_float:
            for key, want in [("nan", np.isnan(x).sum()), ("pos_inf", np.isposinf(x).sum()),
                              ("neg_inf", np.isneginf(x).sum())]:
                stlib.check(g[key] == want, f"{name}: {key} {g[key]}, numpy {want}")
        stlib.check(g["zeros"] == (fin == 0).sum(), f"{name}: zeros {g['zeros']}, numpy {(fin == 0).sum()}")
        if t.dtype in nr.MIN_NORMAL:
            sub = ((fin != 0) & (np.abs(fin) < nr.MIN_NORMAL[t.dtype])).sum()
            stlib.check(g["subnormal"] == sub, f"{name}: subnormal {g['subnormal']}, numpy {sub}")
        if fin.size == 0:
            stlib.check(g["min"] is None and g["mean"] is None, f"{name}: figures of no value: {g}")
            continue
        if is_float:
            for key, want in [("min", fin.min()), ("max", fin.max()), ("max_abs", np.abs(fin).max())]:
                stlib.check(g[key] == want, f"{name}: {key} {g[key]!r}, numpy {want!r}")
        else:
            ints = nr.exact_ints(t)
            for key, want in [("min", min(ints)), ("max", max(ints)), ("max_abs", max(abs(v) for v in ints))]:
                stlib.check(g[key] == want, f"{name}: {key} {g[key]}, exact {want}")
        with np.errstate(over="ignore", invalid="ignore"):
            mean, std = fin.mean(), fin.std()
        scale = float(np.abs(fin).mean()) if np.isfinite(np.abs(fin).mean()) else 0.0
        close(name, "mean", g["mean"], mean, scale)
        close(name, "std", g["std"], std, scale)
        h = g.get("histogram")
        stlib.check(h is not None, f"{name}: no histogram")
        edges = h["start"] + np.arange(len(h["counts"]) + 1) * h["width"]
        want, _ = np.histogram(fin, bins=edges)
        stlib.check(list(want) == h["counts"], f"{name}: histogram {h['counts']}, numpy {list(want)}")
    print(f"{len(raw)} tensors agree with numpy")


if __name__ == "__main__":
    main()
