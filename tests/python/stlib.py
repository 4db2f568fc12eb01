"""Helpers shared by the interop scripts: read any safetensors file's raw
tensors (including dtypes numpy cannot hold, such as BF16 and F8), write
tensors of any dtype through the Python reference, and fail loudly."""

import hashlib
import json
import struct
import sys

import numpy as np
from safetensors import TensorSpec, serialize_file

# safetensors header dtype -> numpy dtype, for those numpy can hold.
NUMPY = {
    "BOOL": np.bool_,
    "U8": np.uint8,
    "I8": np.int8,
    "I16": np.int16,
    "U16": np.uint16,
    "I32": np.int32,
    "U32": np.uint32,
    "I64": np.int64,
    "U64": np.uint64,
    "F16": np.float16,
    "F32": np.float32,
    "F64": np.float64,
    "C64": np.complex64,
}

# The reference's TensorSpec name for each header dtype it can write.
SPEC_NAME = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "I16": "int16",
    "U16": "uint16",
    "I32": "int32",
    "U32": "uint32",
    "I64": "int64",
    "U64": "uint64",
    "F16": "float16",
    "BF16": "bfloat16",
    "F32": "float32",
    "F64": "float64",
    "C64": "complex64",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E5M2": "float8_e5m2",
    "F8_E5M2FNUZ": "float8_e5m2fnuz",
    "F8_E8M0": "float8_e8m0fnu",
    "F4": "float4_e2m1fn_x2",
}

CHECKSUM_PREFIX = "modeltool.sha256."
HEADER_KEY = "modeltool.header_sha256"


def fail(msg):
    """Ends the script with exit status 1 and `msg` on stderr."""
    print(f"interop check failed: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


class Raw:
    """One tensor as stored: header dtype, shape and little-endian bytes."""

    def __init__(self, dtype, shape, data):
        self.dtype = dtype
        self.shape = list(shape)
        self.data = bytes(data)

    def __repr__(self):
        return f"Raw({self.dtype}, {self.shape}, {self.data.hex()})"


def read_raw(path):
    """Parses a safetensors file by hand (the spec is one page) and returns
    (metadata dict or None, {name: Raw}). Independent of the reference, so
    it also reads dtypes `safetensors.numpy` refuses."""
    with open(path, "rb") as f:
        blob = f.read()
    check(len(blob) >= 8, f"{path}: shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    data = blob[8 + n :]
    meta = header.pop("__metadata__", None)
    tensors = {}
    end = 0
    for name, info in header.items():
        begin, stop = info["data_offsets"]
        check(stop <= len(data), f"{path}: tensor {name} ends past the data")
        end = max(end, stop)
        tensors[name] = Raw(info["dtype"], info["shape"], data[begin:stop])
    check(end == len(data), f"{path}: {len(data) - end} bytes of data belong to no tensor")
    return meta, tensors


def spec(dtype, array):
    """A TensorSpec for `array`'s bytes stored as header dtype `dtype`
    (for BF16 and F8, `array` holds the codes as uint16 or uint8)."""
    # For F4 the reference reads the shape as bytes and doubles the last
    # axis, two codes to a byte.
    # (Not np.ascontiguousarray: it turns a 0-d array into shape [1].)
    array = np.require(array, requirements="C")
    return TensorSpec(
        dtype=SPEC_NAME[dtype],
        shape=list(array.shape),
        data_ptr=array.ctypes.data,
        data_len=array.nbytes,
    )


def write(path, tensors, metadata=None):
    """Writes {name: (header dtype, array)} with the reference's
    `serialize_file`, which, unlike `safetensors.numpy.save_file`, also
    takes BF16 and F8 tensors given as raw codes."""
    # The arrays must outlive serialize_file: it reads them by address.
    arrays = {name: np.require(a, requirements="C") for name, (_, a) in tensors.items()}
    specs = {name: spec(dtype, arrays[name]) for name, (dtype, _) in tensors.items()}
    serialize_file(specs, path, metadata=metadata)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def same_raw(name, want, got):
    """Checks one tensor's dtype, shape and bytes."""
    check(got.dtype == want.dtype, f"tensor {name}: dtype {got.dtype}, expected {want.dtype}")
    check(got.shape == want.shape, f"tensor {name}: shape {got.shape}, expected {want.shape}")
    if got.data != want.data:
        where = f"{len(got.data)} bytes instead of {len(want.data)}"
        if len(got.data) == len(want.data):
            first = next(i for i, (a, b) in enumerate(zip(want.data, got.data)) if a != b)
            where = f"first difference at byte {first}"
        fail(
            f"tensor {name} ({want.dtype}): bytes differ, {where}"
            f"\n  expected {want.data.hex()}\n  got      {got.data.hex()}"
        )


def same_tensors(want, got, what):
    """Checks two {name: Raw} maps hold the same tensors bit for bit."""
    check(
        sorted(got) == sorted(want),
        f"{what}: tensor names {sorted(got)}, expected {sorted(want)}",
    )
    for name in want:
        same_raw(name, want[name], got[name])


def check_checksums(meta, tensors, path):
    """Every tensor has `modeltool.sha256.<name>` in the metadata and it is
    the sha256 of the tensor's bytes as Python computes it; the header has
    `modeltool.header_sha256` and it is the digest Python computes."""
    check(meta is not None, f"{path}: no __metadata__")
    for name, t in tensors.items():
        key = CHECKSUM_PREFIX + name
        check(key in meta, f"{path}: no {key} in __metadata__ {sorted(meta)}")
        want = sha256(t.data)
        check(meta[key] == want, f"{path}: {key} is {meta[key]}, Python's sha256 of the bytes is {want}")
    stray = [k for k in meta if k.startswith(CHECKSUM_PREFIX) and k[len(CHECKSUM_PREFIX):] not in tensors]
    check(not stray, f"{path}: checksums for tensors that are not there: {stray}")
    stored, computed = header_sha256(path)
    check(stored is not None, f"{path}: no {HEADER_KEY} in __metadata__ {sorted(meta)}")
    check(stored == computed, f"{path}: {HEADER_KEY} is {stored}, Python's digest of the header is {computed}")


def header_sha256(path):
    """(the stored `modeltool.header_sha256` or None, the digest computed
    here) for the file at `path`, the way docs/FORMAT.md defines it: the
    sha256 of the header's canonical description, written independently of
    modeltool's code."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    meta = dict(header.get("__metadata__") or {})
    stored = meta.pop(HEADER_KEY, None)
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    text = json.dumps(
        {"metadata": meta, "tensors": tensors},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return stored, hashlib.sha256(text.encode("utf-8")).hexdigest()
