"""Writes a GPT-2-medium-shaped `pytorch_model.bin` with torch.save: the
tensor names and shapes of Hugging Face's GPT2LMHeadModel state dict for
GPT-2 medium (d_model 1024, vocab 50257, 1024 positions, Conv1D weights as
[in, out]), with LAYERS blocks (6 by default: ~516 MB of f32), realistic
values (N(0, 0.02) weights, biases near 0, layer-norm gains near 1) and
`lm_head.weight` tied to `transformer.wte.weight` (one storage), as
`model.save_pretrained(..., safe_serialization=False)` writes it.

    python benches/make_gpt2_pt.py OUT [LAYERS]
"""

import sys

import torch

OUT = sys.argv[1]
LAYERS = int(sys.argv[2]) if len(sys.argv) > 2 else 6
D, VOCAB, CTX = 1024, 50257, 1024

g = torch.Generator().manual_seed(0)


def w(*shape):
    return torch.randn(*shape, generator=g) * 0.02


def b(n):
    return torch.randn(n, generator=g) * 0.01


def ln(n):
    return 1.0 + torch.randn(n, generator=g) * 0.05


sd = {}
sd["transformer.wte.weight"] = w(VOCAB, D)
sd["transformer.wpe.weight"] = w(CTX, D) * 0.5
for i in range(LAYERS):
    p = f"transformer.h.{i}."
    sd[p + "ln_1.weight"] = ln(D)
    sd[p + "ln_1.bias"] = b(D)
    sd[p + "attn.c_attn.weight"] = w(D, 3 * D)
    sd[p + "attn.c_attn.bias"] = b(3 * D)
    sd[p + "attn.c_proj.weight"] = w(D, D)
    sd[p + "attn.c_proj.bias"] = b(D)
    sd[p + "ln_2.weight"] = ln(D)
    sd[p + "ln_2.bias"] = b(D)
    sd[p + "mlp.c_fc.weight"] = w(D, 4 * D)
    sd[p + "mlp.c_fc.bias"] = b(4 * D)
    sd[p + "mlp.c_proj.weight"] = w(4 * D, D)
    sd[p + "mlp.c_proj.bias"] = b(D)
sd["transformer.ln_f.weight"] = ln(D)
sd["transformer.ln_f.bias"] = b(D)
sd["lm_head.weight"] = sd["transformer.wte.weight"]
torch.save(sd, OUT)
