"""Usage: check_cast.py ORIGINAL.safetensors RESULT.safetensors f16|bf16|f32

RESULT is `modeltool convert --dtype T` of ORIGINAL. Checks every float
tensor (F16, BF16, F32, F64) against numpy's round-to-nearest-even:
`astype` for F16 and F32 targets, uint32 arithmetic for BF16 (and an exact
rational rounding for F64 to BF16, which has no single numpy step). NaN must
stay NaN with its sign, and the default quiet NaN must stay the target's
default quiet NaN; other payloads are up to the implementation. Other dtypes
must pass through untouched. Prints, as JSON, the counts the convert report
should show."""

import json
import math
import sys
from fractions import Fraction

import numpy as np

import stlib

FLOATS = ("F16", "BF16", "F32", "F64")
UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}
QUIET = {"F16": 0x7E00, "BF16": 0x7FC0, "F32": 0x7FC0_0000, "F64": 0x7FF8_0000_0000_0000}
SIGN = {"F16": 0x8000, "BF16": 0x8000, "F32": 0x8000_0000, "F64": 0x8000_0000_0000_0000}


def values(t):
    """The tensor's values as float64 (exact for every float dtype)."""
    if t.dtype == "BF16":
        u = np.frombuffer(t.data, dtype=np.uint16).astype(np.uint32) << 16
        return u.view(np.float32).astype(np.float64)
    return np.frombuffer(t.data, dtype=stlib.NUMPY[t.dtype]).astype(np.float64)


def f32_to_bf16(x):
    """Round-to-nearest-even of float32 array `x` to BF16 codes."""
    u = x.view(np.uint32).astype(np.uint64)  # room for the carry
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return rounded


def f64_to_bf16(v):
    """Exact RNE of one float64 to BF16 (8 significant bits, exponents
    -126..127, subnormals below), as a BF16 code, for non-NaN `v`."""
    sign = 0x8000 if math.copysign(1.0, v) < 0 else 0
    a = abs(v)
    if math.isinf(a):
        return sign | 0x7F80
    if a == 0:
        return sign
    _, e = math.frexp(a)  # a = m * 2^e, m in [0.5, 1)
    quantum = max(e - 1, -126) - 7
    n = round(Fraction(a) / Fraction(2) ** quantum)  # round() on Fraction ties to even
    r = n * Fraction(2) ** quantum
    if r >= 2**128:
        return sign | 0x7F80
    code = int(np.array(float(r), dtype=np.float32).view(np.uint32)) >> 16
    return sign | code


def expected(t, to):
    """Expected codes (uint array) of casting tensor `t` to dtype `to`."""
    if t.dtype == "BF16":
        x32 = (np.frombuffer(t.data, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
    elif t.dtype != "F64":
        x32 = np.frombuffer(t.data, dtype=stlib.NUMPY[t.dtype]).astype(np.float32)  # exact
    if to == "F16":
        src = np.frombuffer(t.data, dtype=stlib.NUMPY[t.dtype]) if t.dtype != "BF16" else x32
        return src.astype(np.float16).view(np.uint16)
    if to == "F32":
        if t.dtype == "F64":
            return np.frombuffer(t.data, dtype=np.float64).astype(np.float32).view(np.uint32)
        return x32.view(np.uint32)
    if to == "BF16":
        if t.dtype == "F64":
            v = np.frombuffer(t.data, dtype=np.float64)
            return np.array([0 if math.isnan(x) else f64_to_bf16(x) for x in v], dtype=np.uint16)
        return f32_to_bf16(x32)
    raise ValueError(to)


def main():
    np.seterr(invalid="ignore", over="ignore")  # NaN and overflow are meant
    original, result, target = sys.argv[1:]
    to = {"f16": "F16", "bf16": "BF16", "f32": "F32"}[target]
    _, want = stlib.read_raw(original)
    meta, got = stlib.read_raw(result)
    stlib.check(sorted(got) == sorted(want), f"{result}: tensors {sorted(got)}")
    stlib.check_checksums(meta, got, result)
    counts = {"cast_tensors": 0, "cast_values": 0, "inexact_values": 0}
    errors = []  # rounding errors, reported for all tensors at the end
    for name, src in want.items():
        out = got[name]
        stlib.check(out.shape == src.shape, f"{name}: shape {out.shape}, expected {src.shape}")
        if src.dtype not in FLOATS or src.dtype == to:
            stlib.same_raw(name, src, out)
            continue
        stlib.check(out.dtype == to, f"{name}: dtype {out.dtype} after casting {src.dtype} to {to}")
        size = {"F16": 2, "BF16": 2, "F32": 4}[to]
        codes = np.frombuffer(out.data, dtype=UINT[size])
        v = values(src)
        exp = expected(src, to)
        stlib.check(len(codes) == len(v), f"{name}: {len(codes)} values, expected {len(v)}")
        nan_in = np.isnan(v)
        out_values = values(stlib.Raw(to, out.shape, out.data))
        # Non-NaN: exactly numpy's bits.
        bad = np.flatnonzero(~nan_in & (codes != exp))
        src_codes = np.frombuffer(src.data, dtype=UINT[len(src.data) // len(v)]) if len(v) else codes
        if bad.size:
            lines = [
                f"{name}[{i}]: {src.dtype} {int(src_codes[i]):#x} ({float(v[i])!r}) cast to {to} "
                f"gives {int(codes[i]):#x}, round-to-nearest-even is {int(exp[i]):#x}"
                for i in bad[:5]
            ]
            errors.append(f"{bad.size} of {len(v)} values of {name} rounded wrongly:\n  " + "\n  ".join(lines))
        # NaN: NaN with the same sign; the default quiet NaN stays default.
        for i in np.flatnonzero(nan_in):
            c, s = int(codes[i]), int(src_codes[i])
            stlib.check(math.isnan(out_values[i]), f"{name}[{i}]: NaN {s:#x} became {c:#x}, not a NaN")
            stlib.check(bool(c & SIGN[to]) == bool(s & SIGN[src.dtype]), f"{name}[{i}]: NaN {s:#x} became {c:#x}, another sign")
            if s & ~SIGN[src.dtype] == QUIET[src.dtype]:
                stlib.check(c & ~SIGN[to] == QUIET[to], f"{name}[{i}]: quiet NaN {s:#x} became {c:#x}, not {QUIET[to]:#x}")
        counts["cast_tensors"] += 1
        counts["cast_values"] += len(v)
        counts["inexact_values"] += int(np.sum(~nan_in & (out_values != v)))
    if errors:
        stlib.fail("\n".join(errors))
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
