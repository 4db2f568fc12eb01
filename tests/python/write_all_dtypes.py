"""Usage: write_all_dtypes.py OUT.safetensors

Writes, with the Python reference, one tensor of every dtype it can write
(numpy's, plus BF16, the F8 types and F4 given as raw codes), each holding
edge values: extremes of every integer type, -0.0, subnormals, infinities,
quiet, signalling and negative NaNs with payloads. Plus a 0-d scalar, empty
tensors and a 3-d tensor."""

import sys

import numpy as np

import stlib


def bits(dtype, uint, codes):
    """A float array with exactly these bit patterns."""
    return np.array(codes, dtype=uint).view(dtype)


def tensors():
    i = np.iinfo
    t = {
        "bool": ("BOOL", np.array([True, False, False, True])),
        "u8": ("U8", np.array([0, 1, 127, 128, 255], dtype=np.uint8)),
        "i8": ("I8", np.array([i(np.int8).min, -1, 0, 1, i(np.int8).max], dtype=np.int8)),
        "i16": ("I16", np.array([i(np.int16).min, -1, 0, 1, 256, i(np.int16).max], dtype=np.int16)),
        "u16": ("U16", np.array([0, 1, 0x8000, 0xFFFF], dtype=np.uint16)),
        "i32": ("I32", np.array([i(np.int32).min, -1, 0, 1, 1 << 24, i(np.int32).max], dtype=np.int32)),
        "u32": ("U32", np.array([0, 1, 1 << 31, 0xFFFF_FFFF], dtype=np.uint32)),
        # 2**53 + 1 is not a double: a reader going through f64 loses it.
        "i64": ("I64", np.array([i(np.int64).min, -(2**53) - 1, -1, 0, 2**53 + 1, i(np.int64).max], dtype=np.int64)),
        "u64": ("U64", np.array([0, 1, 2**53 + 1, 1 << 63, i(np.uint64).max], dtype=np.uint64)),
        "f16": ("F16", bits(np.float16, np.uint16, [
            0x0000, 0x8000,  # 0, -0
            0x0001, 0x03FF,  # smallest and largest subnormal
            0x0400, 0x7BFF,  # smallest normal, max 65504
            0x3C00, 0x3555,  # 1, ~1/3
            0x7C00, 0xFC00,  # inf, -inf
            0x7E00, 0xFE00,  # quiet NaN, negative quiet NaN
            0x7C01, 0x7FFF, 0x7D55,  # signalling NaN, payloads
        ])),
        "f32": ("F32", bits(np.float32, np.uint32, [
            0x0000_0000, 0x8000_0000,
            0x0000_0001, 0x007F_FFFF, 0x8000_0001,  # subnormals
            0x0080_0000, 0x7F7F_FFFF, 0xFF7F_FFFF,  # smallest normal, max, -max
            0x3DCC_CCCD, 0x4049_0FDB,  # 0.1, pi
            0x7F80_0000, 0xFF80_0000,
            0x7FC0_0000, 0xFFC0_0000,
            0x7F80_0001, 0x7FC0_0001, 0x7FFF_FFFF, 0xFFAB_CDEF,
        ])),
        "f64": ("F64", bits(np.float64, np.uint64, [
            0x0000_0000_0000_0000, 0x8000_0000_0000_0000,
            0x0000_0000_0000_0001, 0x000F_FFFF_FFFF_FFFF,
            0x0010_0000_0000_0000, 0x7FEF_FFFF_FFFF_FFFF,
            0x3FB9_9999_9999_999A, 0x4009_21FB_5444_2D18,  # 0.1, pi
            0x3FF0_0000_0000_0001,  # 1 + ulp: needs 17 digits
            0x7FF0_0000_0000_0000, 0xFFF0_0000_0000_0000,
            0x7FF8_0000_0000_0000, 0xFFF8_0000_0000_0000,
            0x7FF0_0000_0000_0001, 0x7FF8_0000_DEAD_BEEF, 0x7FFF_FFFF_FFFF_FFFF,
        ])),
        # Real and imaginary parts as f32 bit patterns.
        "c64": ("C64", bits(np.float32, np.uint32, [
            0x3F80_0000, 0xC000_0000,  # 1 - 2j
            0x8000_0000, 0x7F80_0000,  # -0 + inf j
            0x7FC0_0000, 0xFF80_0000,  # NaN - inf j
            0x0000_0001, 0x7FC0_0001,  # subnormal + NaN-with-payload j
        ]).view(np.complex64)),
        "bf16": ("BF16", np.array([
            0x0000, 0x8000,  # 0, -0
            0x0001, 0x007F,  # subnormals
            0x0080, 0x7F7F, 0xFF7F,  # smallest normal, max, -max
            0x3F80, 0x3DCD, 0x4049,  # 1, ~0.1, ~pi
            0x7F80, 0xFF80,
            0x7FC0, 0xFFC0, 0x7F81, 0x7FFF,
        ], dtype=np.uint16)),
        "scalar": ("F32", np.array(-2.5, dtype=np.float32)),
        "scalar_i64": ("I64", np.array(i(np.int64).min, dtype=np.int64)),
        "empty": ("F32", np.zeros((0, 3), dtype=np.float32)),
        "empty_u8": ("U8", np.zeros((4, 0), dtype=np.uint8)),
        "cube": ("F32", np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7),
    }
    # Every code of every 8-bit float type, and every byte (two codes) of F4.
    codes = np.arange(256, dtype=np.uint8)
    for name in ["F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F8_E8M0", "F4"]:
        t[name.lower()] = (name, codes)
    return t


def main():
    (out,) = sys.argv[1:]
    stlib.write(out, tensors(), metadata={"source": "write_all_dtypes.py"})


if __name__ == "__main__":
    main()
