"""The serve stage's settings (Triton on CPU), and TensorRT-LLM's on GPU hosts (trtllm/)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kollm.core.errors import KollmError
from kollm.data import prompts


@dataclass
class TrtllmConfig:
    """TensorRT-LLM on GPU hosts (trtllm/, recipes/trtllm.py): what serves the quantize stage's checkpoints."""

    format: str = "fp8"  # which quantize-stage checkpoint (a quantize.formats entry, or bf16)
    container: str = "nvcr.io/nvidia/tritonserver:26.03-trtllm-python-py3"
    source_dir: str = "/workspace/TensorRT-LLM"  # a TensorRT-LLM checkout inside the container (llmapi model code)
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    max_batch_size: int = 64
    max_num_tokens: int = 8192
    kv_cache_free_gpu_memory_fraction: float = 0.85
    decoupled: bool = True  # streaming through Triton needs it
    host: str = "127.0.0.1"
    port: int = 8000
    bench_output_tokens: int = 128


@dataclass
class ServeConfig:
    prompt: str = prompts.WRITE_POSITIVE_REVIEW
    max_new_tokens: int = 32
    # the smoke test's answer waits this many tokens for its end of sequence: a 300-step model (preset ci)
    # once answered ".." and stopped, which shows the server works but not that the model writes Korean
    min_new_tokens: int = 8
    http_port: int = 0  # 0 = pick a free port
    grpc_port: int = 0
    metrics_port: int = 0
    startup_timeout_s: float = 120.0
    keep_running: bool = False  # leave the server up after the smoke test (demo use)
    max_batch: int = 16  # requests generated together (Triton dynamic batching); 1 = one at a time
    # torch dynamic int8 for the CPU model's nn.Linear layers: the pipeline ends in a served, quantised model.
    # At width 256 it costs ~20 % of the tokens/s of fp32 (benchmarks/results/serving.json); "" = fp32
    quantization: Literal["", "dynamic_int8"] = "dynamic_int8"
    # a unary answer still generating after this many seconds ends with an error (HTTP 500 / gRPC INTERNAL).
    # Over HTTP the model cannot tell that a unary client left, so this bounds the work one leaves behind;
    # streams and gRPC calls are cancelled when their client goes
    max_request_s: float = 60.0
    # Interpreter of the serving environment (tritonserver + tritonclient); empty = the repo's
    # .venv-serve if present, else the current interpreter. In NGC Triton containers: python3.
    python: str = ""

    def check(self) -> None:
        if not self.max_request_s > 0:
            raise KollmError(f"serve.max_request_s={self.max_request_s}: seconds a unary answer may take, more than 0")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise KollmError(
                f"serve.min_new_tokens={self.min_new_tokens}: 0 to serve.max_new_tokens ({self.max_new_tokens})"
            )
        if not 1 <= self.max_batch <= 256:
            raise KollmError(f"serve.max_batch={self.max_batch}: requests generated together, 1 to 256")
