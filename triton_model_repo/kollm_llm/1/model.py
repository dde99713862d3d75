"""Triton python-backend model: kollm's HF causal LM on CPU (PyTorch).

One file serves both deployments written by `triton_model_repo.write_repository`:
- `kollm`        : request/response (HTTP or gRPC `infer`), returns the whole answer
- `kollm_stream` : decoupled (gRPC streaming), sends each complete UTF-8 piece as it is made
Weights load from the `model_dir` parameter with safetensors (never pickle).
"""

import json

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.model_dir = params["model_dir"]
        self.default_max_new_tokens = int(params.get("max_new_tokens", "64"))
        torch.set_num_threads(int(params.get("threads", "1")))
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(self.model_dir, use_safetensors=True).eval()
        self.decoupled = pb_utils.using_decoupled_model_transaction_policy(config)

    def _request_args(self, request):
        prompt = pb_utils.get_input_tensor_by_name(request, "prompt").as_numpy().reshape(-1)[0]
        prompt = prompt.decode("utf-8") if isinstance(prompt, bytes) else str(prompt)
        limit = pb_utils.get_input_tensor_by_name(request, "max_new_tokens")
        max_new = int(limit.as_numpy().reshape(-1)[0]) if limit is not None else self.default_max_new_tokens
        floor = pb_utils.get_input_tensor_by_name(request, "min_new_tokens")
        min_new = int(floor.as_numpy().reshape(-1)[0]) if floor is not None else 1
        return prompt, max_new, min_new

    @staticmethod
    def _text_response(text):
        out = pb_utils.Tensor("text", np.array([text.encode("utf-8")], dtype=np.object_))
        return pb_utils.InferenceResponse(output_tensors=[out])

    def execute(self, requests):
        from kollm.serve.generation import stream_generate

        if not self.decoupled:
            responses = []
            for request in requests:
                try:
                    prompt, max_new, min_new = self._request_args(request)
                    text = "".join(stream_generate(self.model, self.tokenizer, prompt, max_new, min_new))
                    responses.append(self._text_response(text))
                except Exception as e:  # report to the client, keep the server up
                    responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(e))))
            return responses
        for request in requests:
            sender = request.get_response_sender()
            try:
                prompt, max_new, min_new = self._request_args(request)
                for piece in stream_generate(self.model, self.tokenizer, prompt, max_new, min_new):
                    sender.send(self._text_response(piece))
            except Exception as e:
                sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(e))))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
