"""A LLaMA-shaped GGUF file with a real header, written by the `gguf`
package's GGUFWriter, its tensor data left as a hole (a sparse file): what
`modeltool inspect` reads is the header, so a 7B-shaped file costs a few MB
of disk.

    gguf_llama.py PATH [--layers 32] [--dim 4096] [--ff 11008] [--vocab 32000]
                       [--heads 32] [--kv-heads 32] [--name NAME]

Tensor types follow llama.cpp's Q4_K_M recipe: Q6_K for `output.weight`
and for `attn_v` and `ffn_down` in the first and last eighth of the layers
and every third layer between, Q4_K for the other matrices, F32 norms.
Prints JSON: what the package says the file holds (per ggml type: tensors,
elements, bytes from GGML_QUANT_SIZES), the file's size and metadata.
"""

import argparse
import json
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T


def main():
    p = argparse.ArgumentParser()
    p.add_argument("path")
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--dim", type=int, default=4096)
    p.add_argument("--ff", type=int, default=11008)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--kv-heads", type=int, default=32)
    p.add_argument("--name", default="LLaMA v2")
    a = p.parse_args()

    w = gguf.GGUFWriter(a.path, arch="llama")
    w.add_name(a.name)
    w.add_context_length(4096)
    w.add_embedding_length(a.dim)
    w.add_block_count(a.layers)
    w.add_feed_forward_length(a.ff)
    w.add_rope_dimension_count(a.dim // a.heads)
    w.add_rope_freq_base(10000.0)
    w.add_head_count(a.heads)
    w.add_head_count_kv(a.kv_heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    w.add_tokenizer_model("llama")
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    tokens += [f"\u2581tok{i}" for i in range(a.vocab - len(tokens))]
    tokens = tokens[:a.vocab]
    w.add_token_list(tokens)
    w.add_token_scores([-float(i) for i in range(a.vocab)])
    w.add_token_types([2, 3, 3] + [6] * 256 + [1] * (a.vocab - 259))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    totals = {}

    def tensor(name, shape, qtype):
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        n = int(np.prod(shape))
        assert n % block == 0, name
        nbytes = n // block * type_size
        w.add_tensor_info(name, shape, np.float32, nbytes, raw_dtype=qtype)
        t = totals.setdefault(qtype.name, {"tensors": 0, "elements": 0, "bytes": 0,
                                          "block_size": block, "type_size": type_size})
        t["tensors"] += 1
        t["elements"] += n
        t["bytes"] += nbytes

    n, d, ff = a.layers, a.dim, a.ff
    kv = d * a.kv_heads // a.heads

    def more_bits(i):
        return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2

    tensor("token_embd.weight", (a.vocab, d), T.Q4_K)
    for i in range(n):
        big = T.Q6_K if more_bits(i) else T.Q4_K
        tensor(f"blk.{i}.attn_norm.weight", (d,), T.F32)
        tensor(f"blk.{i}.attn_q.weight", (d, d), T.Q4_K)
        tensor(f"blk.{i}.attn_k.weight", (kv, d), T.Q4_K)
        tensor(f"blk.{i}.attn_v.weight", (kv, d), big)
        tensor(f"blk.{i}.attn_output.weight", (d, d), T.Q4_K)
        tensor(f"blk.{i}.ffn_norm.weight", (d,), T.F32)
        tensor(f"blk.{i}.ffn_gate.weight", (ff, d), T.Q4_K)
        tensor(f"blk.{i}.ffn_up.weight", (ff, d), T.Q4_K)
        tensor(f"blk.{i}.ffn_down.weight", (d, ff), big)
    tensor("output_norm.weight", (d,), T.F32)
    tensor("output.weight", (a.vocab, d), T.Q6_K)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    # The data section: every tensor padded to the alignment, left a hole.
    align = w.data_alignment
    header = os.path.getsize(a.path)
    size = header + (-header % align)
    for ti in w.tensors[0].values():
        size += ti.nbytes + (-ti.nbytes % align)
    os.truncate(a.path, size)
    print(json.dumps({
        "file_bytes": size,
        "tensors": sum(t["tensors"] for t in totals.values()),
        "elements": sum(t["elements"] for t in totals.values()),
        "types": totals,
        "vocab": a.vocab,
    }))


if __name__ == "__main__":
    main()
