"""NeMo AutoModel's LoRA/DoRA recipe, run for real on CPU in its own environment (.venv-automodel)."""

import json
import os

import pytest
import torch
import yaml

from kollm.config import FinetuneConfig
from kollm.core.errors import KollmError
from kollm.data import tasks
from kollm.finetune import automodel, heads, methods
from kollm.finetune import trainer as train
from tests.conftest import REPO

AUTOMODEL_PYTHON = os.path.join(REPO, ".venv-automodel", "bin", "python")
ROWS = [
    {"text": t, "label": y}
    for t, y in [
        ("최고의 영화 감동 그 자체", 1),
        ("시간 낭비 최악의 영화", 0),
        ("배우들 연기가 정말 좋았다", 1),
        ("지루하고 뻔한 이야기", 0),
    ]
] * 2


@pytest.mark.parametrize("method", ["lora", "dora"])
def test_automodel_recipe_trains_an_hf_peft_adapter_on_cpu(method, tiny_model_dir, korean_tokenizer, tmp_path):
    from peft import PeftModel

    s = FinetuneConfig(
        backend="automodel",
        method=method,
        batch_size=8,
        epochs=4,
        lr=5e-3,
        lora_r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        max_len=48,
        automodel_python=AUTOMODEL_PYTHON,
    )
    row = train.finetune_task(tiny_model_dir, tasks.NSMC, ROWS, ROWS, s, str(tmp_path / method))
    assert row["backend"] == "nemo-automodel" and row["steps"] == 4
    assert row["loss_last"] < row["loss_first"]
    with open(tmp_path / method / "automodel.yaml") as f:
        recipe = yaml.safe_load(f)
    assert recipe["dist_env"]["backend"] == "gloo" and recipe["peft"]["use_dora"] == (method == "dora")
    with open(os.path.join(row["adapter_dir"], "adapter_config.json")) as f:
        adapter = json.load(f)
    assert adapter["peft_type"] == "LORA" and adapter["use_dora"] == (method == "dora")  # HF-PEFT format
    assert 0 < row["trainable_pct"] < 50

    # the adapter loads with HF PEFT, and merging it changes no logit (beyond fp32 summation order)
    ids, mask, _ = heads.collate(
        "lm", heads.lm_examples(korean_tokenizer, tasks.NSMC, ROWS, 48), korean_tokenizer.pad_token_id
    )
    peft_model = PeftModel.from_pretrained(methods.load_base(tiny_model_dir, "lm", 2, None), row["adapter_dir"]).eval()
    with torch.no_grad():
        adapted = peft_model(input_ids=ids, attention_mask=mask).logits
        base = methods.load_base(tiny_model_dir, "lm", 2, None).eval()(input_ids=ids, attention_mask=mask).logits
        merged = methods.merged(peft_model, method)(input_ids=ids, attention_mask=mask).logits
    assert (adapted - base).abs().max() > 1e-4  # it learned something
    torch.testing.assert_close(merged, adapted, atol=1e-4, rtol=0)
    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(row["model_dir"]).eval()
    with torch.no_grad():
        torch.testing.assert_close(saved(input_ids=ids, attention_mask=mask).logits, adapted, atol=1e-4, rtol=0)


def test_automodel_backend_refuses_what_it_cannot_run(tiny_model_dir, tmp_path):
    s = FinetuneConfig(backend="automodel", method="waveft", automodel_python=AUTOMODEL_PYTHON)
    with pytest.raises(KollmError, match="runs lora and dora with the lm head"):
        automodel.train(tiny_model_dir, tasks.NSMC, ROWS, s, str(tmp_path))
    s = FinetuneConfig(backend="automodel", automodel_python=str(tmp_path / "absent" / "python"))
    with pytest.raises(KollmError, match="make env-automodel"):
        automodel.train(tiny_model_dir, tasks.NSMC, ROWS, s, str(tmp_path))
