"""ModelOpt post-training quantisation on CPU (fake-quant) and the HF checkpoints TensorRT-LLM loads."""

import json
import os

import pytest
import torch

from kollm.core.errors import KollmError
from kollm.quantize import modelopt as quantization


def _llama(hidden=128, intermediate=256):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=512,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("fmt, algo", [("int8_sq", "W8A8_SQ_PER_CHANNEL"), ("fp8", "FP8"), ("int4_awq", "W4A16_AWQ")])
def test_each_format_calibrates_on_cpu_and_exports_what_tensorrt_llm_loads(fmt, algo, korean_tokenizer, tmp_path):
    model = _llama()
    ids = torch.randint(0, 512, (4, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = model(input_ids=ids).logits
    quantization.quantize(model, fmt, [ids[:2], ids[2:]])
    with torch.no_grad():
        after = model(input_ids=ids).logits
    # fake-quant changes the logits a little, not a lot: the format is applied, and it is not broken
    assert 0 < (after - before).abs().max() < 0.5 * before.abs().max()
    fp32_mb = sum(p.numel() * 4 for p in _llama().parameters()) / 1e6
    out = quantization.export(model, korean_tokenizer, str(tmp_path / fmt))
    quant = json.load(open(os.path.join(out, "hf_quant_config.json")))["quantization"]
    assert quant["quant_algo"] == algo and "lm_head" in quant["exclude_modules"]
    config = json.load(open(os.path.join(out, "config.json")))
    assert (
        config["architectures"] == ["LlamaForCausalLM"] and config["quantization_config"]["quant_method"] == "modelopt"
    )
    assert quantization.folder_mb(out) < fp32_mb  # quantised weights are smaller on disk
    assert os.path.exists(os.path.join(out, "tokenizer.json"))


def test_int4_refuses_widths_that_are_not_multiples_of_128_in_one_line():
    with pytest.raises(KollmError, match="intermediate_size=704 .*multiples of 128"):
        quantization.check_format("int4_awq", 256, 704)
    ok, skipped = quantization.supported(["int8_sq", "fp8", "int4_awq"], 256, 704)
    assert ok == ["int8_sq", "fp8"] and "int4_awq" in skipped
    with pytest.raises(KollmError, match="choose from"):
        quantization.check_format("nvfp4", 256, 256)


def test_every_format_the_config_offers_has_a_modelopt_config():
    import typing

    from kollm.quantize.config import QuantFormat

    assert set(quantization.MODELOPT_CONFIGS) == set(typing.get_args(QuantFormat))


def test_an_unknown_format_in_the_config_is_one_line(tmp_path):
    from kollm import config
    from recipes import presets

    with pytest.raises(
        KollmError,
        match=r"quantize.formats=\['int8_sq', 'int3'\]: 'int3' is not one of int8_sq, fp8, int4_awq, w4a8_awq",
    ):
        config.validate(presets.build("ci", ['quantize.formats=["int8_sq", "int3"]']))


DANGLING = {
    "a",
    "an",
    "the",
    "are",
    "is",
    "whose",
    "of",
    "or",
    "and",
    "to",
    "with",
    "for",
    "in",
    "that",
    "which",
    "but",
}


def _assert_whole_sentence(text):
    import re

    assert text.endswith("."), f"not a whole sentence: {text!r}"
    depth = 0
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        assert depth >= 0, f"unbalanced parentheses: {text!r}"
    assert depth == 0, f"unbalanced parentheses: {text!r}"
    assert re.findall(r"\w+", text)[-1].lower() not in DANGLING, f"dangling last word: {text!r}"


@pytest.mark.parametrize("hidden, intermediate", [(256, 704), (200, 512), (200, 700), (96, 1)])
def test_every_skip_reason_is_a_whole_sentence(hidden, intermediate):
    ok, skipped = quantization.supported(list(quantization.MODELOPT_CONFIGS), hidden, intermediate)
    assert set(skipped) == {"int4_awq", "w4a8_awq"} and ok == ["int8_sq", "fp8"]
    for why in skipped.values():
        _assert_whole_sentence(why)
        assert "\n" not in why


def test_the_rendered_skip_reasons_are_the_codes_whole_sentences():
    """The stored reason (benchmarks/results/quantization.json, measured on preset tiny's model) is what the code
    says for that model, and the README and week 8 show it whole (test_docs checks they render from the JSON)."""
    import re

    from recipes import presets
    from tests.conftest import REPO

    stored = json.load(open(os.path.join(REPO, "benchmarks", "results", "quantization.json")))["skipped"]
    model = presets.from_preset("tiny").model
    _, now = quantization.supported(list(stored), model.hidden_size, model.intermediate_size)
    assert stored and stored == now
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    week8 = open(os.path.join(REPO, "docs", "workshop", "week08_quantization.md"), encoding="utf-8").read()
    for text, pattern in ((readme, r"^\| (\S+) \| skipped: (.*) \| \| \|$"), (week8, r"^- `(\S+)`: 건너뜀 — (.*)$")):
        rendered = dict(re.findall(pattern, text, re.M))
        assert rendered == stored
        for why in rendered.values():
            _assert_whole_sentence(why)
