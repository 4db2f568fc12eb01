"""The `gguf` package (llama.cpp's Python reader and writer) as the reference
for modeltool's GGUF code (crates/format/tests/integration/gguf_interop.rs).

    gguf_reference.py write DIR   writes DIR/ref.gguf with metadata of every
                                  value type and a tensor of every ggml type
                                  the package can dequantize (quantized by
                                  the package where it can quantize, random
                                  blocks otherwise), DIR/<tensor>.f32 with
                                  gguf.quants.dequantize's output, the Q8_0
                                  quantizer's input and output, and
                                  DIR/manifest.json describing it all
    gguf_reference.py read FILE   prints FILE as the package reads it (JSON)
    gguf_reference.py bench N     times gguf.quants.dequantize on N Q4_K
                                  values; writes the blocks to stdout's path
"""

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import GGUFValueType as V
from gguf.quants import dequantize, quantize

QUANTIZABLE = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.TQ1_0, T.TQ2_0, T.MXFP4]
# Types the package dequantizes but does not quantize, with where each
# block's f16 scales sit (random bytes there could be NaN or inf).
RANDOM_ONLY = {
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
    T.IQ4_NL: [0], T.IQ4_XS: [0], T.NVFP4: [],
}
# The codebook types, from a generator of their own (the blocks of the
# types above stay what they were), in more blocks: each index reaches a
# row of a table of up to 2048, and random blocks should reach many.
CODEBOOK = {
    T.IQ2_XXS: [0], T.IQ2_XS: [0], T.IQ2_S: [0], T.IQ3_XXS: [0], T.IQ3_S: [0],
    T.IQ1_S: [0], T.IQ1_M: [],
}
# Quantizable types also get random blocks, to reach every bit pattern.
RANDOM_TOO = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.TQ1_0: [52], T.TQ2_0: [64], T.MXFP4: [],
}

METADATA = [
    ("t.u8", V.UINT8, 200), ("t.i8", V.INT8, -100), ("t.u16", V.UINT16, 60000),
    ("t.i16", V.INT16, -30000), ("t.u32", V.UINT32, 4000000000), ("t.i32", V.INT32, -2000000000),
    ("t.f32", V.FLOAT32, 0.15625), ("t.bool", V.BOOL, True), ("t.string", V.STRING, "héllo\u202e"),
    ("t.u64", V.UINT64, 2**63 + 5), ("t.i64", V.INT64, -(2**62)), ("t.f64", V.FLOAT64, 0.1),
    ("t.arr_i32", V.ARRAY, [1, -2, 3]), ("t.arr_str", V.ARRAY, ["a", "", "ü"]),
    ("t.arr_f32", V.ARRAY, [0.5, -1.25]), ("t.arr_bool", V.ARRAY, [True, False]),
    ("t.nested", V.ARRAY, [[1, 2], [3]]),
]


def finite_f16_bits(rng, n):
    # Clearing the top exponent bit keeps |x| < 2: no inf or NaN.
    return (rng.integers(0, 1 << 16, size=n, dtype=np.uint32) & 0xBFFF).astype(np.uint16)


def random_blocks(rng, qtype, scale_offsets, n_blocks):
    _, type_size = gguf.GGML_QUANT_SIZES[qtype]
    b = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for off in scale_offsets:
        b[:, off:off + 2] = finite_f16_bits(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
    if qtype == T.IQ1_M:
        # Its f16 scale is the top nibble of each of the four u16 scale
        # words (bytes 48..56); bit 14 of the f16 is bit 6 of byte 55.
        b[:, 55] &= 0xBF
    return b


def write(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1234)
    w = gguf.GGUFWriter(str(out / "ref.gguf"), arch="modeltool-test")
    w.add_custom_alignment(64)
    for key, vtype, value in METADATA:
        w.add_key_value(key, value, vtype)
    manifest = {"gguf_version": gguf_version(), "tensors": [],
                "package_dequantizes": package_dequantizes()}

    def add(name, qtype, data, shape):
        w.add_tensor(name, data, raw_dtype=qtype if data.dtype == np.uint8 else None)
        deq = dequantize(data, qtype).astype(np.float32, copy=False)
        (out / f"{name}.f32").write_bytes(deq.tobytes())
        manifest["tensors"].append({"name": name, "type": qtype.name, "shape": list(shape)})

    for qtype in QUANTIZABLE:
        block, _ = gguf.GGML_QUANT_SIZES[qtype]
        shape = (3, 2, 256)  # rows of 256: whole blocks of every type
        x = (rng.standard_normal(shape) * 0.05).astype(np.float32)
        x[0, 0, :block] = 0.0  # an all-zero block
        data = x if qtype == T.F32 else quantize(x, qtype)
        add(f"q.{qtype.name}", qtype, data, shape)
    for qtype, offsets in list(RANDOM_ONLY.items()) + list(RANDOM_TOO.items()):
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        rows, per_row = 4, max(1, 512 // block)
        data = random_blocks(rng, qtype, offsets, rows * per_row).reshape(rows, per_row * type_size)
        add(f"r.{qtype.name}", qtype, data, (rows, per_row * block))
    codebook_rng = np.random.default_rng(5678)
    for qtype, offsets in CODEBOOK.items():
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        rows, per_row = 64, max(1, 512 // block)
        data = random_blocks(codebook_rng, qtype, offsets, rows * per_row).reshape(rows, per_row * type_size)
        add(f"r.{qtype.name}", qtype, data, (rows, per_row * block))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # Q8_0 quantization: random values at several magnitudes, a block of
    # exact ties (x * (1/d) lands on k + 0.5), zeros and negative zeros.
    x = np.concatenate([
        (rng.standard_normal(32 * 64) * 10.0 ** rng.integers(-6, 4, 32 * 64)).astype(np.float32),
        np.array([127.0] + [k + 0.5 for k in range(-15, 16)], dtype=np.float32),
        np.zeros(32, dtype=np.float32), -np.zeros(32, dtype=np.float32),
    ])
    (out / "q8_in.f32").write_bytes(x.tobytes())
    (out / "q8_out.bin").write_bytes(quantize(x.reshape(-1, 32), T.Q8_0).tobytes())
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))


def package_dequantizes():
    """Every ggml type gguf.quants.dequantize decodes."""
    names = []
    for t in T:
        try:
            _, type_size = gguf.GGML_QUANT_SIZES[t]
            dequantize(np.zeros((1, type_size), dtype=np.uint8), t)
        except (NotImplementedError, KeyError):
            continue
        names.append(t.name)
    return names


def gguf_version():
    from importlib.metadata import version
    return version("gguf")


def read(path):
    r = gguf.GGUFReader(path)
    fields = {}
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue
        value = f.contents()
        vtype = f.types[0].name
        if f.types[0] == V.ARRAY:
            vtype += ":" + f.types[-1].name
        fields[name] = {"type": vtype, "value": value}
    tensors = []
    for t in r.tensors:
        raw = np.asarray(t.data).tobytes()
        tensors.append({
            "name": t.name, "type": t.tensor_type.name, "ne": [int(d) for d in t.shape],
            "n_bytes": int(t.n_bytes), "sha256": hashlib.sha256(raw).hexdigest(),
            "offset": int(t.data_offset),
        })
    print(json.dumps({"alignment": int(r.alignment), "fields": fields, "tensors": tensors}))


def bench(n, path):
    rng = np.random.default_rng(7)
    # Rows of 4096 values (a Llama-7B width): 16 blocks each.
    rows = max(1, n // 4096)
    blocks = random_blocks(rng, T.Q4_K, [0, 2], rows * 16).reshape(rows, 16 * 144)
    Path(path).write_bytes(blocks.tobytes())
    start = time.perf_counter()
    out = dequantize(blocks, T.Q4_K)
    secs = time.perf_counter() - start
    print(json.dumps({"values": int(out.size), "seconds": secs,
                      "sha256": hashlib.sha256(out.tobytes()).hexdigest()}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "write":
        write(sys.argv[2])
    elif cmd == "read":
        read(sys.argv[2])
    elif cmd == "bench":
        bench(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(f"unknown command {cmd}")
