"""The baseline a user would write first: a `transformers` text-generation pipeline behind a small HTTP server,
one request at a time (a pipeline is not thread-safe). Used by benchmarks/serving.py.

    python benchmarks/serving_pipeline_server.py MODEL_DIR PORT THREADS
    POST /generate {"text_input": "...", "max_tokens": 32}  ->  {"text_output": "..."}
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch
from transformers import pipeline


def main(model_dir: str, port: int, threads: int) -> None:
    torch.set_num_threads(threads)
    generator = pipeline("text-generation", model=model_dir, device="cpu")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            n = int(body.get("max_tokens", 32))
            with lock:
                out = generator(
                    body["text_input"],
                    max_new_tokens=n,
                    min_new_tokens=n,
                    do_sample=False,
                    repetition_penalty=1.2,
                    return_full_text=False,
                )
            data = json.dumps({"text_output": out[0]["generated_text"]}, ensure_ascii=False).encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    ThreadingHTTPServer.request_queue_size = 128  # the default backlog of 5 resets connections at 32 clients
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("READY", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
