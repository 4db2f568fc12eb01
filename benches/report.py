"""Renders docs/PERFORMANCE.md from the figures benches/all.sh collected.

    report.py machine [--mode full|quick] ... > RESULTS/machine.json
        Describes this machine and the peers' versions (run at the start).
    report.py render RESULTS OUT.md
        Reads RESULTS/*.json (measure.py's --json output, one file a group of
        commands, plus the inputs' descriptions and the checks) and writes
        the report. Exits 1 when a target is not met or a check failed.

Every figure in the report comes from the results folder; nothing is typed
in by hand. The targets are the ones the issues set (`issues show 2` ... 5).
"""
import argparse
import ctypes
import datetime
import glob
import json
import os
import platform
import re
import statistics
import subprocess
import sys

# ---------------------------------------------------------------- machine


def first_line(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        return out.splitlines()[0].strip() if out else ""
    except (OSError, subprocess.CalledProcessError):
        return "not found"


def cpuinfo():
    model, flags = "unknown", set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and model == "unknown":
                model = value.strip()
            elif key == "flags" and not flags:
                flags = set(value.split())
    return model, flags


def openblas_runtime():
    """What OpenBLAS numpy loaded reports about itself (no threadpoolctl):
    the kernel it picked for this CPU, its build configuration, its threads."""
    import numpy

    libs = glob.glob(os.path.join(os.path.dirname(numpy.__file__), "..", "numpy.libs", "*openblas*"))
    if not libs:
        return {}
    lib = ctypes.CDLL(libs[0])
    info = {}
    for suffix in ("64_", ""):
        for prefix in ("scipy_openblas_", "openblas_"):
            try:
                corename = getattr(lib, f"{prefix}get_corename{suffix}")
                config = getattr(lib, f"{prefix}get_config{suffix}")
                threads = getattr(lib, f"{prefix}get_num_threads{suffix}")
            except AttributeError:
                continue
            corename.restype = config.restype = ctypes.c_char_p
            info = {"corename": corename().decode(), "config": config().decode(), "threads": threads()}
            return info
    return info


def machine(args):
    import numpy
    import safetensors

    model, flags = cpuinfo()
    with open("/proc/meminfo") as f:
        mem_kb = int(next(l for l in f if l.startswith("MemTotal")).split()[1])
    blas = numpy.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": model,
        "cpu_flags": sorted(flags & {"avx2", "avx512f", "sha_ni", "fma", "hypervisor"}),
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "rustc": first_line(["rustc", "--version"]),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "safetensors": safetensors.__version__,
        "numpy_blas": {k: blas.get(k) for k in ("name", "version", "openblas configuration")},
        "openblas_runtime": openblas_runtime(),
        "openssl": first_line(["openssl", "version"]),
        "sha256sum": first_line(["sha256sum", "--version"]),
        "load_start": load,
        "mode": args.mode,
        "reps": args.reps,
        "only": args.only,
        "caller_openblas_coretype": args.caller_openblas,
        "caller_openblas_l2_size": args.caller_openblas_l2,
    }
    print(json.dumps(info, indent=1))


# ---------------------------------------------------------------- render


def load(results, name):
    path = os.path.join(results, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        if name.endswith(".jsonl"):
            return [json.loads(l) for l in f if l.strip()]
        return json.load(f)


def fmt_time(s):
    if s >= 10:
        return f"{s:.1f} s"
    if s >= 1:
        return f"{s:.2f} s"
    ms = s * 1e3
    return f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def fmt_range(xs, fmt):
    if len(xs) < 2:
        return ""
    return f" ({fmt(min(xs))}–{fmt(max(xs))})"


def fmt_bytes(n):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            v = n / size
            return f"{v:.0f} {unit}" if abs(v - round(v)) < 0.005 else f"{v:.1f} {unit}"
    return f"{n} B"


def fmt_mb(n):
    return f"{n / 1e6:.0f} MB"


def fmt_params(n):
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def fmt_ratio(r):
    return f"{r:.2f}×" if r < 10 else f"{r:.1f}×"


class Group:
    """One measure.py --json file: every repetition of every command."""

    def __init__(self, data):
        self.cmds = data["runs"]
        self.results = data["results"]

    def walls(self, rid):
        return [r["wall"] for r in self.results[rid]]

    def wall(self, rid):
        return statistics.median(self.walls(rid))

    def rss(self, rid):
        return [r["rss_mib"] for r in self.results[rid]]

    def reps(self, rid):
        return len(self.results[rid])


class Report:
    def __init__(self, results):
        self.results = results
        self.speed = []  # (issue, what, ours, peer, ratio, target, met)
        self.memory = []  # (issue, what, peak, limit, met, peer)
        self.notes = []
        self.failed = []

    def group(self, name):
        data = load(self.results, name + ".json")
        return Group(data) if data else None

    def time_row(self, issue, what, g, ours, peer, peer_label, target=None, target_text=None):
        o, p = g.wall(ours), g.wall(peer)
        ratio = p / o
        ours_s = fmt_time(o) + fmt_range(g.walls(ours), fmt_time)
        peer_s = f"{peer_label}: {fmt_time(p)}" + fmt_range(g.walls(peer), fmt_time)
        self.add_speed(issue, what, ours_s, peer_s, ratio, target, target_text)

    def add_speed(self, issue, what, ours_s, peer_s, ratio, target, target_text=None):
        if target is None:
            met, ttext = "—", target_text or "none (for comparison)"
        else:
            ok = ratio >= target
            met = "yes" if ok else "**no**"
            ttext = target_text or f"≥ {target:g}×"
            if not ok:
                self.failed.append(f"{issue} {what}: {fmt_ratio(ratio)}, target {ttext}")
        self.speed.append((issue, what, ours_s, peer_s, fmt_ratio(ratio), ttext, met))

    def mem_row(self, issue, what, g, ours, limit_mib=None, limit_text=None, peer=None, peer_label=None):
        rss = g.rss(ours)
        worst = max(rss)
        peak = f"{statistics.median(rss):.1f} MiB"
        if len(rss) > 1 and worst - min(rss) >= 0.1:
            peak += f" (max {worst:.1f})"
        if limit_mib is None:
            met, ltext = "—", "none"
        else:
            ok = worst < limit_mib
            met = "yes" if ok else "**no**"
            ltext = limit_text or f"< {limit_mib:.0f} MiB"
            if not ok:
                self.failed.append(f"{issue} {what}: peak {worst:.1f} MiB, limit {ltext}")
        peer_s = f"{peer_label}: {statistics.median(g.rss(peer)):.1f} MiB" if peer else ""
        self.memory.append((issue, what, peak, ltext, met, peer_s))


def render(args):
    args.results = os.path.realpath(args.results)
    R = Report(args.results)
    m = load(args.results, "machine.json")
    build = load(args.results, "build.json") or {}
    end = load(args.results, "end.json") or {}
    inp = lambda name: load(args.results, f"input_{name}.json")
    quick = m["mode"] == "quick"

    # ------------------------------------------------ #2 JSON <-> safetensors
    jm, jc = inp("json_model"), load(args.results, "json_check.json")
    gw, gr = R.group("json_write"), R.group("json_read")
    if jm and gw and gr:
        size = f"{fmt_params(jm['parameters'])} f32 parameters, {fmt_mb(jm['tensor_bytes'])} of tensors, {fmt_mb(jc['json_bytes'])} of JSON"
        R.time_row("#2", f"safetensors → JSON ({size})", gw, "mt_to_json", "py_to_json",
                   "`load_file` + `json.dump(tolist())`", 10)
        R.time_row("#2", "JSON → safetensors, the same model", gr, "mt_from_json", "py_from_json",
                   "`json.load` + `np.array` + `save_file`", 10)
        R.time_row("#2", "JSON → safetensors, against parsing only", gr, "mt_from_json", "py_json_arrays",
                   "`json.load` + `np.array`, no save", 10)
        R.mem_row("#2", "`convert` JSON → safetensors", gr, "mt_from_json",
                  3 * jm["tensor_bytes"] / 2**20,
                  f"< 3 × tensor bytes = {3 * jm['tensor_bytes'] / 2**20:.0f} MiB",
                  "py_from_json", "Python")
        R.mem_row("#2", "`convert` safetensors → JSON", gw, "mt_to_json", peer="py_to_json", peer_label="Python")
        R.notes.append("JSON → safetensors has two peer rows: issue #2 names `json.load` + `numpy.array` as the "
                       "peer; `convert` also writes the safetensors file, so the row with `save_file` does the same work. "
                       "Both are held to the 10× target.")
        if jc:
            R.notes.append(f"JSON round trip: modeltool's safetensors from the JSON {'is' if jc['ours_bit_exact'] else '**is not**'} "
                           f"bit-identical to the original; Python's {'is' if jc['python_bit_exact'] else '**is not**'}.")
            if not jc["ours_bit_exact"]:
                R.failed.append("JSON -> safetensors is not bit-exact")

    # ------------------------------------------------ #2 JSON on real shapes
    labels = {"bert": "BERT-shaped", "gpt2": "GPT-2-shaped", "small": "many small tensors"}
    for s, label in labels.items():
        si, sc, g = inp(f"shape_{s}"), load(args.results, f"shapes_{s}_check.json"), R.group(f"shapes_{s}")
        if not (si and sc and g):
            continue
        size = (f"{si['tensors']:,} tensors, {fmt_params(si['parameters'])} parameters, "
                f"{fmt_mb(si['tensor_bytes'])} of tensors, {fmt_mb(sc['json_bytes'])} of JSON")
        R.time_row("#2", f"{label} JSON → safetensors ({size})", g, "mt_from_json", "py_from_json",
                   "`json.load` + `np.array` + `save_file`", 10)
        R.time_row("#2", f"{label} safetensors → JSON", g, "mt_to_json", "py_to_json",
                   "`load_file` + `json.dump(tolist())`", 10)
        limit = 1.5 * si["tensor_bytes"] / 2**20
        R.mem_row("#2", f"{label} `convert` JSON → safetensors", g, "mt_from_json", limit,
                  f"< 1.5 × tensor bytes = {limit:.0f} MiB", "py_from_json", "Python")
        R.mem_row("#2", f"{label} `convert` safetensors → JSON", g, "mt_to_json", peer="py_to_json",
                  peer_label="Python")
        if not sc["ours_bit_exact"]:
            R.failed.append(f"{label}: JSON -> safetensors is not bit-exact")
        R.notes.append(f"{label}: modeltool's safetensors from the JSON {'is' if sc['ours_bit_exact'] else '**is not**'} "
                       f"bit-identical to the original; Python's {'is' if sc['python_bit_exact'] else '**is not**'}.")

    hd, gd = inp("header"), R.group("header")
    if hd and gd:
        what = f"`inspect --tensors` of a safetensors file whose {fmt_bytes(hd['header_bytes'])} header lists {hd['tensors']:,} tensors"
        R.time_row("#3", what, gd, "mt_inspect_tensors", "py_list_tensors", "`safe_open` + `get_slice` each")
        R.time_row("#3", "the same, `inspect` (summary)", gd, "mt_inspect", "py_list_tensors", "`safe_open` + `get_slice` each")
        R.time_row("#3", "the same, `inspect --format json` (every tensor and tree row)", gd, "mt_inspect_json",
                   "py_list_tensors", "`safe_open` + `get_slice` each")
        # Whole process, every default path: at most 4x the header bytes.
        limit = 4 * hd["header_bytes"] / 2**20
        for run, label in (("mt_inspect", "`inspect`"), ("mt_inspect_json", "`inspect --format json`"),
                           ("mt_inspect_tensors", "`inspect --tensors`")):
            R.mem_row("#10", f"{label}, {hd['tensors']:,}-tensor header", gd, run, limit,
                      f"< 4 × header bytes = {limit:.0f} MiB", "py_list_tensors", "`safe_open`")
    hs, gs2 = inp("header_shards"), R.group("header_shards")
    if hs and gs2:
        what = (f"`inspect` of {hs['shards']} shards whose headers ({fmt_bytes(hs['header_bytes'])}) "
                f"list {hs['tensors']:,} tensors")
        R.time_row("#10", what, gs2, "mt_inspect", "py_list_shards", "`safe_open` on each shard")
        limit = 4 * hs["header_bytes"] / 2**20
        for run, label in (("mt_inspect", "`inspect`"), ("mt_inspect_json", "`inspect --format json`"),
                           ("mt_inspect_tensors", "`inspect --tensors`")):
            R.mem_row("#10", f"{label}, {hs['shards']} shards of {hs['tensors'] // hs['shards']:,} tensors", gs2,
                      run, limit, f"< 4 × header bytes = {limit:.0f} MiB", "py_list_shards", "`safe_open`")

    # ------------------------------------------------ #2 verify vs openssl
    mid, gh = inp("mid"), R.group("hash")
    if mid and gh:
        what = f"`verify`, {fmt_bytes(mid['file_bytes'])} file ({mid['tensors']} tensors)"
        R.time_row("#2", what, gh, "mt_verify", "openssl", "`openssl dgst -sha256`", 1, "≥ 1× (at least as fast)")
        R.time_row("#2", what, gh, "mt_verify", "sha256sum", "`sha256sum`")
        R.time_row("#2", "`verify` on one thread (`RAYON_NUM_THREADS=1`)", gh, "mt_verify_1thread", "openssl",
                   "`openssl dgst -sha256`")
        R.time_row("#2", "`verify --sha256 HEX` (every tensor, then the whole file)", gh, "mt_verify_file_sha",
                   "sha256sum", "`sha256sum`")
        R.mem_row("#2", what, gh, "mt_verify", peer="openssl", peer_label="openssl")

    # ------------------------------------------------ #3 loader
    ml, gl = inp("minilm"), R.group("loader")
    if ml and gl:
        what = f"open a {fmt_mb(ml['tensor_bytes'])} MiniLM-shaped model ({ml['parameters']:,} parameters) and read every tensor"
        R.time_row("#3", what, gl, "mt_touch_all", "py_get_tensor", "`safe_open` + `get_tensor` each")
        R.time_row("#3", what, gl, "mt_touch_all", "py_load_file", "`load_file`")
        R.time_row("#3", "the same, loader without mmap (`touch_all --no-mmap`)", gl, "mt_touch_all_no_mmap",
                   "py_get_tensor", "`safe_open` + `get_tensor` each")
        R.time_row("#3", "`verify` of it (reads and sha256-hashes every byte)", gl, "mt_verify", "py_get_tensor_sha256",
                   "`get_tensor` + `hashlib.sha256` each")
        R.mem_row("#3", "`touch_all` of the MiniLM-shaped model (mapped pages count)", gl, "mt_touch_all",
                  peer="py_get_tensor", peer_label="`get_tensor`")

    g3, gs = inp("gpt3"), R.group("shards")
    if g3 and gs:
        shape = f"{g3['shards']} shards, {g3['tensors']:,} tensors, {fmt_params(g3['parameters'])} parameters"
        R.time_row("#3", f"list every tensor of a GPT-3-shaped checkpoint ({shape}): `inspect --tensors`",
                   gs, "mt_inspect_tensors", "py_list_shards", "`safe_open` over the shards", 5)
        R.time_row("#3", "the same, `inspect --tensors --format json`", gs, "mt_inspect_tensors_json",
                   "py_list_shards", "`safe_open` over the shards", 5)

    # ------------------------------------------------ #3 memory on a large file
    big, gb = inp("big"), R.group("big")
    if big and gb:
        size = fmt_bytes(big["file_bytes"])
        R.mem_row("#3", f"`verify` of a {size} file of random f32 ({big['tensors']} tensors; takes {fmt_time(gb.wall('mt_verify'))})",
                  gb, "mt_verify", 512)
        R.mem_row("#3", f"`convert --dtype bf16` of it (takes {fmt_time(gb.wall('mt_convert_bf16'))})", gb,
                  "mt_convert_bf16", 512)
        if big["file_bytes"] < 4 << 30:
            R.notes.append(f"The large file is {size} here, not 4 GiB (a QUICK run): the 512 MiB limit is checked on it all the same.")

    # ------------------------------------------------ #4 inspect
    if g3 and gs:
        R.time_row("#4", "`inspect` of the 175B checkpoint (summary)", gs, "mt_inspect", "py_list_shards",
                   "`safe_open` over the shards", 5)
        R.time_row("#4", "`inspect --format json` of it", gs, "mt_inspect_json", "py_list_shards",
                   "`safe_open` over the shards", 5)
        R.time_row("#4", "`inspect` of it, against the least Python can do", gs, "mt_inspect", "py_bare_headers",
                   "`struct` + `json` on each header")
        for rid, label in (("mt_inspect", "`inspect`"), ("mt_inspect_json", "`inspect --format json`"),
                           ("mt_inspect_tensors", "`inspect --tensors`"),
                           ("mt_inspect_tensors_json", "`inspect --tensors --format json`")):
            R.mem_row("#4", f"{label} of the 175B checkpoint", gs, rid, 64,
                      peer="py_list_shards", peer_label="`safe_open`")
    touched = load(args.results, "touched.jsonl")

    # ------------------------------------------------ #5 run
    mlp, grun, rc = inp("mlp"), R.group("run"), load(args.results, "run_check.json")
    if mlp and grun:
        what = (f"`run`, {mlp['layers']} × {mlp['width']}→{mlp['width']} relu MLP on {mlp['batch']:,} inputs, "
                "safetensors → safetensors, whole process")
        R.time_row("#5", what, grun, "mt_run", "numpy_run", "numpy (OpenBLAS) + safetensors", 1,
                   "≥ 1× (at least as fast)")
        R.mem_row("#5", "`run` of the MLP", grun, "mt_run", peer="numpy_run", peer_label="numpy")
        if rc:
            R.notes.append(f"`run` against numpy: outputs of shape {rc['shape']} agree to {rc['max_abs_diff']:.2g} "
                           f"(largest value {rc['max_abs_value']:.3g}): {'match' if rc['allclose'] else '**differ**'}.")
            if not rc["allclose"]:
                R.failed.append("run: outputs differ from numpy")
    gf = load(args.results, "gflops.jsonl")
    if gf:
        for batch in sorted({r["batch"] for r in gf}):
            rs = [r for r in gf if r["batch"] == batch]
            o = [r["ours"]["gflops"] for r in rs]
            p = [r["numpy"]["gflops"] for r in rs]
            om, pm = statistics.median(o), statistics.median(p)
            g = lambda x: f"{x:.1f}"
            R.add_speed("#5", f"forward pass in process, batch {batch} (GFLOP/s, higher is better)",
                        f"{om:.1f} GFLOP/s" + fmt_range(o, g), f"numpy: {pm:.1f} GFLOP/s" + fmt_range(p, g),
                        om / pm, None, "report" if batch in (1, 256) else None)

    # ------------------------------------------------ write
    out = []
    w = out.append
    w("# Performance")
    w("")
    w("<!-- Written by benches/report.py from the figures of `bash benches/all.sh`; do not edit by hand. -->")
    w("")
    if quick:
        w("> **A QUICK run** (`QUICK=1`): small inputs and few repetitions, to check that the suite works. "
          "These are not the figures of record; run `bash benches/all.sh` for those.")
        w("")
    w(f"modeltool against its peers, side by side on one machine, {m['date']}. Each row is the median of "
      f"several alternating runs of whole processes (min–max in brackets); the ratio is the peer's time over "
      f"ours, so above 1 modeltool is faster. Every speed and memory target of issues #2–#5 has a row.")
    w("")
    w("## The machine")
    w("")
    rt = m.get("openblas_runtime") or {}
    bl = m.get("numpy_blas") or {}
    flags = ", ".join(m["cpu_flags"])
    w(f"- CPU: {m['cpu']}, {m['cores']} cores ({flags}); {m['ram_gib']} GiB RAM; Linux {m['kernel']}")
    w(f"- {m['rustc']}; binaries: release profile, commit {build.get('commit', '?')}"
      f" ({build.get('tree', '?')}){'' if build.get('build') == 'ok' else '; **the build failed, older binaries were timed**'}")
    w(f"- Python {m['python']}, numpy {m['numpy']}, safetensors {m['safetensors']} "
      f"(tests/python/requirements.txt, in a virtual environment)")
    w(f"- numpy's BLAS: {bl.get('name')} {bl.get('version')} (`numpy.show_config()`: {bl.get('openblas configuration')}); "
      f"at run time OpenBLAS reports kernel **{rt.get('corename', '?')}**, {rt.get('threads', '?')} threads. "
      f"`OPENBLAS_CORETYPE` and `OPENBLAS_L2_SIZE` are unset for every run"
      + (f" (the caller had set `OPENBLAS_CORETYPE={m['caller_openblas_coretype']}`)" if m.get("caller_openblas_coretype") else "")
      + ", so OpenBLAS picks its own kernel for the CPU.")
    w(f"- {m['openssl']}; {m['sha256sum']}")
    w(f"- Load average (1, 5, 15 min) at the start: {m['load_start']}; at the end: {end.get('load_end', '?')}. "
      "This machine is shared (other builds and tests may run at the same time)"
      + (" and is a virtual machine" if "hypervisor" in m["cpu_flags"] else "")
      + ", so figures move from run to run; alternating the commands spreads that noise over ours and the peer alike.")
    if end.get("seconds"):
        w(f"- The run took {end['seconds'] // 60} min {end['seconds'] % 60} s "
          f"({'QUICK, ' if quick else ''}{m['reps']} repetitions of the fast groups).")
    w("")
    w("## Speed")
    w("")
    w("| issue | what | ours | peer | ratio | target | met? |")
    w("|---|---|---|---|---|---|---|")
    for row in R.speed:
        w("| " + " | ".join(row) + " |")
    w("")
    w("Ratio: the peer's median wall time over ours (for GFLOP/s rows, ours over the peer's); "
      "above 1, modeltool is faster. Rows without a target are there to compare.")
    w("")
    w("## Memory")
    w("")
    w("| issue | what | peak RSS | limit | met? | peer's peak RSS |")
    w("|---|---|---|---|---|---|")
    for row in R.memory:
        w("| " + " | ".join(row) + " |")
    w("")
    w("Peak RSS is `/usr/bin/time`'s maximum resident set size of the whole process, median over the runs; "
      "the limit is checked against the largest (issue #3 asks for `/usr/bin/time -v`: the same kernel figure). A memory-mapped reader's RSS includes the file pages it touched "
      "(page cache, shared, dropped under pressure).")
    w("")
    if touched:
        w("## Is the data touched?")
        w("")
        w(f"Listing the {g3['parameters'] / 1e9:.0f}B checkpoint ({fmt_bytes(g3['apparent_bytes'])} apparent, sparse; "
          f"{g3['header_bytes']:,} bytes of headers), with the shards' page cache emptied first:")
        w("")
        w("| command | shard bytes cached after one run (`fincore`) | bytes read from shards (`strace`) | mmaps of shards |")
        w("|---|---|---|---|")
        for t in touched:
            w(f"| `{t['id']}` | {t['cached_bytes']:,} | {t['read_bytes']:,} | {t['mmaps']} |")
        w("")
    if R.notes or R.failed:
        w("## Checks and notes")
        w("")
        for n in R.notes:
            w(f"- {n}")
        for f in R.failed:
            w(f"- **Not met:** {f}")
        w("")
    w("## How to reproduce")
    w("")
    w("```sh")
    w("bash benches/all.sh            # builds, sets up target/bench-venv, runs everything, writes this file")
    w("QUICK=1 bash benches/all.sh    # a smoke test with small inputs (report under target/bench-results/)")
    w("```")
    w("")
    w("Needs cargo, python3 with venv and pip (the peers come from PyPI: tests/python/requirements.txt), "
      "`openssl`, `sha256sum`, GNU time at /usr/bin/time, and about 10 GiB free under target/; `strace` and "
      "`fincore` for the data-touched table. Inputs are made once into target/bench-cache/ and reused; the raw "
      "figures of every run are kept in target/bench-results/.")
    w("")
    w("## How each figure is measured")
    w("")
    w("- **Whole processes, side by side.** Each group of commands runs through `benches/measure.py`: every command "
      "once per repetition, in an order that rotates from one repetition to the next (after one unmeasured warm-up "
      "round where the group is fast), so that load from elsewhere falls on ours and the peer alike. Wall time is "
      "taken around `/usr/bin/time` with a monotonic clock and includes the start of the process (for Python: "
      "the interpreter and its imports, as a user would run it). Page cache hot: the inputs are read once first.")
    w("- **Peers.** Python peers are `benches/peers.py` subcommands and `benches/list_shards.py`, run with the "
      "pinned safetensors and numpy; `openssl dgst -sha256 FILE` and `sha256sum FILE` hash the same file verify reads.")
    w("- **Inputs** (`benches/inputs.py`, `make_random_safetensors.py`, `make_gpt3_shards.py`): random normal × 0.02 "
      "f32 values (seed 0), like trained weights. The JSON model file is written by modeltool from the safetensors "
      "one in every run; both directions are checked bit-exact. The GPT-3-shaped checkpoint has real headers and "
      "holes for data (sparse files). The large random files store each tensor's sha256, so verify checks every byte.")
    if gf:
        passes = ", ".join(f"{r['repeats']} at batch {r['batch']}" for r in {r["batch"]: r for r in gf}.values())
        w(f"- **GFLOP/s** (`benches/run_vs_numpy.py`): the forward pass alone, in process, the best of several passes "
          f"({passes}) after one warm-up pass: modeltool-net's `forward_bench` example, then numpy's `x @ W.T + b` "
          f"and `np.maximum`, {max(len([r for r in gf if r['batch'] == b]) for b in {r['batch'] for r in gf})} "
          "invocation(s) each, median shown. FLOPs counted as 2 × batch × width² × layers.")
    w("- modeltool writes its outputs atomically and fsyncs them; the Python peers do not fsync. Before "
      "every run the file system's dirty data is written out (`sync`, not timed), so that no command "
      "waits on the writeback of the one before it (benches/measure.py).")
    w("")
    w("Commands, as run (paths shortened; the first of each group is the measured order's start, then it rotates):")
    w("")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def short(c):
        c = c.replace(args.results + "/bin/", "").replace(sys.executable, "python")
        c = re.sub(r"\S*target/bench-cache/scratch-\w+/bin/", "", c)
        c = re.sub(r"--sha256 [0-9a-f]{64}", "--sha256 HEX_OF_THE_FILE", c)
        return re.sub(r"target/bench-cache/scratch-\w+/", "SCRATCH/", c.replace(root + "/", ""))

    w("| group | id | command |")
    w("|---|---|---|")
    for name in ("json_write", "json_read", "shapes_bert", "shapes_gpt2", "shapes_small", "header", "header_shards",
                 "hash", "big", "loader", "shards", "run"):
        g = R.group(name)
        if g:
            for rid, cmd in g.cmds.items():
                w(f"| {name} | {rid} | `{short(cmd)}` |")
    w("")
    text = "\n".join(out)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    if R.failed:
        print("\n".join(["", "targets not met:"] + R.failed), file=sys.stderr)
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("machine")
    p.add_argument("--mode", default="full")
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--only", default="")
    p.add_argument("--caller-openblas", default="")
    p.add_argument("--caller-openblas-l2", default="")
    p = sub.add_parser("render")
    p.add_argument("results")
    p.add_argument("out")
    args = ap.parse_args()
    machine(args) if args.cmd == "machine" else render(args)


if __name__ == "__main__":
    main()
