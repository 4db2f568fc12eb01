"""Writes a GPT-3-shaped (175B parameters, bf16) sharded checkpoint whose
shards have real safetensors headers and holes for data (sparse files), in
the Hugging Face layout: model-0000i-of-0000N.safetensors plus
model.safetensors.index.json. About 350 GB apparent size, almost nothing on
disk. Usage: make_gpt3_shards.py OUT_DIR [--layers 96] [--max-shard-size 5e9]
"""
import argparse
import json
import os
import struct


def gpt3_tensors(layers, d=12288, vocab=50257, ctx=2048):
    yield "transformer.wte.weight", [vocab, d]
    yield "transformer.wpe.weight", [ctx, d]
    for i in range(layers):
        p = f"transformer.h.{i}."
        yield p + "ln_1.weight", [d]
        yield p + "ln_1.bias", [d]
        yield p + "attn.c_attn.weight", [d, 3 * d]
        yield p + "attn.c_attn.bias", [3 * d]
        yield p + "attn.c_proj.weight", [d, d]
        yield p + "attn.c_proj.bias", [d]
        yield p + "ln_2.weight", [d]
        yield p + "ln_2.bias", [d]
        yield p + "mlp.c_fc.weight", [d, 4 * d]
        yield p + "mlp.c_fc.bias", [4 * d]
        yield p + "mlp.c_proj.weight", [4 * d, d]
        yield p + "mlp.c_proj.bias", [d]
    yield "transformer.ln_f.weight", [d]
    yield "transformer.ln_f.bias", [d]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=96)
    ap.add_argument("--max-shard-size", type=float, default=5e9)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    # Hugging Face's greedy split, in order; bf16 is 2 bytes an element.
    shards, current, size = [], [], 0
    for name, shape in gpt3_tensors(args.layers):
        n = 2
        for s in shape:
            n *= s
        if n > args.max_shard_size:
            shards.append([(name, shape, n)])
            continue
        if current and size + n > args.max_shard_size:
            shards.append(current)
            current, size = [], 0
        current.append((name, shape, n))
        size += n
    if current:
        shards.append(current)
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        header, offset = {"__metadata__": {"format": "pt"}}, 0
        for name, shape, n in shard:
            header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + n]}
            offset += n
            weight_map[name] = fname
        total += offset
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)
        with open(os.path.join(args.out, fname), "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            f.truncate(8 + len(text) + offset)  # a hole where the data would be
    with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    params = total // 2
    print(f"{args.out}: {len(shards)} shards, {len(weight_map)} tensors, {params:,} parameters, {total:,} bytes of bf16")


if __name__ == "__main__":
    main()
