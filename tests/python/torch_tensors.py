"""The reference for modeltool's PyTorch checkpoint reader: torch itself.

    python torch_tensors.py write DIR      writes fresh checkpoints into DIR
    python torch_tensors.py dump FILE...   prints, as JSON, every tensor torch
                                           loads from each FILE
    python torch_tensors.py shards DIR     writes a sharded checkpoint into
                                           DIR as Hugging Face does without
                                           safetensors, and all.pt beside it

`dump` loads with `torch.load` (trusted files only: see below) (TorchScript archives with
`torch.jit.load`, their `state_dict()` plus buffers) and prints, per file,
each tensor's path (dict keys and list indices joined by `.`), dtype, shape
and the hex of `tensor.contiguous()`'s bytes (bf16 and f8 through
`.view(torch.uint8)`). A file torch refuses prints {"error": "..."}.

`write` makes checkpoints the fixtures do not have: seeded random values of
every dtype, odd views, several formats and pickle protocols.
"""

import json
import os
import sys

import torch


def raw(t):
    t = t.detach().contiguous()
    if t.dim() == 0:
        t = t.reshape(1)
    if t.dtype == torch.bfloat16 or "float8" in str(t.dtype):
        t = t.view(torch.uint8)
    return t.numpy().tobytes()


def walk(obj, prefix, out):
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            walk(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            walk(v, f"{prefix}.{i}" if prefix else str(i), out)
    return out


def dump(paths):
    result = {}
    for path in paths:
        try:
            import zipfile

            script = zipfile.is_zipfile(path) and any(
                n.endswith("/constants.pkl") for n in zipfile.ZipFile(path).namelist()
            )
            if script:
                m = torch.jit.load(path)
                tensors = dict(m.state_dict())
            else:
                # weights_only=False: torch's own restricted unpickler
                # cannot read protocol 4 (FRAME). The files are the repo's
                # fixtures and what `write` made in the test's folder.
                tensors = walk(torch.load(path, weights_only=False), "", {})
            result[os.path.basename(path)] = {
                name: {
                    "dtype": str(t.dtype).replace("torch.", ""),
                    "shape": list(t.shape),
                    "hex": raw(t).hex(),
                }
                for name, t in tensors.items()
            }
        except Exception as e:  # noqa: BLE001 -- reported to the test
            result[os.path.basename(path)] = {"error": f"{type(e).__name__}: {e}"}
    json.dump(result, sys.stdout)


def write(out):
    g = torch.Generator().manual_seed(1234)
    floats = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
    f8 = [torch.float8_e4m3fn, torch.float8_e5m2, torch.float8_e4m3fnuz, torch.float8_e5m2fnuz]
    ints = [torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8]
    obj = {}
    for dt in floats + f8:
        base = torch.randn(5, 7, generator=g).to(dt)
        name = str(dt).replace("torch.", "")
        obj[f"{name}.plain"] = base
        obj[f"{name}.t"] = base.t()
        obj[f"{name}.slice"] = base[1:4, 2::2]
    for dt in ints:
        base = torch.randint(-100 if dt != torch.uint8 else 0, 100, (4, 6), generator=g).to(dt)
        name = str(dt).replace("torch.", "")
        obj[f"{name}.plain"] = base
        obj[f"{name}.t"] = base.t()
    obj["bool"] = torch.rand(3, 5, generator=g) > 0.5
    conv = torch.randn(8, 3, 3, 3, generator=g)
    obj["conv.channels_last"] = conv.to(memory_format=torch.channels_last)
    obj["conv.permuted"] = conv.permute(0, 2, 3, 1)
    lstm = torch.nn.LSTM(4, 3, num_layers=1)
    obj["lstm"] = lstm.state_dict()
    obj["meta"] = {"step": 12, "note": "fresh"}
    torch.save(obj, os.path.join(out, "fresh_zip.pt"))
    torch.save(obj, os.path.join(out, "fresh_p4.pt"), pickle_protocol=4)
    # torch writes f8 and uint16-64 into legacy streams it cannot read back.
    legacy = {k: v for k, v in obj.items() if "float8" not in k}
    torch.save(legacy, os.path.join(out, "fresh_legacy.pt"), _use_new_zipfile_serialization=False)


def shards(out):
    """DIR/pytorch_model-0000N-of-00002.bin (a zip and a legacy stream),
    DIR/pytorch_model.bin.index.json naming each tensor's shard as
    transformers' save_pretrained(safe_serialization=False) writes it, and
    DIR/../all.pt: every tensor in one file, for comparison."""
    g = torch.Generator().manual_seed(99)
    emb = torch.randn(11, 4, generator=g)
    sd = {
        "embed.weight": emb,
        "layers.0.weight": torch.randn(4, 4, generator=g).t(),
        "layers.0.bias": torch.randn(4, generator=g).half(),
        "layers.1.weight": torch.randn(3, 4, generator=g),
        "layers.1.steps": torch.arange(5),
        "lm_head.weight": emb,
    }
    os.makedirs(out, exist_ok=True)
    parts = [["embed.weight", "layers.0.weight", "layers.0.bias"], ["layers.1.weight", "layers.1.steps", "lm_head.weight"]]
    weight_map, total = {}, 0
    for i, names in enumerate(parts):
        file = f"pytorch_model-{i + 1:05d}-of-{len(parts):05d}.bin"
        torch.save({n: sd[n] for n in names}, os.path.join(out, file), _use_new_zipfile_serialization=i == 0)
        for n in names:
            weight_map[n] = file
            total += sd[n].numel() * sd[n].element_size()
    with open(os.path.join(out, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    torch.save(sd, os.path.join(out, "..", "all.pt"))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "write":
        write(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "shards":
        shards(sys.argv[2])
    elif len(sys.argv) >= 2 and sys.argv[1] == "dump":
        dump(sys.argv[2:])
    else:
        sys.exit(__doc__)
