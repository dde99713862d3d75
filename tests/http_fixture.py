"""A real HTTP file server on 127.0.0.1 with Range support (and an option to cut transfers short)."""

from __future__ import annotations

import http.server
import os
import threading


class RangeHandler(http.server.BaseHTTPRequestHandler):
    root = "."
    cut_after: int | None = None  # close the connection after this many body bytes (once per path)
    cut_done: set = set()
    requests: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).requests.append((self.path, self.headers.get("Range")))
        path = os.path.join(self.root, self.path.lstrip("/"))
        if not os.path.isfile(path):
            self.send_error(404)
            return
        size = os.path.getsize(path)
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= size:
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read()
        cut = type(self).cut_after
        if cut is not None and self.path not in type(self).cut_done and len(data) > cut:
            type(self).cut_done.add(self.path)
            self.wfile.write(data[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)


class FileServer:
    def __init__(self, root: str, cut_after: int | None = None):
        handler = type(
            "Handler", (RangeHandler,), {"root": root, "cut_after": cut_after, "cut_done": set(), "requests": []}
        )
        self.handler = handler
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
