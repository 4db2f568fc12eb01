"""The Python reference listing every tensor of a sharded checkpoint:
safe_open on each shard, then name, dtype and shape of every tensor."""
import json
import os
import sys

from safetensors import safe_open

root = sys.argv[1]
index = json.load(open(os.path.join(root, "model.safetensors.index.json")))
count = 0
for shard in sorted(set(index["weight_map"].values())):
    with safe_open(os.path.join(root, shard), framework="numpy") as f:
        for name in f.keys():
            s = f.get_slice(name)
            print(name, s.get_dtype(), s.get_shape())
            count += 1
print(count, "tensors", file=sys.stderr)
