"""Every stored value of a safetensors tensor as float64, decoded here from
the dtype's definition (independently of modeltool), and numpy's figures
for `modeltool stats` and `modeltool diff` to be checked against."""

import numpy as np

import stlib

# (exponent bits, mantissa bits, bias, kind) of the small float dtypes.
MINI = {
    "F8_E5M2": (5, 2, 15, "ieee"),
    "F8_E4M3": (4, 3, 7, "fn"),
    "F8_E4M3FNUZ": (4, 3, 8, "fnuz"),
    "F8_E5M2FNUZ": (5, 2, 16, "fnuz"),
    "F8_E8M0": (8, 0, 127, "e8m0"),
    "F4": (2, 1, 1, "finite"),
    "F6_E2M3": (2, 3, 1, "finite"),
    "F6_E3M2": (3, 2, 3, "finite"),
}

# The smallest normal magnitude per float dtype (smaller nonzero values are
# subnormal); E8M0 has none.
MIN_NORMAL = {
    "F16": 2.0**-14, "BF16": 2.0**-126, "F32": 2.0**-126, "C64": 2.0**-126, "F64": 2.0**-1022,
    "F8_E5M2": 2.0**-14, "F8_E4M3": 2.0**-6, "F8_E4M3FNUZ": 2.0**-7, "F8_E5M2FNUZ": 2.0**-15,
    "F4": 1.0, "F6_E2M3": 1.0, "F6_E3M2": 2.0**-2,
}

FLOATS = set(MIN_NORMAL) | {"F8_E8M0"}


def mini_value(dtype, code):
    e_bits, m_bits, bias, kind = MINI[dtype]
    if kind == "e8m0":
        return np.nan if code == 0xFF else 2.0 ** (code - 127)
    sign = 1 << (e_bits + m_bits)
    mag = code & (sign - 1)
    e, m = mag >> m_bits, mag & ((1 << m_bits) - 1)
    top = (1 << e_bits) - 1
    if kind == "ieee" and e == top:
        v = np.inf if m == 0 else np.nan
    elif kind == "fn" and mag == sign - 1:
        v = np.nan
    elif kind == "fnuz" and code == sign:
        return np.nan
    elif e == 0:
        v = m / (1 << m_bits) * 2.0 ** (1 - bias)
    else:
        v = (1 + m / (1 << m_bits)) * 2.0 ** (e - bias)
    return -v if code & sign else v


def codes(raw, bits):
    """The codes of a packed LSB-first bit stream."""
    b = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")
    b = b.reshape(-1, bits).astype(np.uint32)
    return (b << np.arange(bits, dtype=np.uint32)).sum(axis=1)


def values(t):
    """A Raw tensor's values as a flat float64 array (C64: re, im, re, ...)."""
    d = t.dtype
    if d == "BF16":
        u = np.frombuffer(t.data, dtype="<u2").astype(np.uint32) << 16
        return u.view(np.float32).astype(np.float64)
    if d == "C64":
        return np.frombuffer(t.data, dtype="<f4").astype(np.float64)
    if d in MINI:
        bits = {"F4": 4, "F6_E2M3": 6, "F6_E3M2": 6}.get(d, 8)
        table = np.array([mini_value(d, c) for c in range(1 << bits)])
        return table[codes(t.data, bits)] if bits < 8 else table[np.frombuffer(t.data, dtype=np.uint8)]
    return np.frombuffer(t.data, dtype=np.dtype(stlib.NUMPY[d]).newbyteorder("<")).astype(np.float64)


def exact_ints(t):
    """Integer tensors' values as Python ints (exact beyond 2^53)."""
    return np.frombuffer(t.data, dtype=np.dtype(stlib.NUMPY[t.dtype]).newbyteorder("<")).astype(object)
