"""Usage: check_shards.py ORIGINAL.safetensors DIR MAX_SHARD_BYTES

DIR is `modeltool convert ORIGINAL DIR --max-shard-size ...`. Checks the
Hugging Face layout: exactly `model-0000i-of-0000N.safetensors` for
i = 1..N plus `model.safetensors.index.json`, which is
`{"metadata": {"total_size": N}, "weight_map": {tensor: shard}}` with
total_size the sum of the tensors' bytes and weight_map naming the shard
each tensor is in. `safetensors.numpy.load_file` loads every shard; together
they hold ORIGINAL's tensors bit for bit, each exactly once; no shard holds
more than MAX_SHARD_BYTES of data unless it holds a single tensor; every
shard carries correct checksums for its own tensors."""

import json
import os
import re
import sys

from safetensors.numpy import load_file

import stlib

INDEX = "model.safetensors.index.json"


def main():
    original, folder, max_bytes = sys.argv[1:]
    max_bytes = int(max_bytes)
    _, want = stlib.read_raw(original)

    files = sorted(os.listdir(folder))
    stlib.check(INDEX in files, f"{folder}: no {INDEX} among {files}")
    shards = [f for f in files if f != INDEX]
    n = len(shards)
    names = [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)]
    stlib.check(shards == names, f"{folder}: files {shards}, expected {names}")

    with open(os.path.join(folder, INDEX)) as f:
        index = json.load(f)
    stlib.check(sorted(index) == ["metadata", "weight_map"], f"{INDEX}: keys {sorted(index)}")
    stlib.check(sorted(index["metadata"]) == ["total_size"], f"{INDEX}: metadata {index['metadata']}")
    total = sum(len(t.data) for t in want.values())
    stlib.check(index["metadata"]["total_size"] == total, f"{INDEX}: total_size {index['metadata']['total_size']}, tensors hold {total} bytes")
    weight_map = index["weight_map"]
    stlib.check(sorted(weight_map) == sorted(want), f"{INDEX}: weight_map names {sorted(weight_map)}, expected {sorted(want)}")
    stlib.check(set(weight_map.values()) == set(shards), f"{INDEX}: weight_map uses shards {sorted(set(weight_map.values()))}, the folder has {shards}")

    seen = {}
    for shard in shards:
        path = os.path.join(folder, shard)
        arrays = load_file(path)  # the reference must read every shard
        meta, raw = stlib.read_raw(path)
        listed = sorted(k for k, v in weight_map.items() if v == shard)
        stlib.check(sorted(arrays) == listed, f"{shard}: holds {sorted(arrays)}, index says {listed}")
        for name, a in arrays.items():
            stlib.check(name not in seen, f"{name} is in {seen.get(name)} and {shard}")
            seen[name] = shard
            stlib.check(a.tobytes() == raw[name].data, f"{shard}: reference and header disagree on {name}")
            stlib.same_raw(f"{name} in {shard}", want[name], raw[name])
        size = sum(len(t.data) for t in raw.values())
        stlib.check(size <= max_bytes or len(raw) == 1, f"{shard}: {size} bytes of data in {len(raw)} tensors, more than {max_bytes}")
        stlib.check_checksums(meta, raw, path)
    print(f"ok: {len(want)} tensors in {n} shards, total_size {total}")


if __name__ == "__main__":
    main()
