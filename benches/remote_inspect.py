"""`modeltool inspect` of a remote sharded checkpoint: a GPT-3-shaped
(175B parameters, bf16) checkpoint of ~73 shards served on loopback by
serve_ranges.py with a fixed latency added to every request (default 50 ms),
read as `hf://org/gpt3` through HF_ENDPOINT. Prints, per repetition, the
wall time, the requests and the body bytes the server counted, beside the
sequential lower bound (shards x 2 x latency) and, when `huggingface_hub` is
importable, `huggingface_hub.get_safetensors_metadata` against the same
server.

With --verify FILE, also `modeltool verify URL` of FILE served the same way
(same latency) against `curl -s URL | sha256sum`, whole process.

    python benches/remote_inspect.py MODELTOOL [--latency 0.05] [--reps 5] [--dir DIR]
        [--verify FILE]
"""
import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("modeltool")
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--dir", help="where the checkpoint is (made there if missing)")
    ap.add_argument("--verify", help="a file to verify over HTTP against curl | sha256sum")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="modeltool-remote-")
    ckpt = args.dir or os.path.join(work, "gpt3")
    if not os.path.exists(os.path.join(ckpt, "model.safetensors.index.json")):
        subprocess.run([sys.executable, os.path.join(HERE, "make_gpt3_shards.py"), ckpt], check=True,
                       stdout=subprocess.DEVNULL)
    shards = sorted(n for n in os.listdir(ckpt) if n.endswith(".safetensors"))
    headers = 0
    for n in shards:
        with open(os.path.join(ckpt, n), "rb") as f:
            headers += 8 + struct.unpack("<Q", f.read(8))[0]
    index_len = os.path.getsize(os.path.join(ckpt, "model.safetensors.index.json"))

    servers = []

    def serve(folder, tag):
        port_file = os.path.join(work, "port-" + tag)
        servers.append(subprocess.Popen(
            [sys.executable, os.path.join(HERE, "serve_ranges.py"), folder,
             "--latency", str(args.latency), "--port-file", port_file,
             "--stats", os.path.join(work, "stats-" + tag + ".json")]))
        for _ in range(200):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            time.sleep(0.05)
        return "http://127.0.0.1:" + open(port_file).read().strip()

    try:
        base = serve(ckpt, "gpt3")
        env = dict(os.environ, HF_ENDPOINT=base, HF_HOME=os.path.join(work, "hf-home"))
        env.pop("HF_TOKEN", None)

        def timed(cmd, server=base):
            urllib.request.urlopen(server + "/__reset").read()
            t = time.perf_counter()
            subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
            return time.perf_counter() - t, json.load(urllib.request.urlopen(server + "/__stats"))

        rows = {}
        rows["modeltool inspect hf://org/gpt3"] = [
            timed([args.modeltool, "inspect", "hf://org/gpt3"]) for _ in range(args.reps)]
        try:
            import huggingface_hub  # noqa: F401
            peer = [sys.executable, "-c",
                    "from huggingface_hub import get_safetensors_metadata as g; "
                    "m = g('org/gpt3'); print(len(m.files_metadata))"]
            rows["huggingface_hub.get_safetensors_metadata"] = [timed(peer) for _ in range(args.reps)]
        except ImportError:
            pass
        if args.verify:
            other = serve(os.path.dirname(os.path.abspath(args.verify)), "verify")
            url = other + "/" + os.path.basename(args.verify)
            size = os.path.getsize(args.verify)
            rows[f"modeltool verify URL ({size} bytes)"] = [
                timed([args.modeltool, "verify", url], other) for _ in range(args.reps)]
            rows["curl -s URL | sha256sum"] = [
                timed(["sh", "-c", f"curl -s {url} | sha256sum"], other) for _ in range(args.reps)]
        print(f"checkpoint: {len(shards)} shards, headers {headers} bytes, index {index_len} bytes; "
              f"latency {args.latency * 1000:.0f} ms a request")
        print(f"sequential lower bound: {len(shards)} x 2 x {args.latency * 1000:.0f} ms = "
              f"{len(shards) * 2 * args.latency:.2f} s")
        for name, runs in rows.items():
            times = [t for t, _ in runs]
            c = runs[-1][1]
            print(f"{name}: median {statistics.median(times):.3f} s (min {min(times):.3f}, "
                  f"max {max(times):.3f}); {c['requests']} requests, {c['bytes']} bytes"
                  + (f" (headers + index = {headers + index_len})" if "gpt3" in name
                     or "metadata" in name else ""))
    finally:
        for server in servers:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
