"""ModelOpt post-training quantisation on CPU (fake-quant) and the HF checkpoints TensorRT-LLM loads."""

import json
import os

import pytest
import torch

from kollm import quantization
from kollm.errors import KollmError


def _llama(hidden=128, intermediate=256):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=512, max_position_embeddings=64)
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
    assert config["architectures"] == ["LlamaForCausalLM"] and config["quantization_config"]["quant_method"] == "modelopt"
    assert quantization.folder_mb(out) < fp32_mb  # quantised weights are smaller on disk
    assert os.path.exists(os.path.join(out, "tokenizer.json"))


def test_int4_refuses_widths_that_are_not_multiples_of_128_in_one_line():
    with pytest.raises(KollmError, match="intermediate_size=704 .*multiples of 128"):
        quantization.check_format("int4_awq", 256, 704)
    ok, skipped = quantization.supported(["int8_sq", "fp8", "int4_awq"], 256, 704)
    assert ok == ["int8_sq", "fp8"] and "int4_awq" in skipped
    with pytest.raises(KollmError, match="choose from"):
        quantization.check_format("nvfp4", 256, 256)


def test_an_unknown_format_in_the_config_is_one_line(tmp_path):
    from kollm import config
    from recipes import presets

    with pytest.raises(KollmError, match="quantize.formats: 'int3' is not a format"):
        config.validate(presets.build("ci", ['quantize.formats=["int8_sq", "int3"]']))
