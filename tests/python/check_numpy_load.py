"""Usage: check_numpy_load.py ORIGINAL.safetensors RESULT.safetensors

For files of numpy dtypes only: `safetensors.numpy.load_file` loads RESULT
to arrays with the same dtypes, shapes and bits as ORIGINAL's; the
reference `safe_open` sees ORIGINAL's metadata (`source`) and a
`modeltool.sha256.<name>` per tensor equal to Python's own sha256 of the
tensor's bytes."""

import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

import stlib


def main():
    original, result = sys.argv[1:]
    want = load_file(original)
    got = load_file(result)
    stlib.check(sorted(got) == sorted(want), f"{result}: tensors {sorted(got)}, expected {sorted(want)}")
    for name, a in want.items():
        b = got[name]
        stlib.check(b.dtype == a.dtype, f"{name}: dtype {b.dtype}, expected {a.dtype}")
        stlib.check(b.shape == a.shape, f"{name}: shape {b.shape}, expected {a.shape}")
        # Compare bits, not values: NaN != NaN and -0.0 == 0.0 as values.
        stlib.check(
            a.tobytes() == b.tobytes(),
            f"{name}: bits differ\n  expected {a.tobytes().hex()}\n  got      {b.tobytes().hex()}",
        )
    with safe_open(original, framework="numpy") as f:
        meta0 = f.metadata() or {}
    with safe_open(result, framework="numpy") as f:
        meta = f.metadata()
        stlib.check(meta is not None, f"{result}: the reference sees no __metadata__")
        for key, value in meta0.items():
            if not key.startswith(stlib.CHECKSUM_PREFIX):
                stlib.check(meta.get(key) == value, f"{result}: metadata {key} is {meta.get(key)!r}, expected {value!r}")
        arrays = {name: f.get_tensor(name) for name in f.keys()}
    # The tensor's bytes as stored: numpy's little-endian buffer.
    raw = {name: stlib.Raw("", a.shape, np.ascontiguousarray(a).tobytes()) for name, a in arrays.items()}
    stlib.check_checksums(meta, raw, result)
    print(f"ok: {len(got)} tensors load with equal bits, metadata {sorted(meta)}")


if __name__ == "__main__":
    main()
