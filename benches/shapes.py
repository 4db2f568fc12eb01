"""Writes models of real shapes with values like trained weights, for the
JSON and header benchmarks (numpy + the reference safetensors; seed 0, so
every run gets the same files). Each prints one line of JSON describing
what it wrote.

    python shapes.py bert OUT.safetensors [--vocab 30522] [--layers 6]
        BERT-shaped (all-MiniLM-L6-v2's tensor list: 104 tensors with the
        defaults, 22.7M parameters, 91 MB): a 30522 x 384 word embedding,
        512 x 384 positions, I64 position ids, per layer 384 x 384 attention
        and 384 x 1536 / 1536 x 384 feed-forward matrices, LayerNorm vectors.
    python shapes.py gpt2 OUT.safetensors [--vocab 8192] [--layers 2]
        GPT-2-shaped (d = 768, 1024 positions, Conv1D layout: c_attn
        768 x 2304, c_proj 768 x 768, c_fc 768 x 3072, mlp.c_proj 3072 x 768,
        ln_1/ln_2/ln_f). The full GPT-2 small (124M parameters, 50257 x 768
        vocabulary, 12 layers) is about 1.5 GB of JSON: Python's json.load
        of it needs minutes and ~10 GB, so by default the vocabulary is cut
        to 8192 rows and the stack to 2 layers (21M parameters, 85 MB).
    python shapes.py small OUT.safetensors [--tensors 100000]
        Many small tensors: LayerNorm weights and biases, biases and small
        projections of 8 to 256 values (about 10M parameters with 100k).
    python shapes.py header OUT.safetensors [--tensors 1400000]
        A safetensors file whose header (97.7 MB with the default, under
        the 100 MB cap) lists 1.4M scalar F32 tensors named `t0`,
        `t1`, ...; for inspect.
    python shapes.py header_shards OUT_DIR [--tensors 1400000] [--shards 2]
        A sharded checkpoint of such files: each shard's header lists
        `--tensors` scalar F32 tensors (`t0` ... across the shards, so
        names are as long as in one file), with a
        model.safetensors.index.json naming them all.

Values: weights are normal with a per-layer scale (0.02 / sqrt(2 (i + 1)),
as GPT-2 scales its residual projections), LayerNorm weights near 1
(1 + normal * 0.05), biases near 0 (normal * 0.01), embeddings normal *
0.02: the spread of exponents and digits of trained weights, not only
uniform noise.
"""
import argparse
import json
import struct

import numpy as np


def describe(path, tensors, **extra):
    print(json.dumps({"path": path, "tensors": len(tensors),
                      "parameters": sum(int(t.size) for t in tensors.values()),
                      "tensor_bytes": sum(int(t.nbytes) for t in tensors.values()), **extra}))


class Values:
    def __init__(self):
        self.rng = np.random.default_rng(0)

    def weight(self, shape, layer=0):
        scale = np.float32(0.02 / np.sqrt(2 * (layer + 1)))
        return self.rng.standard_normal(shape, dtype=np.float32) * scale

    def embedding(self, shape):
        return self.rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)

    def norm(self, n):
        return np.float32(1) + self.rng.standard_normal(n, dtype=np.float32) * np.float32(0.05)

    def bias(self, n):
        return self.rng.standard_normal(n, dtype=np.float32) * np.float32(0.01)


def save(tensors, out, **extra):
    from safetensors.numpy import save_file

    save_file(tensors, out, metadata={"format": "pt"})
    describe(out, tensors, **extra)


def bert(args):
    v, d, ff = Values(), 384, 1536
    t = {"embeddings.word_embeddings.weight": v.embedding((args.vocab, d)),
         "embeddings.position_embeddings.weight": v.embedding((512, d)),
         "embeddings.token_type_embeddings.weight": v.embedding((2, d)),
         "embeddings.LayerNorm.weight": v.norm(d), "embeddings.LayerNorm.bias": v.bias(d),
         "embeddings.position_ids": np.arange(512, dtype=np.int64).reshape(1, 512)}
    for i in range(args.layers):
        p = f"encoder.layer.{i}."
        for m in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            t[p + m + ".weight"], t[p + m + ".bias"] = v.weight((d, d), i), v.bias(d)
        t[p + "attention.output.LayerNorm.weight"], t[p + "attention.output.LayerNorm.bias"] = v.norm(d), v.bias(d)
        t[p + "intermediate.dense.weight"], t[p + "intermediate.dense.bias"] = v.weight((ff, d), i), v.bias(ff)
        t[p + "output.dense.weight"], t[p + "output.dense.bias"] = v.weight((d, ff), i), v.bias(d)
        t[p + "output.LayerNorm.weight"], t[p + "output.LayerNorm.bias"] = v.norm(d), v.bias(d)
    t["pooler.dense.weight"], t["pooler.dense.bias"] = v.weight((d, d)), v.bias(d)
    save(t, args.out, shape="bert", vocab=args.vocab, layers=args.layers)


def gpt2(args):
    v, d = Values(), 768
    t = {"wte.weight": v.embedding((args.vocab, d)), "wpe.weight": v.embedding((1024, d)) * np.float32(0.5)}
    for i in range(args.layers):
        p = f"h.{i}."
        t[p + "ln_1.weight"], t[p + "ln_1.bias"] = v.norm(d), v.bias(d)
        t[p + "attn.c_attn.weight"], t[p + "attn.c_attn.bias"] = v.weight((d, 3 * d), i), v.bias(3 * d)
        t[p + "attn.c_proj.weight"], t[p + "attn.c_proj.bias"] = v.weight((d, d), i), v.bias(d)
        t[p + "ln_2.weight"], t[p + "ln_2.bias"] = v.norm(d), v.bias(d)
        t[p + "mlp.c_fc.weight"], t[p + "mlp.c_fc.bias"] = v.weight((d, 4 * d), i), v.bias(4 * d)
        t[p + "mlp.c_proj.weight"], t[p + "mlp.c_proj.bias"] = v.weight((4 * d, d), i), v.bias(d)
    t["ln_f.weight"], t["ln_f.bias"] = v.norm(d), v.bias(d)
    save(t, args.out, shape="gpt2", vocab=args.vocab, layers=args.layers)


def small(args):
    v, t = Values(), {}
    sizes = (8, 16, 32, 64, 128, 256)
    for i in range(args.tensors):
        n = sizes[i % len(sizes)]
        block, kind = divmod(i, 4)
        name = f"blocks.{block}." + ("norm.weight", "norm.bias", "proj.bias", "proj.weight")[kind]
        if kind == 0:
            t[name] = v.norm(n)
        elif kind == 3:
            t[name] = v.weight((n // 8, 8), block % 12)
        else:
            t[name] = v.bias(n)
    save(t, args.out, shape="small")


def scalar_file(out, names):
    """A safetensors file of scalar F32 tensors, written directly: save_file
    of 1.4M arrays takes long and proves nothing. Returns its header bytes."""
    entries, offset = {}, 0
    for name in names:
        entries[name] = {"dtype": "F32", "shape": [], "data_offsets": [offset, offset + 4]}
        offset += 4
    text = json.dumps({"__metadata__": {"format": "pt"}, **entries}, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.write(np.arange(len(entries), dtype=np.float32).tobytes())
    return len(text)


def header(args):
    header_bytes = scalar_file(args.out, (f"t{i}" for i in range(args.tensors)))
    print(json.dumps({"path": args.out, "tensors": args.tensors, "header_bytes": header_bytes,
                      "tensor_bytes": 4 * args.tensors, "parameters": args.tensors}))


def header_shards(args):
    import os

    os.makedirs(args.out, exist_ok=True)
    weight_map, header_bytes = {}, 0
    for s in range(args.shards):
        shard = f"model-{s + 1:05}-of-{args.shards:05}.safetensors"
        names = [f"t{s * args.tensors + i}" for i in range(args.tensors)]
        header_bytes += scalar_file(os.path.join(args.out, shard), names)
        weight_map.update((n, shard) for n in names)
    total = 4 * args.tensors * args.shards
    with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    print(json.dumps({"path": args.out, "shards": args.shards, "tensors": len(weight_map),
                      "header_bytes": header_bytes, "tensor_bytes": total, "parameters": len(weight_map)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("bert")
    p.add_argument("out")
    p.add_argument("--vocab", type=int, default=30522)
    p.add_argument("--layers", type=int, default=6)
    p = sub.add_parser("gpt2")
    p.add_argument("out")
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--layers", type=int, default=2)
    p = sub.add_parser("small")
    p.add_argument("out")
    p.add_argument("--tensors", type=int, default=100_000)
    p = sub.add_parser("header")
    p.add_argument("out")
    p.add_argument("--tensors", type=int, default=1_400_000)
    p = sub.add_parser("header_shards")
    p.add_argument("out")
    p.add_argument("--tensors", type=int, default=1_400_000)
    p.add_argument("--shards", type=int, default=2)
    args = ap.parse_args()
    {"bert": bert, "gpt2": gpt2, "small": small, "header": header, "header_shards": header_shards}[args.what](args)


if __name__ == "__main__":
    main()
