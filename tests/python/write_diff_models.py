"""Usage: write_diff_models.py A.safetensors B.safetensors

Two models for the `diff` test (fixed seed): B holds A's F32 tensors cast
to BF16 (round to nearest even) for one, with a few values changed, NaN at
the same place and NaN against a number for another, a tensor only in A,
one only in B, and one with another shape."""

import sys

import numpy as np

import stlib


def to_bf16_codes(x):
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def main():
    a_path, b_path = sys.argv[1:]
    rng = np.random.default_rng(11)
    w = rng.standard_normal((40, 30, 5)).astype(np.float32)
    v = rng.standard_normal(1000).astype(np.float32)
    v[[3, 500]] = np.nan
    v2 = v.copy()
    v2[500] = 1.0  # NaN against a number
    v2[7] += 0.25
    v2[8] += 1e-6
    same = rng.standard_normal(64).astype(np.float32)
    stlib.write(a_path, {
        "w": ("F32", w), "v": ("F32", v), "same": ("F32", same),
        "only_a": ("F32", same), "reshaped": ("F32", same.reshape(8, 8)),
        "big": ("F32", rng.standard_normal(1_200_000).astype(np.float32)),
    })
    _, ra = stlib.read_raw(a_path)
    b_big = np.frombuffer(ra["big"].data, dtype="<f4").copy()
    b_big[1_100_003] -= 3.0
    stlib.write(b_path, {
        "w": ("BF16", to_bf16_codes(w)), "v": ("F32", v2), "same": ("F32", same),
        "only_b": ("F32", same), "reshaped": ("F32", same.reshape(4, 16)), "big": ("F32", b_big),
    })


if __name__ == "__main__":
    main()
