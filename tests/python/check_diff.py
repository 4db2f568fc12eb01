"""Usage: check_diff.py A.safetensors B.safetensors DIFF.json ABS REL

Checks `modeltool diff --format json` of A and B against numpy: for every
tensor both hold with one shape, the count of values that are not
`numpy.isclose(a, b, rtol=REL, atol=ABS, equal_nan=True)`, and over the
pairs where both are finite the largest |a - b| and its first index, the
mean |a - b|, ||a - b|| / ||a|| and the cosine similarity (1e-9 relative).
Exits 1 naming the first figure that differs."""

import json
import sys

import numpy as np

import numbers_ref as nr
import stlib


def close(name, what, got, want):
    stlib.check(got is not None and abs(got - want) <= 1e-9 * max(abs(want), 1e-300),
                f"{name}: {what} {got!r}, numpy {want!r}")


def main():
    a_path, b_path, report, atol, rtol = sys.argv[1:]
    atol, rtol = float(atol), float(rtol)
    _, ra = stlib.read_raw(a_path)
    _, rb = stlib.read_raw(b_path)
    with open(report) as f:
        r = json.load(f)
    changed = {c["name"]: c for c in r["changed"]}
    equal = {e["name"] for e in r["equal"]}
    stlib.check(sorted(r["only_a"]) == sorted(set(ra) - set(rb)), f"only_a {r['only_a']}")
    stlib.check(sorted(r["only_b"]) == sorted(set(rb) - set(ra)), f"only_b {r['only_b']}")
    for name in set(ra) & set(rb):
        ta, tb = ra[name], rb[name]
        if ta.shape != tb.shape:
            continue
        x, y = nr.values(ta), nr.values(tb)
        differ = int((~np.isclose(x, y, rtol=rtol, atol=atol, equal_nan=True)).sum())
        if differ == 0:
            stlib.check(name in equal, f"{name}: numpy finds it equal, modeltool does not")
            continue
        stlib.check(name in changed, f"{name}: numpy finds {differ} values differ, modeltool calls it equal")
        c = changed[name]
        stlib.check(c["differing"] == differ, f"{name}: {c['differing']} values differ, numpy {differ}")
        both = np.isfinite(x) & np.isfinite(y)
        fa, fb = x[both], y[both]
        if fa.size == 0:
            continue
        d = np.abs(fa - fb)
        flat = int(np.flatnonzero(both)[np.argmax(d)]) // (2 if ta.dtype == "C64" else 1)
        stlib.check(c["max_abs_diff"] == d.max(), f"{name}: max |a-b| {c['max_abs_diff']!r}, numpy {d.max()!r}")
        stlib.check(c["max_abs_index"] == flat, f"{name}: max |a-b| at {c['max_abs_index']}, numpy {flat}")
        want_pos = list(np.unravel_index(flat, ta.shape)) if ta.shape else []
        stlib.check(c["max_abs_position"] == [int(p) for p in want_pos],
                    f"{name}: position {c['max_abs_position']}, numpy {want_pos}")
        close(name, "mean |a-b|", c["mean_abs_diff"], d.mean())
        if (fa * fa).sum() > 0:
            close(name, "rel L2", c["rel_l2"], np.linalg.norm(fa - fb) / np.linalg.norm(fa))
        if (fa * fa).sum() > 0 and (fb * fb).sum() > 0:
            close(name, "cosine", c["cosine"], fa @ fb / (np.linalg.norm(fa) * np.linalg.norm(fb)))
    print(f"{len(set(ra) & set(rb))} common tensors agree with numpy")


if __name__ == "__main__":
    main()
