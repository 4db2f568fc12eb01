"""Usage: write_floats.py OUT.safetensors

Float tensors for the `--dtype` tests, written with the Python reference:
ties (exact halfway cases) for F16 and BF16, values that round into the
subnormals, to zero and up to infinity, NaNs with payloads, and thousands of
random bit patterns (fixed seed); plus an integer and a complex tensor that a
cast must leave alone."""

import sys

import numpy as np

import stlib


def f32_bits(codes):
    return np.array(codes, dtype=np.uint32).view(np.float32)


def main():
    (out,) = sys.argv[1:]
    rng = np.random.default_rng(20240601)
    edge = [
        0x0000_0000, 0x8000_0000, 0x3F80_0000, 0xBF80_0000,
        # BF16 ties: 1 + half an ulp rounds down to even, 1 + 3 half-ulps up.
        0x3F80_8000, 0x3F81_8000, 0x3F80_8001, 0x3F80_7FFF,
        # F16 ties: 1 + 2^-11 and 1 + 3 * 2^-11.
        0x3F80_1000, 0x3F80_3000,
        # F16 subnormal range: 2^-25 (tie to 0), 3 * 2^-25, 2^-24, 2^-26.
        0x3300_0000, 0x33C0_0000, 0x3380_0000, 0x3280_0000,
        # Around F16's max 65504: 65519 (down), 65520 (tie to inf), 65536.
        0x477F_EF00, 0x477F_F000, 0x4780_0000,
        # F32 subnormals, BF16 ties among them, f32 max (BF16 rounds to inf).
        0x0000_0001, 0x0000_8000, 0x0001_8000, 0x007F_FFFF, 0x7F7F_FFFF, 0xFF7F_FFFF,
        0x7F80_0000, 0xFF80_0000,
        0x7FC0_0000, 0xFFC0_0000, 0x7F80_0001, 0x7FFF_FFFF, 0xFFFF_FFFF, 0x7FC0_8000, 0x7F80_8000,
    ]
    random_bits = rng.integers(0, 2**32, size=4096, dtype=np.uint64).astype(np.uint32)
    # Values in F16's range, where most rounding happens.
    moderate = (rng.standard_normal(2048) * np.exp2(rng.integers(-26, 17, size=2048))).astype(np.float32)
    f64 = np.concatenate([
        np.array([0.0, -0.0, 1.0 + 2.0**-11, 1.0 + 2.0**-11 + 2.0**-40, 65519.999, 65520.0, 2.0**-25,
                  2.0**-25 + 2.0**-60, 1.0 + 2.0**-8, 1.0 + 2.0**-8 + 2.0**-50, 3.4e38, 3.5e38, 1e-45,
                  np.inf, -np.inf, 1e300, -1e-300], dtype=np.float64),
        np.array([0x7FF8_0000_0000_0000, 0xFFF8_0000_0000_0000, 0x7FF0_0000_0000_0001], dtype=np.uint64).view(np.float64),
        rng.standard_normal(1024) * np.exp2(rng.integers(-140, 130, size=1024)),
    ])
    f16 = np.arange(0, 1 << 16, 7, dtype=np.uint16).view(np.float16)
    bf16 = np.arange(0, 1 << 16, 5, dtype=np.uint16)
    stlib.write(out, {
        "edge": ("F32", f32_bits(edge)),
        "random_bits": ("F32", random_bits.view(np.float32).reshape(64, 64)),
        "moderate": ("F32", moderate),
        "f64": ("F64", f64),
        "f16": ("F16", f16),
        "bf16": ("BF16", bf16),
        "scalar": ("F32", np.array(1.0 + 2.0**-11, dtype=np.float32)),
        "empty": ("F64", np.zeros((0,), dtype=np.float64)),
        "ints": ("I32", np.array([-1, 0, 1 << 30], dtype=np.int32)),
        "complex": ("C64", np.array([1.0 + 2.0**-11 + 0.1j], dtype=np.complex64)),
    }, metadata={"source": "write_floats.py"})


if __name__ == "__main__":
    main()
