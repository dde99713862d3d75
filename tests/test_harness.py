"""kollm's lm-eval task YAMLs on the local Korean files, with a model folder and a PEFT adapter."""

import json
import math
import os
import subprocess
import sys

import pytest

from kollm.core.errors import KollmError
from kollm.data import tasks
from kollm.evaluate import harness
from kollm.finetune import heads

NSMC_ROWS = [
    {"text": t, "label": y}
    for t, y in [
        ("최고의 영화 감동 그 자체", 1),
        ("시간 낭비 최악의 영화", 0),
        ("배우들 연기가 정말 좋았다", 1),
        ("지루하고 뻔한 이야기", 0),
        ("또 보고 싶다", 1),
        ("돈이 아깝다", 0),
    ]
]


@pytest.fixture(scope="module")
def eval_rows(data_dir, korean_tokenizer):
    from kollm.data import sources

    def short(task, source):  # rows whose prompt fits the fixture model's 64 positions: nothing gets truncated
        rows = tasks.rows_from(task, source)
        return [r for r in rows if len(heads.prompt_ids(korean_tokenizer, task, r, 10_000)) < 58][:20]

    nli = short(tasks.KLUE_NLI, sources.iter_klue_nli(data_dir))
    sts = short(tasks.KLUE_STS, sources.iter_klue_sts(data_dir))
    hate = short(tasks.HATE, sources.iter_hate_labeled(data_dir, "dev"))
    return {"nsmc": NSMC_ROWS, "klue_nli": nli, "klue_sts": sts, "hate": hate}


def test_harness_scores_equal_kollm_scores(tiny_model_dir, korean_tokenizer, eval_rows, tmp_path):
    """lm-eval (YAMLs + chat template) and kollm's own label scorer pick the same answers."""
    import torch
    from transformers import AutoModelForCausalLM

    from kollm.data import metrics

    folder = harness.write_rows(eval_rows, str(tmp_path / "rows"))
    scores = harness.evaluate(tiny_model_dir, list(eval_rows), folder, batch_size=8, per_row=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    for name, rows in eval_rows.items():
        task = tasks.TASKS[name]
        assert len(rows) >= 5, name
        logp = heads.label_logprobs(model, korean_tokenizer, task, rows, max_len=64)
        pred = logp.argmax(-1).tolist()
        assert scores[name]["acc"] == pytest.approx(metrics.accuracy(pred, [r["label"] for r in rows])), name
        if name != "klue_sts":
            assert scores[name]["macro_f1"] == pytest.approx(
                metrics.macro_f1(pred, [r["label"] for r in rows], len(task.labels))
            )
    # P(예) of a 200-step model sits near 0.997 with a spread of ~1e-4, so the correlations move with float
    # noise: the contract is that lm-eval scores the same log-probabilities row by row, and aggregates them
    # as kollm's metrics do
    sts = eval_rows["klue_sts"]
    logp = heads.label_logprobs(model, korean_tokenizer, tasks.KLUE_STS, sts, max_len=64)
    harness_logp = scores["klue_sts"]["loglikelihoods"]
    assert torch.allclose(torch.tensor(harness_logp), logp, atol=1e-4)
    p_yes = [1 / (1 + math.exp(no - yes)) for no, yes in harness_logp]
    assert scores["klue_sts"]["pearson"] == pytest.approx(metrics.pearson(p_yes, [r["score"] for r in sts]), abs=1e-6)
    assert scores["klue_sts"]["spearman"] == pytest.approx(metrics.spearman(p_yes, [r["score"] for r in sts]), abs=1e-6)
    assert 0 <= scores["hate"]["toxic_f1"] <= 1


def test_lm_eval_cli_runs_the_shipped_tasks_with_an_adapter(tiny_model_dir, eval_rows, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    model.save_pretrained(tmp_path / "adapter")
    folder = harness.write_rows({"nsmc": NSMC_ROWS}, str(tmp_path / "rows"))
    limit = len(NSMC_ROWS) - 2  # the first rows only, on both paths
    via_kollm = harness.evaluate(tiny_model_dir, ["nsmc"], folder, adapter=str(tmp_path / "adapter"), limit=limit)
    cmd = harness.command(tiny_model_dir, ["nsmc"], folder, adapter=str(tmp_path / "adapter"), limit=limit)
    cmd = cmd.replace("lm_eval", os.path.join(os.path.dirname(sys.executable), "lm_eval"), 1)
    out = subprocess.run(
        cmd + f" --output_path {tmp_path / 'out'}",
        shell=True,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (result,) = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path / "out") for f in fs if f.startswith("results")]
    with open(result) as f:
        cli = json.load(f)
    assert cli["n-samples"]["kollm_nsmc"]["effective"] == limit
    assert cli["results"]["kollm_nsmc"]["acc,none"] == pytest.approx(via_kollm["nsmc"]["acc"])


def test_bad_model_folders_are_refused(tmp_path):
    with pytest.raises(KollmError, match="no such model folder"):
        harness.check_model_dir(str(tmp_path / "absent"))
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    with pytest.raises(KollmError, match="no weights"):
        harness.check_model_dir(str(tmp_path / "m"))
    with pytest.raises(KollmError, match="not a PEFT adapter"):
        harness.check_adapter_dir(str(tmp_path / "m"))
