"""The peer of `modeltool convert pytorch_model.bin model.safetensors`:
torch.load(weights_only=True) and safetensors' save_file, as the Hugging
Face conversion scripts do it. Tensors sharing a storage (tied weights) are
cloned after the first, since save_file refuses shared memory.

    python benches/torch_convert.py IN OUT
"""

import sys

import torch
from safetensors.torch import save_file

sd = torch.load(sys.argv[1], weights_only=True, map_location="cpu")
seen = set()
out = {}
for k, v in sd.items():
    ptr = v.untyped_storage().data_ptr()
    out[k] = v.clone().contiguous() if ptr in seen else v.contiguous()
    seen.add(ptr)
save_file(out, sys.argv[2])
