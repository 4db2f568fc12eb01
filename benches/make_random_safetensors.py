"""Writes a large safetensors file of random-ish f32 values (normal * 0.02,
like trained weights: real data, not sparse zeros), streaming, so memory
stays at one chunk however large the file. Each tensor's sha256 is stored as
modeltool's checksum (`modeltool.sha256.<name>` in __metadata__, see
docs/FORMAT.md), so `modeltool verify` checks every tensor against it.
Usage: make_random_safetensors.py OUT --tensors 4 --rows 16384 --cols 16384
"""
import argparse
import hashlib
import json
import struct

import numpy as np

CHUNK_ROWS_BYTES = 64 << 20


def header(tensors, sums):
    h = {"__metadata__": {f"modeltool.sha256.{n}": s for n, s in zip(tensors, sums)}}
    offset = 0
    for name, (rows, cols) in tensors.items():
        n = rows * cols * 4
        h[name] = {"dtype": "F32", "shape": [rows, cols], "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(h, separators=(",", ":")).encode()
    return text + b" " * (-len(text) % 8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--tensors", type=int, default=4)
    ap.add_argument("--rows", type=int, default=16384)
    ap.add_argument("--cols", type=int, default=16384)
    args = ap.parse_args()
    tensors = {f"layers.{i}.weight": (args.rows, args.cols) for i in range(args.tensors)}
    # Checksums have a fixed length: write placeholders, then the real header.
    text = header(tensors, ["0" * 64] * len(tensors))
    rng = np.random.default_rng(0)
    sums = []
    chunk_rows = max(1, CHUNK_ROWS_BYTES // (4 * args.cols))
    with open(args.out, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for rows, cols in tensors.values():
            h = hashlib.sha256()
            for start in range(0, rows, chunk_rows):
                a = rng.standard_normal((min(chunk_rows, rows - start), cols), dtype=np.float32)
                a *= np.float32(0.02)
                b = a.astype("<f4").tobytes()
                h.update(b)
                f.write(b)
            sums.append(h.hexdigest())
        final = header(tensors, sums)
        assert len(final) == len(text)
        f.seek(8)
        f.write(final)
    total = sum(r * c for r, c in tensors.values())
    print(f"{args.out}: {len(tensors)} F32 tensors, {total:,} values, {8 + len(text) + total * 4:,} bytes")


if __name__ == "__main__":
    main()
