"""A real tritonserver (from nvidia-pytriton) serving a kollm model, in the serve environment."""

import json
import os
import subprocess

import pytest

from kollm.curation.korean import is_hangul
from tests.conftest import SERVE_PYTHON

pytestmark = pytest.mark.skipif(not os.path.exists(SERVE_PYTHON), reason="serve environment (.venv-serve) missing")

SCRIPT = r"""
import json, sys, time
from kollm.serve.client import generate_grpc_stream, generate_http
from kollm.serve.server import TritonServer
from triton_model_repo import write_repository
model_dir, work = sys.argv[1], sys.argv[2]
write_repository(work + "/repo", model_dir, max_new_tokens=8)
server = TritonServer(work + "/repo", work)
with server:
    out = {"command": server.command(),
           "http": generate_http(server.http_url, "영화 리뷰를 써 주세요.", 12, min_new_tokens=8),
           "stream": generate_grpc_stream(server.grpc_url, "영화 리뷰를 써 주세요.", 12, min_new_tokens=8),
           "http_default": generate_http(server.http_url, "안녕하세요", 12)}
    try:
        generate_http(server.http_url, "안녕", 12, model="missing")
    except Exception as e:
        out["missing_model_error"] = str(e)
out["exit_code"] = server.proc.returncode
print("RESULT " + json.dumps(out, ensure_ascii=False))
"""


def test_triton_answers_over_http_and_grpc_stream(tiny_model_dir, tmp_path):
    proc = subprocess.run([SERVE_PYTHON, "-c", SCRIPT, tiny_model_dir, str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert line, proc.stdout[-2000:] + proc.stderr[-3000:]
    out = json.loads(line[0][7:])
    assert "--http-address=127.0.0.1" in out["command"] and "--grpc-address=127.0.0.1" in out["command"]
    assert out["http"] and out["http_default"], "empty answer over HTTP"
    assert out["http"] == out["http"].strip()
    assert any(map(is_hangul, out["http"]))  # a model pretrained on Korean answers in Hangul
    # greedy decoding: streaming pieces add up to the same answer, with no broken characters
    assert "".join(out["stream"]) == out["http"]
    assert len(out["stream"]) > 1
    assert not any("\ufffd" in p for p in out["stream"])
    assert "missing" in out["missing_model_error"]
    assert out["exit_code"] == 0  # stopped cleanly with SIGTERM
    for name in ("kollm", "kollm_stream"):
        assert os.path.exists(tmp_path / "repo" / name / "config.pbtxt")
    assert "decoupled: true" in open(tmp_path / "repo" / "kollm_stream" / "config.pbtxt").read()


def test_repository_refuses_a_folder_without_a_model(tmp_path):
    proc = subprocess.run([SERVE_PYTHON, "-c", "import sys; from triton_model_repo import write_repository; "
                           "write_repository(sys.argv[1] + '/repo', sys.argv[1])", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "is not a HF model directory" in proc.stderr
