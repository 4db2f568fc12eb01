"""Checks modeltool's GGUF conversions against the `gguf` package (llama.cpp's
reader, quantizer and dequantizer); used by tests/gguf_cli.rs.

    gguf_convert_check.py dequantized DIR OUT.safetensors
        DIR was written by `gguf_reference.py write DIR`; every tensor of
        DIR/ref.gguf must be in OUT.safetensors with its row-major shape and,
        as f32, bit for bit gguf.quants.dequantize's output (DIR/<name>.f32)
    gguf_convert_check.py read-back IN.safetensors OUT.gguf
        OUT.gguf was written by modeltool from IN.safetensors: the package
        reads it, every tensor has IN's shape and bytes (F32/F16/BF16), or
        is Q8_0 blocks equal to gguf.quants.quantize of IN's values; IN's
        metadata and modeltool's checksums are string values

Exits 1 naming the first tensor or key that differs.
"""

import json
import struct
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def read_safetensors(path):
    """Tensors as (dtype, shape, raw bytes), and the metadata (bf16 needs no torch)."""
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, t in header.items():
        a, b = t["data_offsets"]
        out[name] = (t["dtype"], t["shape"], data[base + a:base + b])
    return out, meta


def as_f32(dtype, raw):
    if dtype == "F32":
        return np.frombuffer(raw, dtype="<f4")
    if dtype == "F16":
        return np.frombuffer(raw, dtype="<f2").astype(np.float32)
    if dtype == "BF16":
        return (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    fail(f"unexpected dtype {dtype}")


def dequantized(ref_dir, st):
    ref_dir = Path(ref_dir)
    manifest = json.loads((ref_dir / "manifest.json").read_text())
    tensors, _ = read_safetensors(st)
    for t in manifest["tensors"]:
        name = t["name"]
        if name not in tensors:
            fail(f"{name}: missing from {st}")
        dtype, shape, raw = tensors[name]
        if shape != t["shape"]:
            fail(f"{name}: shape {shape}, the package says {t['shape']}")
        got = as_f32(dtype, raw).view(np.uint32)
        want = np.frombuffer((ref_dir / f"{name}.f32").read_bytes(), dtype="<u4")
        if got.shape != want.shape:
            fail(f"{name}: {got.size} values, the package has {want.size}")
        diff = np.nonzero(got != want)[0]
        if diff.size:
            i = diff[0]
            fail(f"{name} ({t['type']}): value {i} is {got[i]:#010x}, the package says {want[i]:#010x}")
    print(f"{len(manifest['tensors'])} tensors bit-exact")


def read_back(st, path):
    tensors, meta = read_safetensors(st)
    r = gguf.GGUFReader(path)
    fields = {}
    for key, f in r.fields.items():
        if f.types and f.types[0] == gguf.GGUFValueType.STRING:
            fields[key] = bytes(f.parts[f.data[0]]).decode("utf-8")
    seen = set()
    for t in r.tensors:
        seen.add(t.name)
        if t.name not in tensors:
            fail(f"{t.name}: not in {st}")
        dtype, shape, raw = tensors[t.name]
        if list(reversed([int(d) for d in t.shape])) != shape:
            fail(f"{t.name}: shape {list(t.shape)} (ggml order), the input has {shape}")
        blocks = bytes(np.asarray(t.data).tobytes())
        if t.tensor_type == T.Q8_0:
            want = quantize(as_f32(dtype, raw).reshape(shape), T.Q8_0).tobytes()
        elif t.tensor_type.name == dtype:
            want = raw
        else:
            fail(f"{t.name}: stored as {t.tensor_type.name}, the input is {dtype}")
        if blocks != want:
            fail(f"{t.name} ({t.tensor_type.name}): bytes differ from the package's")
        if f"modeltool.sha256.{t.name}" not in fields:
            fail(f"{t.name}: no modeltool.sha256 string value")
    if seen != set(tensors):
        fail(f"tensors missing from {path}: {sorted(set(tensors) - seen)}")
    for k, v in meta.items():
        if k.startswith("modeltool.sha256.") or k == "modeltool.header_sha256":
            continue
        if fields.get(k) != v:
            fail(f"metadata {k}: {fields.get(k)!r}, the input has {v!r}")
    print(f"{len(seen)} tensors read back")


if __name__ == "__main__":
    cmd, a, b = sys.argv[1:4]
    {"dequantized": dequantized, "read-back": read_back}[cmd](a, b)
