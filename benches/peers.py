"""The Python side of each benchmark: the peer programs modeltool is timed
against, one subcommand each, run as whole processes by benches/all.sh.

    python peers.py COMMAND ARGS...

Each subcommand imports only what it uses, so every peer pays for the
interpreter and its own imports, as the obvious script would.

  json_to_safetensors IN.json OUT.safetensors
      json.load + numpy.array(..., dtype) for every tensor + safetensors
      save_file: the obvious Python for `modeltool convert m.json m.safetensors`.
  json_to_arrays IN.json
      json.load + numpy.array only (no save): the issue's wording of the peer,
      shown for reference.
  safetensors_to_json IN.safetensors OUT.json
      safetensors load_file + json.dump({name: array.tolist()}): the obvious
      Python for `modeltool convert m.safetensors m.json`.
  list_tensors MODEL      safe_open + every tensor's dtype and shape (get_slice),
                          the Python for `modeltool inspect --tensors`
  get_tensor MODEL        safe_open + get_tensor of every tensor
  get_tensor_sha256 MODEL the same plus hashlib.sha256 of each (verify's work)
  load_file MODEL         safetensors.numpy.load_file
  bare_headers DIR        the least Python can do to list a sharded checkpoint:
                          struct + json on each shard's header, no safetensors
  mlp IN_MODEL IN_INPUT OUT
      an nn.Sequential-style relu MLP (0.weight, 0.bias, 2.weight, ...) on the
      tensor `input`: load with safetensors, x @ W.T + b, relu between layers,
      save `output`. numpy's matmul is OpenBLAS (run with OPENBLAS_CORETYPE
      unset, so that OpenBLAS picks its kernel for the CPU).

(benches/list_shards.py is the safe_open peer of `modeltool inspect` on a
sharded checkpoint.)
"""
import sys


def json_to_arrays(path):
    import json

    import numpy as np

    dtypes = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}
    with open(path) as f:
        model = json.load(f)
    return {
        n: np.array(t["data"], dtype=dtypes[t["dtype"]]).reshape(t["shape"]) for n, t in model["tensors"].items()
    }


def json_to_safetensors(src, dst):
    from safetensors.numpy import save_file

    save_file(json_to_arrays(src), dst)


def safetensors_to_json(src, dst):
    import json

    from safetensors.numpy import load_file

    tensors = load_file(src)
    with open(dst, "w") as f:
        json.dump({n: a.tolist() for n, a in tensors.items()}, f)


def list_tensors(path):
    from safetensors import safe_open

    with safe_open(path, framework="numpy") as f:
        n = 0
        for k in f.keys():
            s = f.get_slice(k)
            s.get_dtype(), s.get_shape()
            n += 1
    print(n)


def get_tensor(path):
    from safetensors import safe_open

    with safe_open(path, framework="numpy") as f:
        print(sum(f.get_tensor(k).nbytes for k in f.keys()))


def get_tensor_sha256(path):
    import hashlib

    from safetensors import safe_open

    with safe_open(path, framework="numpy") as f:
        sums = {k: hashlib.sha256(f.get_tensor(k).data).hexdigest() for k in f.keys()}
    print(len(sums))


def load_file(path):
    from safetensors.numpy import load_file as load

    print(sum(a.nbytes for a in load(path).values()))


def bare_headers(root):
    import json
    import os
    import struct

    index = json.load(open(os.path.join(root, "model.safetensors.index.json")))
    count = 0
    for shard in sorted(set(index["weight_map"].values())):
        with open(os.path.join(root, shard), "rb") as f:
            header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
        for name, t in header.items():
            if name != "__metadata__":
                print(name, t["dtype"], t["shape"])
                count += 1
    print(count, "tensors", file=sys.stderr)


def mlp(model_path, input_path, out_path):
    import numpy as np
    from safetensors.numpy import load_file as load, save_file

    t = load(model_path)
    x = load(input_path)["input"]
    layers = sorted(int(k.split(".")[0]) for k in t if k.endswith(".weight"))
    for i in layers:
        x = x @ t[f"{i}.weight"].T + t[f"{i}.bias"]
        if i != layers[-1]:
            x = np.maximum(x, 0)
    save_file({"output": np.ascontiguousarray(x, dtype=np.float32)}, out_path)


COMMANDS = {
    "json_to_safetensors": json_to_safetensors,
    "json_to_arrays": lambda path: print(len(json_to_arrays(path))),
    "safetensors_to_json": safetensors_to_json,
    "list_tensors": list_tensors,
    "get_tensor": get_tensor,
    "get_tensor_sha256": get_tensor_sha256,
    "load_file": load_file,
    "bare_headers": bare_headers,
    "mlp": mlp,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        raise SystemExit(__doc__)
    COMMANDS[sys.argv[1]](*sys.argv[2:])
