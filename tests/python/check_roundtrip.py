"""Usage: check_roundtrip.py ORIGINAL.safetensors RESULT.safetensors

RESULT must hold ORIGINAL's tensors bit for bit (dtype, shape, bytes: NaN
payloads, -0.0 and all), keep ORIGINAL's metadata, carry a correct
`modeltool.sha256.<name>` for every tensor and a correct
`modeltool.header_sha256`, and the reference `safe_open`
must read every tensor numpy can hold to the same bits."""

import sys

import numpy as np
from safetensors import safe_open

import stlib


def reference_view(path, raw):
    """Reads `path` with the reference and checks it agrees with `raw`."""
    with safe_open(path, framework="numpy") as f:
        stlib.check(sorted(f.keys()) == sorted(raw), f"{path}: reference sees tensors {sorted(f.keys())}")
        for name, t in raw.items():
            if t.dtype not in stlib.NUMPY:
                continue  # BF16, F8, F4: safetensors.numpy has no type for them.
            a = f.get_tensor(name)
            stlib.check(a.dtype == np.dtype(stlib.NUMPY[t.dtype]), f"{path}: reference reads {name} as {a.dtype}, header says {t.dtype}")
            stlib.check(list(a.shape) == t.shape, f"{path}: reference reads {name} with shape {list(a.shape)}")
            stlib.check(a.tobytes() == t.data, f"{path}: reference reads different bytes for {name}")
        return f.metadata()


def main():
    original, result = sys.argv[1:]
    meta0, want = stlib.read_raw(original)
    meta1, got = stlib.read_raw(result)
    stlib.same_tensors(want, got, result)
    ref_meta = reference_view(result, got)
    stlib.check(ref_meta == meta1, f"{result}: reference metadata {ref_meta} differs from the header's {meta1}")
    stlib.check_checksums(meta1, got, result)
    for key, value in (meta0 or {}).items():
        if not key.startswith(stlib.CHECKSUM_PREFIX) and key != stlib.HEADER_KEY:
            stlib.check(meta1.get(key) == value, f"{result}: metadata {key} is {meta1.get(key)!r}, expected {value!r}")
    print(f"ok: {len(got)} tensors bit-identical, {len(got)} checksums match")


if __name__ == "__main__":
    main()
