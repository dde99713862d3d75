"""Triton python-backend model: kollm's HF causal LM on CPU, speaking the llmapi contract (kollm/serve/contract.py).

The same file serves both models `triton_model_repo.write_repository` writes:
- `kollm`        : one response per request (HTTP/gRPC `infer`, HTTP `/generate`)
- `kollm_stream` : decoupled; with `streaming: true` every response carries the cumulative `text_output`
                   (as TensorRT-LLM's llmapi model does), the last one flagged final
`execute` only checks and queues requests: the engine thread batches whatever is queued into one
KV-cached forward pass per token and answers through each request's response sender. A user mistake
is answered 400 (INVALID_ARG); the server keeps serving. Weights load with safetensors (never pickle).
"""

import json
import threading
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from kollm.generation.engine import BatchGenerator, EngineLoop
        from kollm.quantize.modelopt import dynamic_int8
        from kollm.serve.contract import Limits

        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        torch.set_num_threads(int(params.get("threads", "1")))
        self.limits = Limits(
            max_tokens=int(params["max_tokens"]),
            max_tokens_limit=int(params["max_tokens_limit"]),
            max_prompt_chars=int(params["max_prompt_chars"]),
            max_request_s=float(params["max_request_s"]),
        )
        model_dir = params["model_dir"]
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, use_safetensors=True).eval()
        if params.get("quantization") == "dynamic_int8":  # CPU int8 matmuls for nn.Linear (not the LM head)
            quantized = dynamic_int8(model)
            pb_utils.Logger.log_info(f"kollm: dynamic int8 in {quantized} linear layers of {model_dir}")
        self.generator = BatchGenerator(model, self.tokenizer)
        self.engine = EngineLoop(self.generator, max_batch=int(params["max_batch"]))
        self.decoupled = pb_utils.using_decoupled_model_transaction_policy(config)
        self.batched = config.get("max_batch_size", 0) > 0
        self.lock = threading.Lock()
        self.by_request_id = {}  # triton request id -> cancel events of its running jobs (`stop` requests)

    def execute(self, requests):
        from kollm.generation.sampling import InvalidRequest

        for request in requests:
            sender = request.get_response_sender()
            try:
                self._submit(request, sender)
            except InvalidRequest as e:
                self._fail(sender, str(e), pb_utils.TritonError.INVALID_ARG)
            except Exception as e:  # a bug here must not take the server down
                self._fail(sender, f"{type(e).__name__}: {e}", pb_utils.TritonError.INTERNAL)
        return None

    def _submit(self, request, sender):
        from kollm.generation.engine import Job
        from kollm.generation.sampling import InvalidRequest
        from kollm.serve.contract import parse_request

        def get(name):
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            return None if tensor is None else tensor.as_numpy()

        parsed = parse_request(get, self.limits, parameters=json.loads(request.parameters() or "{}"))
        if parsed.stop_request:
            return self._stop(request.request_id(), sender)
        if parsed.streaming and not self.decoupled:
            raise InvalidRequest("Streaming is only supported in decoupled mode (use the kollm_stream model)")
        text = parsed.prompt
        bos = self.tokenizer.bos_token
        ids = self.tokenizer(text, add_special_tokens=not (bos and text.startswith(bos)))["input_ids"]
        if self.generator.room(len(ids)) < 1:
            raise InvalidRequest(
                f"text_input is {len(ids):,} tokens; the model's context is "
                f"{self.generator.context:,} tokens, with room for at least one answer token"
            )
        cancelled = threading.Event()
        user_id = request.request_id()
        if user_id:
            with self.lock:
                self.by_request_id.setdefault(user_id, []).append(cancelled)

        def on_text(text_so_far, reason, stop_reason):
            if reason is None and not parsed.streaming:
                return
            if reason == "cancelled":
                self._forget(user_id, cancelled)
                return self._fail(sender, "Request cancelled by client", pb_utils.TritonError.CANCELLED)
            outputs = {"text_output": text_so_far}
            if parsed.return_finish_reason:
                outputs["finish_reason"] = reason or ""
            if parsed.return_stop_reason:
                outputs["stop_reason"] = stop_reason or ""
            final = reason is not None
            if final:
                self._forget(user_id, cancelled)
            sender.send(self._response(outputs), flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL if final else 0)

        def on_error(message, kind="internal"):
            self._forget(user_id, cancelled)
            if kind == "deadline":  # for the operator: how often the limit ends answers (a client may have left)
                pb_utils.Logger.log_warn(
                    f"kollm: request ended by serve.max_request_s={self.limits.max_request_s:g}: {message}"
                )
            # 503 only when another try can succeed (the server is going away); a deadline would be hit again
            self._fail(
                sender,
                message,
                pb_utils.TritonError.UNAVAILABLE if kind == "unavailable" else pb_utils.TritonError.INTERNAL,
            )

        # HTTP tells the model nothing when a unary client leaves (only gRPC and streams are cancelled), so a
        # unary answer gets a deadline: what a departed client leaves behind is bounded by max_request_s
        deadline = None if parsed.streaming else time.monotonic() + self.limits.max_request_s
        self.engine.submit(
            Job(
                ids,
                parsed.params,
                on_text,
                on_error,
                deadline=deadline,
                is_cancelled=lambda: cancelled.is_set() or request.is_cancelled(),
            )
        )

    def _stop(self, user_id, sender):
        if not user_id:
            return self._fail(
                sender, "a stop request needs the request id of the request to stop", pb_utils.TritonError.INVALID_ARG
            )
        with self.lock:
            events = self.by_request_id.pop(user_id, [])
        for event in events:
            event.set()
        self._fail(sender, f"Request cancelled by client ({len(events)} stopped)", pb_utils.TritonError.CANCELLED)

    def _forget(self, user_id, event):
        if user_id:
            with self.lock:
                events = self.by_request_id.get(user_id, [])
                if event in events:
                    events.remove(event)
                if not events:
                    self.by_request_id.pop(user_id, None)

    def _response(self, outputs):
        shape = (1, 1) if self.batched else (1,)
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor(name, np.array([value.encode("utf-8")], dtype=np.object_).reshape(shape))
                for name, value in outputs.items()
            ]
        )

    @staticmethod
    def _fail(sender, message, code):
        sender.send(
            pb_utils.InferenceResponse(error=pb_utils.TritonError(message, code)),
            flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL,
        )

    def finalize(self):
        # Triton does not count requests answered through response senders as in flight: it unloads the model
        # while they run. End them here, while their senders still work, instead of after.
        self.engine.close()
