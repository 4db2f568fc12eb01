"""Checks modeltool's PyTorch conversions against torch itself.

    python torch_convert_check.py compare PT ST
        every tensor torch.load finds in PT (named by its path, dict keys and
        list indices joined by `.`) is in ST with the same dtype, shape and
        the bytes of `tensor.contiguous()`; exit 1 naming the first that differs
    python torch_convert_check.py forward PT X...
        prints, as JSON, the forward pass of
        nn.Sequential(nn.Linear(1, 4), nn.ReLU(), nn.Linear(4, 1)) with the
        state dict PT holds, on the inputs X
"""

import json
import sys

import torch
from safetensors.torch import load_file
from torch import nn


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


def raw(t):
    t = t.detach().contiguous().reshape(-1)
    return t.view(torch.uint8).numpy().tobytes() if t.numel() else b""


def compare(pt, st):
    # weights_only=False: torch's restricted unpickler cannot read every
    # protocol; these are the repo's fixtures and files the test wrote.
    theirs = walk(torch.load(pt, weights_only=False), "", {})
    ours = load_file(st)
    for name, t in theirs.items():
        if name not in ours:
            sys.exit(f"{pt}: `{name}` is missing from {st}")
        o = ours[name]
        if o.dtype != t.dtype or list(o.shape) != list(t.shape):
            sys.exit(f"{pt}: `{name}` is {o.dtype} {list(o.shape)}, torch has {t.dtype} {list(t.shape)}")
        if raw(o) != raw(t):
            sys.exit(f"{pt}: `{name}` bytes differ from torch's contiguous bytes")
    extra = set(ours) - set(theirs)
    if extra:
        sys.exit(f"{st}: tensors torch does not have: {sorted(extra)}")
    print(len(theirs))


def forward(pt, xs):
    net = nn.Sequential(nn.Linear(1, 4), nn.ReLU(), nn.Linear(4, 1))
    net.load_state_dict(torch.load(pt, weights_only=True))
    with torch.no_grad():
        out = net(torch.tensor([float(x) for x in xs]).reshape(-1, 1)).reshape(-1)
    print(json.dumps(out.tolist()))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 3 and sys.argv[1] == "forward":
        forward(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)
