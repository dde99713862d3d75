"""Clients for the llmapi contract (kollm's CPU model and TensorRT-LLM's llmapi model): unary and streaming,
over HTTP and gRPC.

    client = LLMClient("127.0.0.1:8000")                       # HTTP; LLMClient(url, protocol="grpc")
    client.generate("영화 리뷰를 써 주세요.", max_tokens=32).text
    for piece in client.stream("안녕하세요", model="kollm_stream"): print(piece, end="")

Streams yield the new text of each response (the server sends the cumulative text, as TensorRT-LLM does).
A server that is starting or overloaded (UNAVAILABLE) is retried with back-off; a server that is not
there gets one clear ServingError, never a hang (every call has a timeout).
"""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from kollm.core.errors import KollmError
from kollm.serve.contract import CLIENT_TYPES, INPUTS


class ServingError(KollmError):
    def __init__(self, message: str, status: int | str | None = None):
        super().__init__(message)
        self.status = status


@dataclass
class Completion:
    text: str
    finish_reason: str = ""
    stop_reason: str = ""


def request_values(prompt: str, sampling: dict) -> dict:
    """The contract's inputs for one request: `sampling` keys are SamplingParams names (max_tokens=...,
    stop=[...] is `sampling_param_stop`) or other input names (streaming=True)."""
    values = {"text_input": prompt, "return_finish_reason": True, "return_stop_reason": True}
    for key, value in sampling.items():
        if value is None:
            continue
        name = f"sampling_param_{key}" if f"sampling_param_{key}" in INPUTS else key
        if name not in INPUTS:
            raise ServingError(f"unknown request field {key!r}; the contract's inputs are {', '.join(INPUTS)}")
        values[name] = value
    for name, value in values.items():
        _check_type(name, value)
    return values


# what each Triton datatype accepts, checked before sending: Triton's own JSON and tensor parsing answers a
# wrong type with 500 before the model can say which field is wrong (README, "Serving")
_INT_RANGES = {"TYPE_INT32": (-(2**31), 2**31 - 1), "TYPE_UINT64": (0, 2**64 - 1)}


def _check_type(name: str, value) -> None:
    dtype = INPUTS[name][0]
    items = value if isinstance(value, (list, tuple)) and dtype == "TYPE_STRING" else [value]

    def bad(expected: str):
        raise ServingError(f"{name}={value!r}: must be {expected}, got {type(value).__name__}", 400)

    for item in items:
        if dtype == "TYPE_STRING" and not isinstance(item, (str, bytes)):
            bad("text (str)" if name == "text_input" else "text or a list of texts")
        if dtype == "TYPE_BOOL" and not isinstance(item, (bool, np.bool_)):
            bad("true or false")
        if dtype == "TYPE_FP32" and (
            isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, float, np.number))
        ):
            bad("a number")
        if dtype in _INT_RANGES:
            if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, np.integer)):
                bad("a whole number")
            low, high = _INT_RANGES[dtype]
            if not low <= int(item) <= high:
                raise ServingError(f"{name}={value!r} is out of range: its input is {dtype[5:]} ({low} to {high})", 400)


class LLMClient:
    def __init__(
        self, url: str, protocol: str = "http", model: str = "kollm", timeout_s: float = 120.0, retries: int = 3
    ):
        if protocol not in ("http", "grpc"):
            raise ServingError(f"protocol={protocol!r}: choose http or grpc")
        self.url, self.protocol, self.model = url.removeprefix("http://"), protocol, model
        self.timeout_s, self.retries = timeout_s, retries
        self._batched: dict[str, bool] = {}
        self._local = threading.local()  # one tritonclient per thread: they are not thread-safe, and cost to make

    # -- plumbing ----------------------------------------------------------------------------------
    def _module(self):
        if self.protocol == "http":
            import tritonclient.http as module
        else:
            import tritonclient.grpc as module
        return module

    def _client(self):
        """This thread's unary client (kept: making one costs more than a small model's answer)."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._new_client()
        return client

    def close(self) -> None:
        """Closes this thread's connection (a server shutting down waits for open connections to go)."""
        self._drop_client()

    def _drop_client(self) -> None:
        client, self._local.client = getattr(self._local, "client", None), None
        if client is not None:
            try:
                client.close()
            except Exception:
                pass

    def _new_client(self):
        module = self._module()
        if self.protocol == "http":
            return module.InferenceServerClient(
                url=self.url, network_timeout=self.timeout_s, connection_timeout=min(10.0, self.timeout_s)
            )
        return module.InferenceServerClient(url=self.url)

    def _retrying(self, call):
        for attempt in range(self.retries + 1):
            try:
                return call()
            except ServingError as e:
                if e.status not in (503, "UNAVAILABLE") or attempt == self.retries:
                    raise
            time.sleep(min(4.0, 0.25 * 2**attempt))

    def _error(self, e: Exception) -> ServingError:
        try:
            from tritonclient.utils import InferenceServerException
        except ImportError:  # HTTP streaming needs only http.client
            InferenceServerException = ()

        if isinstance(e, ServingError):
            return e
        if isinstance(e, InferenceServerException):
            status = e.status()
            status = (
                int(status)
                if status and str(status).isdigit()
                else (str(status).replace("StatusCode.", "") if status else None)
            )
            return ServingError(f"Triton at {self.url}: {e.message()}", status)
        if isinstance(e, http.client.HTTPException) or "Parse" in type(e).__name__:
            return ServingError(_NOT_HTTP.format(url=self.url), "PROTOCOL")
        if "ConnectionClosed" in type(e).__name__:  # geventhttpclient: the server went away mid-request
            return ServingError(
                f"Triton at {self.url} closed the connection before answering (shutting down?)", "UNAVAILABLE"
            )
        if isinstance(e, (ConnectionError, OSError, TimeoutError)):
            return _unreachable(self.url, e)
        return ServingError(f"Triton at {self.url}: {type(e).__name__}: {e}")

    def batched(self, model: str) -> bool:
        """Whether the model batches (max_batch_size > 0): then every input carries a batch dimension."""
        if model not in self._batched:

            def read():
                try:
                    config = self._client().get_model_config(model)
                except Exception as e:
                    self._drop_client()
                    raise self._error(e) from None
                config = config.get("config", config) if isinstance(config, dict) else config.config
                size = config["max_batch_size"] if isinstance(config, dict) else config.max_batch_size
                return int(size) > 0

            self._batched[model] = self._retrying(read)
        return self._batched[model]

    def _inputs(self, model: str, values: dict):
        module, batch = self._module(), self.batched(model)
        tensors = []
        for name, value in values.items():
            dtype, np_dtype = CLIENT_TYPES[INPUTS[name][0]]
            items = value if isinstance(value, (list, tuple)) else [value]
            if np_dtype is np.object_:
                items = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in items]
            array = np.array(items, dtype=np_dtype)
            if batch:
                array = array.reshape(1, -1)
            tensor = module.InferInput(name, list(array.shape), dtype)
            tensor.set_data_from_numpy(array)
            tensors.append(tensor)
        return tensors

    @staticmethod
    def _completion(result) -> Completion:
        def text(name):
            value = result.as_numpy(name)
            return "" if value is None else value.reshape(-1)[0].decode("utf-8")

        return Completion(text("text_output"), text("finish_reason"), text("stop_reason"))

    # -- calls ---------------------------------------------------------------------------------
    def generate(self, prompt: str, model: str | None = None, request_id: str = "", **sampling) -> Completion:
        """One answer from a non-decoupled model (`kollm`, or TensorRT-LLM's `tensorrt_llm`)."""
        model = model or self.model
        values = request_values(prompt, sampling)

        def call():
            kwargs = {"request_id": request_id} if request_id else {}
            if self.protocol == "grpc":
                kwargs["client_timeout"] = self.timeout_s
            inputs = self._inputs(model, values)
            try:
                return self._completion(self._client().infer(model, inputs, **kwargs))
            except Exception as e:
                error = self._error(e)
                if error.status in (503, "UNAVAILABLE", "DEADLINE_EXCEEDED", "PROTOCOL", None):
                    self._drop_client()  # a broken connection is not reused
                raise error from None

        return self._retrying(call)

    def stream(self, prompt: str, model: str | None = None, request_id: str = "", **sampling) -> Iterator[str]:
        """The answer's new text as it is generated, from a decoupled model (`kollm_stream`)."""
        model = model or f"{self.model}_stream"
        values = request_values(prompt, {**sampling, "streaming": True})
        events = (
            self._http_stream(model, values)
            if self.protocol == "http"
            else self._grpc_stream(model, values, request_id)
        )
        sent = ""
        for completion in events:
            if len(completion.text) > len(sent):
                yield completion.text[len(sent) :]
                sent = completion.text
            self.last = completion

    def _http_stream(self, model: str, values: dict) -> Iterator[Completion]:
        """Triton's generate extension (`/generate_stream`, server-sent events)."""
        host, _, port = self.url.partition(":")
        body = json.dumps(values, ensure_ascii=False).encode("utf-8")
        conn = http.client.HTTPConnection(host, int(port or 80), timeout=self.timeout_s)
        try:
            try:
                conn.request(
                    "POST",
                    f"/v2/models/{model}/generate_stream",
                    body=body,
                    headers={"Content-Type": "application/json"},
                )
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                raise self._error(e) from None
            if response.status != 200:
                raise ServingError(f"Triton at {self.url}: {_error_text(response.read())}", response.status)
            for raw in _lines(response, self):
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                try:
                    event = json.loads(line[5:])
                except ValueError:
                    raise ServingError(f"Triton at {self.url} sent an event that is not JSON: {line[:80]!r}") from None
                if "error" in event:
                    raise ServingError(f"Triton at {self.url}: {event['error']}", 400)
                yield Completion(
                    event.get("text_output", ""), event.get("finish_reason", ""), event.get("stop_reason", "")
                )
        finally:
            conn.close()  # closing early cancels the request on the server

    def _grpc_stream(self, model: str, values: dict, request_id: str) -> Iterator[Completion]:
        import tritonclient.grpc as grpcclient

        if self.protocol != "grpc":
            raise ServingError("gRPC streaming needs protocol='grpc'")
        inputs = self._inputs(model, values)
        events: queue.Queue = queue.Queue()
        client = grpcclient.InferenceServerClient(url=self.url)
        finished = False
        try:
            client.start_stream(
                callback=lambda result, error: events.put((result, error)), stream_timeout=self.timeout_s
            )
            client.async_stream_infer(model, inputs, request_id=request_id, enable_empty_final_response=True)
            deadline = time.monotonic() + self.timeout_s
            while True:
                try:
                    result, error = events.get(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    raise ServingError(
                        f"no answer from Triton at {self.url} within {self.timeout_s:.0f} s", "DEADLINE_EXCEEDED"
                    ) from None
                if error is not None:
                    raise self._error(error)
                response = result.get_response()
                final = response.parameters.get("triton_final_response")
                if response.outputs:
                    yield self._completion(result)
                if final is not None and final.bool_param:
                    finished = True
                    return
        except ServingError:
            raise
        except Exception as e:
            raise self._error(e) from None
        finally:
            client.stop_stream(cancel_requests=not finished)  # an abandoned stream frees its server slot
            client.close()


_NOT_HTTP = (
    "the server at {url} does not answer HTTP/1.1: it looks like Triton's gRPC port; ask it over gRPC "
    "(LLMClient(url, protocol='grpc'); kollm chat --protocol grpc, or leave --protocol out to detect it)"
)


def _lines(response, client: LLMClient) -> Iterator[bytes]:
    """The lines of a streamed answer; a connection lost mid-answer is a ServingError (the server went away)."""
    try:
        yield from response
    except (OSError, http.client.HTTPException) as e:
        raise ServingError(
            f"Triton at {client.url} closed the stream before the answer ended "
            f"({type(e).__name__}); is the server shutting down?",
            "UNAVAILABLE",
        ) from None


def detect_protocol(url: str, timeout_s: float = 10.0) -> str:
    """'http' or 'grpc': which of Triton's two ports `url` is. Its HTTP port answers `GET /v2/health/live`;
    its gRPC port speaks HTTP/2 only, so an HTTP/1.1 request gets bytes that are no status line."""
    host, _, port = url.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port or 80), timeout=timeout_s)
    try:
        conn.request("GET", "/v2/health/live")
        conn.getresponse().read()
        return "http"
    except http.client.HTTPException:
        pass  # something answered, not in HTTP/1.1
    except OSError as e:
        raise _unreachable(url, e) from None
    finally:
        conn.close()
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url=url)
    try:
        if client.is_server_live(client_timeout=timeout_s):
            return "grpc"
    except Exception:
        pass
    finally:
        client.close()
    raise ServingError(f"the server at {url} answers neither Triton's HTTP nor its gRPC protocol", "PROTOCOL")


def _unreachable(url: str, e: OSError) -> ServingError:
    return ServingError(
        f"cannot reach Triton at {url} ({type(e).__name__}: {e}); is the server running? "
        f"(kollm stage serve serve.keep_running=true)",
        "UNAVAILABLE",
    )


def _error_text(body: bytes) -> str:
    try:
        return json.loads(body).get("error", body.decode("utf-8", "replace"))
    except ValueError:
        return body.decode("utf-8", "replace")
