"""Usage: write_big.py OUT.safetensors

Eleven tensors of 200 to 800 bytes and mixed numpy dtypes (so that
`safetensors.numpy.load_file` reads every shard), and with `--oversized` a
twelfth of 1.5 KB, more than a 1 KB shard holds. Written with the Python
reference, for the sharding test."""

import sys

import numpy as np

import stlib


def main():
    args = sys.argv[1:]
    oversized = "--oversized" in args
    (out,) = [a for a in args if a != "--oversized"]
    rng = np.random.default_rng(7)
    t = {}
    for k in range(8):
        n = [50, 100, 75, 200, 60, 120, 90, 150][k]
        t[f"layers.{k}.weight"] = ("F32", rng.standard_normal(n).astype(np.float32))
    t["embed.weight"] = ("F16", rng.standard_normal((16, 16)).astype(np.float16))
    t["embed.position"] = ("I64", np.arange(40, dtype=np.int64) - 20)
    t["norm.scale"] = ("I8", rng.integers(-128, 128, size=300, dtype=np.int8))
    if oversized:
        t["lm_head.weight"] = ("F64", rng.standard_normal(192))
    stlib.write(out, t, metadata={"source": "write_big.py"})


if __name__ == "__main__":
    main()
