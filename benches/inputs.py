"""Writes the inputs of the benchmarks with numpy + the reference safetensors
(values like trained weights: normal * 0.02, seed 0, so every run gets the
same files). Each prints one line of JSON describing what it wrote.

    python inputs.py json_model OUT.safetensors [--vocab 30522] [--layers 5]
        The ~20M-parameter f32 model of the JSON benchmark: 13 tensors, the
        largest vocab x 384 (30522 x 384 by default: 20.3M parameters).
    python inputs.py minilm OUT.safetensors
        A MiniLM-shaped model (all-MiniLM-L6-v2's 104 tensors and shapes,
        22,713,728 parameters, 91 MB), as Python safetensors writes it.
    python inputs.py mlp DIR [--width 1024] [--layers 3] [--batch 8192]
        DIR/mlp.safetensors, an nn.Sequential-style relu MLP (0.weight,
        0.bias, 2.weight, ...), and DIR/input.safetensors, tensor `input` of
        batch x width.

The 175B sharded checkpoint and the large random files come from
make_gpt3_shards.py and make_random_safetensors.py.
"""
import argparse
import json

import numpy as np
from safetensors.numpy import save_file


def describe(path, tensors, **extra):
    params = sum(int(t.size) for t in tensors.values())
    float_bytes = sum(int(t.nbytes) for t in tensors.values() if t.dtype.kind == "f")
    print(json.dumps({"path": path, "tensors": len(tensors), "parameters": params,
                      "tensor_bytes": sum(int(t.nbytes) for t in tensors.values()),
                      "float_bytes": float_bytes, **extra}))


def json_model(args):
    rng = np.random.default_rng(0)
    d = 384
    shapes = {"embeddings.word.weight": (args.vocab, d), "embeddings.position.weight": (512, d)}
    for i in range(args.layers):
        shapes[f"layer.{i}.up.weight"] = (4 * d, d)
        shapes[f"layer.{i}.down.weight"] = (d, 4 * d)
    shapes["classifier.weight"] = (5632, d)
    t = {n: rng.standard_normal(s, dtype=np.float32) * np.float32(0.02) for n, s in shapes.items()}
    save_file(t, args.out)
    describe(args.out, t)


def minilm(args):
    rng = np.random.default_rng(0)
    d, ff, vocab = 384, 1536, 30522
    shapes = {"embeddings.word_embeddings.weight": (vocab, d),
              "embeddings.position_embeddings.weight": (512, d),
              "embeddings.token_type_embeddings.weight": (2, d),
              "embeddings.LayerNorm.weight": (d,), "embeddings.LayerNorm.bias": (d,)}
    for i in range(6):
        p = f"encoder.layer.{i}."
        for m in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            shapes[p + m + ".weight"], shapes[p + m + ".bias"] = (d, d), (d,)
        shapes[p + "attention.output.LayerNorm.weight"] = shapes[p + "attention.output.LayerNorm.bias"] = (d,)
        shapes[p + "intermediate.dense.weight"], shapes[p + "intermediate.dense.bias"] = (ff, d), (ff,)
        shapes[p + "output.dense.weight"], shapes[p + "output.dense.bias"] = (d, ff), (d,)
        shapes[p + "output.LayerNorm.weight"] = shapes[p + "output.LayerNorm.bias"] = (d,)
    shapes["pooler.dense.weight"], shapes["pooler.dense.bias"] = (d, d), (d,)
    t = {n: rng.standard_normal(s, dtype=np.float32) * np.float32(0.02) for n, s in shapes.items()}
    t["embeddings.position_ids"] = np.arange(512, dtype=np.int64).reshape(1, 512)
    save_file(t, args.out, metadata={"format": "pt"})
    describe(args.out, t)


def mlp(args):
    rng = np.random.default_rng(0)
    w = args.width
    t = {}
    for i in range(0, 2 * args.layers, 2):
        t[f"{i}.weight"] = (rng.standard_normal((w, w), dtype=np.float32) / np.float32(np.sqrt(w))).astype(np.float32)
        t[f"{i}.bias"] = rng.standard_normal(w, dtype=np.float32) * np.float32(0.1)
    save_file(t, f"{args.dir}/mlp.safetensors")
    save_file({"input": rng.standard_normal((args.batch, w), dtype=np.float32)}, f"{args.dir}/input.safetensors")
    describe(f"{args.dir}/mlp.safetensors", t, width=w, layers=args.layers, batch=args.batch,
             flops=2 * args.batch * w * w * args.layers)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("json_model")
    p.add_argument("out")
    p.add_argument("--vocab", type=int, default=30522)
    p.add_argument("--layers", type=int, default=5)
    p = sub.add_parser("minilm")
    p.add_argument("out")
    p = sub.add_parser("mlp")
    p.add_argument("dir")
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--batch", type=int, default=8192)
    args = ap.parse_args()
    {"json_model": json_model, "minilm": minilm, "mlp": mlp}[args.what](args)


if __name__ == "__main__":
    main()
