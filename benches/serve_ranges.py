"""A small HTTP/1.1 file server for the remote benchmarks: GET and HEAD, byte ranges
(206, inclusive ranges, Content-Range, ETag, If-Match), a fixed latency
added to every request, and counts of requests and body bytes.

Serves DIR at /NAME and, the way the Hugging Face Hub lays out files, at
/ORG/REPO/resolve/REVISION/NAME (any org, repo and revision), so that
`HF_ENDPOINT=http://127.0.0.1:PORT` makes `hf://org/repo` read DIR.

    python serve_ranges.py DIR --port 0 --latency 0.05 --port-file P --stats S

Writes the port it listens on to --port-file, and on SIGTERM or SIGINT the
counts, as JSON, to --stats: {"requests": N, "bytes": B}. GET /__stats
gives the counts as JSON and GET /__reset zeroes them (neither is counted).
"""
import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
COUNTS = {"requests": 0, "bytes": 0}


def make_handler(root, latency):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def local_path(self):
            parts = self.path.split("?")[0].lstrip("/").split("/")
            if len(parts) >= 5 and parts[2] == "resolve":
                parts = parts[4:]
            name = "/".join(parts)
            if not name or ".." in parts:
                return None
            return os.path.join(root, name)

        def send_empty(self, code, extra=None):
            self.send_response(code)
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_HEAD(self):
            self.do_GET(head_only=True)

        def do_GET(self, head_only=False):
            if self.path == "/__stats":
                with LOCK:
                    body = json.dumps(COUNTS).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if self.path == "/__reset":
                with LOCK:
                    COUNTS["requests"] = 0
                    COUNTS["bytes"] = 0
                self.send_empty(200)
                return
            time.sleep(latency)
            with LOCK:
                COUNTS["requests"] += 1
            path = self.local_path()
            if path is None or not os.path.isfile(path):
                # As the Hub says it, so that its client tells a missing
                # file from a missing repo.
                self.send_empty(404, {"X-Error-Code": "EntryNotFound"})
                return
            st = os.stat(path)
            size = st.st_size
            etag = f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{size:x}"'
            if_match = self.headers.get("If-Match")
            if if_match is not None and if_match != etag:
                self.send_empty(412)
                return
            rng = self.headers.get("Range")
            start, end = 0, size - 1
            status = 200
            if rng and rng.startswith("bytes="):
                a, _, b = rng[len("bytes="):].partition("-")
                start = int(a)
                end = min(int(b), size - 1) if b else size - 1
                if start >= size:
                    self.send_empty(416, {"Content-Range": f"bytes */{size}"})
                    return
                status = 206
            length = end - start + 1
            self.send_response(status)
            self.send_header("Content-Length", str(length))
            self.send_header("ETag", etag)
            self.send_header("Accept-Ranges", "bytes")
            # What the Hub's own client checks to accept a Hub endpoint.
            self.send_header("X-Repo-Commit", "0" * 40)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            sent = 0
            if head_only:
                return
            with open(path, "rb") as f:
                f.seek(start)
                while sent < length:
                    chunk = f.read(min(1 << 20, length - sent))
                    if not chunk:
                        break
                    try:
                        self.wfile.write(chunk)
                    except (BrokenPipeError, ConnectionResetError):
                        break
                    sent += len(chunk)
            with LOCK:
                COUNTS["bytes"] += sent

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--stats", required=True)
    args = ap.parse_args()
    # The default listen backlog (5) drops connections a parallel client
    # opens at once, and the kernel retries them a second later.
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.root, args.latency))
    server.daemon_threads = True

    def stop(*_):
        with LOCK:
            with open(args.stats, "w") as f:
                json.dump(COUNTS, f)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
