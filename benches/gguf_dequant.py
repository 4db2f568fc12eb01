"""The peer of modeltool-format's `gguf_dequant` example: reads raw ggml
blocks from a file and dequantizes them to f32 with the `gguf` package's
`gguf.quants.dequantize`, once.

    python benches/gguf_dequant.py TYPE FILE [--sha256]

Prints JSON: the number of values, the seconds dequantize took in process,
and with --sha256 the sha256 of the little-endian f32 output (the example
prints the same hash for the same blocks).
"""

import hashlib
import json
import sys
import time

import numpy as np
import gguf
from gguf.quants import dequantize


def main():
    qtype = gguf.GGMLQuantizationType[sys.argv[1]]
    _, type_size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = np.fromfile(sys.argv[2], dtype=np.uint8).reshape(-1, type_size)
    start = time.perf_counter()
    out = dequantize(blocks, qtype).astype(np.float32, copy=False)
    seconds = time.perf_counter() - start
    sha = hashlib.sha256(out.tobytes()).hexdigest() if "--sha256" in sys.argv[3:] else None
    print(json.dumps({"values": int(out.size), "seconds": seconds, "sha256": sha}))


if __name__ == "__main__":
    main()
