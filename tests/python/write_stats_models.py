"""Usage: write_stats_models.py OUT.safetensors

Random tensors of every float dtype (fixed seed), as raw codes where numpy
has no such type: normal values, NaN, both infinities, subnormals and zeros
sprinkled in; integer tensors with their extremes; and one F32 tensor of
1.5M values, larger than one piece modeltool reads at once."""

import sys

import numpy as np

import stlib


def sprinkle(rng, a, specials):
    a = a.copy()
    idx = rng.choice(a.size, size=len(specials), replace=False)
    a.reshape(-1)[idx] = specials
    return a


def main():
    (out,) = sys.argv[1:]
    rng = np.random.default_rng(7)
    special32 = np.array([np.nan, np.inf, -np.inf, 1e-40, -3e-42, 0.0, -0.0], dtype=np.float32)
    tensors = {
        "f32": ("F32", sprinkle(rng, rng.standard_normal((300, 70)).astype(np.float32), special32)),
        "f32.big": ("F32", sprinkle(rng, (rng.standard_normal(1_500_000) * 3 + 100).astype(np.float32), special32)),
        "f64": ("F64", sprinkle(rng, rng.standard_normal(5000) * 1e-3,
                                np.array([np.nan, np.inf, 5e-324, -1e-310, 0.0]))),
        "f16": ("F16", sprinkle(rng, rng.standard_normal((64, 33)).astype(np.float16),
                                np.array([np.nan, -np.inf, 1e-7, 0.0], dtype=np.float16))),
        "const": ("F32", np.full((10, 10), 0.1, dtype=np.float32)),
        "i64": ("I64", np.array([-(2**63), 2**63 - 1, 0, 5, -7], dtype=np.int64)),
        "u64": ("U64", np.array([2**64 - 1, 0, 2**53 + 1], dtype=np.uint64)),
        "i8": ("I8", rng.integers(-128, 128, size=999, dtype=np.int8)),
        "bool": ("BOOL", rng.integers(0, 2, size=100).astype(np.bool_)),
        "c64": ("C64", (rng.standard_normal(50) + 1j * rng.standard_normal(50)).astype(np.complex64)),
    }
    # Every code of the 16- and 8-bit float types that numpy lacks, twice,
    # shuffled: NaNs, infinities and subnormals of each.
    tensors["bf16"] = ("BF16", rng.permutation(np.tile(np.arange(1 << 16, dtype=np.uint16), 2)))
    for d in ["F8_E5M2", "F8_E4M3", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F8_E8M0"]:
        tensors[d.lower()] = (d, rng.permutation(np.tile(np.arange(256, dtype=np.uint8), 3)))
    # F4: two codes a byte, every pair.
    tensors["f4"] = ("F4", rng.permutation(np.arange(256, dtype=np.uint8)))
    stlib.write(out, tensors)


if __name__ == "__main__":
    main()
