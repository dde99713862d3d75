"""What a request to the served model may hold, checked without a server: the model's parser (unknown fields,
wrapped integers), the client's type checks, the engine's deadline and the Gradio chat's history.
tests/test_serve.py sends the same mistakes to a real tritonserver."""

import time

import numpy as np
import pytest

from kollm.generation.sampling import InvalidRequest, SamplingParams
from kollm.serve.client import ServingError, request_values
from kollm.serve.contract import Limits, parse_request


def _get(values: dict):
    return lambda name: None if name not in values else np.array([values[name]])


@pytest.mark.parametrize(
    "field, meant",
    [
        ("sampling_param_max_token", "sampling_param_max_tokens"),
        ("max_tokens", "sampling_param_max_tokens"),
        ("sampling_param_temprature", "sampling_param_temperature"),
        ("temperature", "sampling_param_temperature"),
        ("streming", "streaming"),
    ],
)
def test_an_unknown_field_is_refused_with_the_input_it_most_likely_meant(field, meant):
    with pytest.raises(InvalidRequest, match=rf"^unknown field '{field}': did you mean '{meant}'\?"):
        parse_request(_get({"text_input": "안녕"}), Limits(), parameters={field: 4})


def test_a_field_like_no_input_is_refused_without_a_guess_and_triton_parameters_pass():
    with pytest.raises(InvalidRequest, match=r"^unknown field 'colour': this model reads only its inputs"):
        parse_request(_get({"text_input": "안녕"}), Limits(), parameters={"colour": "blue"})
    parsed = parse_request(
        _get({"text_input": "안녕"}), Limits(), parameters={"triton_enable_empty_final_response": True}
    )
    assert parsed.prompt == "안녕"


def test_an_int32_wrapped_by_triton_is_reported_as_the_number_sent():
    wrapped = int(np.int64(3_000_000_000).astype(np.int32))  # what Triton's JSON reader hands the model
    with pytest.raises(
        InvalidRequest,
        match=r"^sampling_param_max_tokens=3000000000 is out of range: it does not fit its INT32 input "
        r"\(at most 2147483647; Triton's JSON reader wrapped it to -1294967296\)$",
    ):
        parse_request(_get({"text_input": "안녕", "sampling_param_max_tokens": wrapped}), Limits())
    with pytest.raises(InvalidRequest, match=r"^sampling_param_max_tokens=-5 is out of range: 1 to 512$"):
        parse_request(_get({"text_input": "안녕", "sampling_param_max_tokens": -5}), Limits())


@pytest.mark.parametrize(
    "prompt, sampling, message",
    [
        ("안녕", {"max_tokens": 10.5}, "sampling_param_max_tokens=10.5: must be a whole number, got float"),
        ("안녕", {"max_tokens": "10"}, "sampling_param_max_tokens='10': must be a whole number, got str"),
        (
            "안녕",
            {"seed": -1},
            r"sampling_param_seed=-1 is out of range: its input is UINT64 \(0 to 18446744073709551615\)",
        ),
        ("안녕", {"streaming": "yes"}, "streaming='yes': must be true or false, got str"),
        (None, {}, r"text_input=None: must be text \(str\), got NoneType"),
        (
            "안녕",
            {"max_tokens": 3_000_000_000},
            r"sampling_param_max_tokens=3000000000 is out of range: its input is INT32",
        ),
        ("안녕", {"temperature": "0.5"}, "sampling_param_temperature='0.5': must be a number, got str"),
        ("안녕", {"top_k": True}, "sampling_param_top_k=True: must be a whole number, got bool"),
        ("안녕", {"stop": ["가", 3]}, r"sampling_param_stop=\['가', 3\]: must be text or a list of texts"),
    ],
)
def test_the_client_refuses_a_wrong_type_before_sending(prompt, sampling, message):
    """Triton answers these with its own 500 before the model runs: kollm's client never sends them."""
    with pytest.raises(ServingError, match=f"^{message}") as e:
        request_values(prompt, sampling)
    assert e.value.status == 400


def test_the_client_sends_what_the_server_judges():
    """Right types pass, whatever their values: the server's range checks answer those (400, with the range)."""
    values = request_values(
        b"\xff\xfe",
        {
            "max_tokens": np.int32(0),
            "temperature": np.float32("nan"),
            "top_p": 1,
            "seed": 2**64 - 1,
            "stop": list("가나다라마바사아자"),
            "streaming": True,
        },
    )
    assert values["sampling_param_max_tokens"] == 0 and values["sampling_param_seed"] == 2**64 - 1


def test_a_request_past_its_deadline_ends_with_a_deadline_error(tiny_model_dir):
    """A unary HTTP request whose client left is not cancelled by Triton: its deadline ends it instead."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kollm.generation.engine import BatchGenerator, Job

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ended, texts = [], []
    ids = tok("영화 리뷰를 써 주세요.")["input_ids"]
    late = Job(
        ids,
        SamplingParams(max_tokens=400, min_tokens=400),
        on_text=lambda *a: texts.append(a),
        on_error=lambda msg, kind: ended.append((msg, kind)),
        deadline=time.monotonic() + 0.05,
    )
    on_time = Job(ids, SamplingParams(max_tokens=8, min_tokens=8), on_text=lambda *a: texts.append(a))
    t0 = time.monotonic()
    BatchGenerator(model, tok).generate([late, on_time])
    assert time.monotonic() - t0 < 5
    assert len(ended) == 1 and ended[0][1] == "deadline" and "time limit" in ended[0][0], (ended, texts)
    assert int(ended[0][0].split("(")[1].split()[0]) < 400  # it ended before its 400 tokens
    assert [reason for _, reason, _ in texts if reason] == ["length"]  # the other request was answered


def test_the_gradio_chat_keeps_errors_out_of_what_the_model_is_sent(tiny_model_dir):
    """An error shown in the browser chat (here a real one: no server on the port) is not sent back to the
    model as its own words on the next turn; a question that got only an error is dropped with it."""
    from transformers import AutoTokenizer

    from kollm.serve.chat import Conversation, triton_backend
    from kollm.serve.server import free_port
    from kollm.serve.web import make_respond

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    down, _ = triton_backend(f"127.0.0.1:{free_port()}", "http", "kollm", timeout_s=5)
    shown = list(make_respond(down, Conversation(tok, 512, 16))("안녕하세요", [], 16, 0.0, 1.0, 0))
    assert len(shown) == 1 and shown[0].startswith("⚠️ cannot reach Triton"), shown

    sent = []

    def model(prompt, sampling):
        sent.append(prompt)
        yield "네, 좋아요."

    history = [
        {"role": "user", "content": "영화 추천해 주세요"},
        {"role": "assistant", "content": "좋은 영화가 많아요."},
        {"role": "user", "content": "안녕하세요"},
        {"role": "assistant", "content": shown[0]},
        {"role": "user", "content": "리뷰 써 주세요"},
        {"role": "assistant", "content": "재미있는\n\n" + shown[0]},
    ]
    answer = list(make_respond(model, Conversation(tok, 512, 16))("다시 안녕하세요", history, 16, 0.0, 1.0, 0))
    assert answer[-1] == "네, 좋아요."
    assert "⚠️" not in sent[0] and "cannot reach" not in sent[0]
    assert "안녕하세요" not in sent[0].replace("다시 안녕하세요", "")  # the unanswered question went with its error
    assert "좋은 영화가 많아요." in sent[0] and "재미있는" in sent[0]  # answers, and the part before an error, stay
