"""TensorRT-LLM's serving files and commands, tested up to the GPU call (TensorRT-LLM needs an NVIDIA GPU)."""

import json
import os
import subprocess
import sys

import pytest
import yaml

import trtllm
from kollm.config import TrtllmConfig
from kollm.core.errors import KollmError
from tests.conftest import REPO


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "fp8"
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    return str(path)


def test_model_yaml_is_what_the_llmapi_model_passes_to_llm(checkpoint, tmp_path):
    t = TrtllmConfig(tensor_parallel_size=2, max_batch_size=32)
    files = trtllm.write_files(str(tmp_path / "out"), checkpoint, t, ["영화 리뷰를 써 주세요."])
    body = yaml.safe_load(open(files["model_yaml"]))
    assert body["model"] == checkpoint and body["backend"] == "pytorch"  # a local folder, no hub name
    assert body["tensor_parallel_size"] == 2 and body["pipeline_parallel_size"] == 1
    assert body["kv_cache_config"] == {"free_gpu_memory_fraction": 0.85}
    # the llmapi model reads triton_config for the server and passes every other key to LLM()
    assert body["triton_config"] == {"max_batch_size": 0, "decoupled": True}
    assert files["model_yaml"].endswith(os.path.join("model_repository", "tensorrt_llm", "1", "model.yaml"))
    assert yaml.safe_load(open(files["options"]))["max_batch_size"] == 32
    requests = [json.loads(line) for line in open(files["dataset"], encoding="utf-8")]
    assert requests == [{"task_id": 0, "prompt": "영화 리뷰를 써 주세요.", "output_tokens": 128}]


def test_commands_name_the_checkpoint_and_the_parallel_sizes(checkpoint, tmp_path):
    t = TrtllmConfig(tensor_parallel_size=4)
    serve = trtllm.serve_command(checkpoint, "opts.yaml", t)
    assert serve[:2] == ["trtllm-serve", checkpoint] and serve[serve.index("--tp_size") + 1] == "4"
    assert serve[serve.index("--host") + 1] == "127.0.0.1" and "--config" in serve
    bench = trtllm.bench_command(checkpoint, "data.jsonl", "opts.yaml", t)
    assert bench[bench.index("--model_path") + 1] == checkpoint and "throughput" in bench
    assert bench[bench.index("--backend") + 1] == "pytorch"
    triton = trtllm.triton_command(str(tmp_path / "repo"), t)
    assert "launch_triton_server.py" in triton and "--world_size=4" in triton
    assert "triton_backend/all_models/llmapi/tensorrt_llm/1/model.py" in triton


def test_a_folder_that_is_not_a_checkpoint_is_one_line(tmp_path):
    with pytest.raises(KollmError, match="not a HF checkpoint folder"):
        trtllm.model_yaml(str(tmp_path), TrtllmConfig())


def _quantize_manifest(root, checkpoint):
    stage = root / "ci" / "quantize"
    stage.mkdir(parents=True)
    (stage / "quantization.json").write_text(
        json.dumps({"formats": [{"format": "fp8", "dir": checkpoint}, {"format": "torch_dynamic_int8", "dir": ""}]})
    )
    (stage / "manifest.json").write_text(
        json.dumps(
            {"status": "complete", "outputs": {"table": str(stage / "quantization.json"), "checkpoints": str(stage)}}
        )
    )


def test_kollm_trtllm_dryrun_shows_the_container_task(checkpoint, tmp_path):
    _quantize_manifest(tmp_path, checkpoint)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "recipes.cli",
            "trtllm",
            "triton",
            "preset=ci",
            f"run.root={tmp_path}",
            "run.executor=docker",
            "--dryrun",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "tritonserver:26.03-trtllm-python-py3" in proc.stdout and "runtime: nvidia" in proc.stdout
    assert "launch_triton_server.py" in proc.stdout
    assert os.path.exists(tmp_path / "ci" / "trtllm" / "model_repository" / "tensorrt_llm" / "1" / "model.yaml")
    wrong = subprocess.run(
        [
            sys.executable,
            "-m",
            "recipes.cli",
            "trtllm",
            "serve",
            "preset=ci",
            "trtllm.format=int4_awq",
            f"run.root={tmp_path}",
            "--dryrun",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert wrong.returncode == 2 and "trtllm.format='int4_awq': the quantize stage wrote fp8" in wrong.stderr
