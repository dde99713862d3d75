"""The megatron backend on CPU: a tiny GPTModel on 2 gloo ranks (tests/megatron_cpu_shim.py maps
megatron-core's CUDA calls to the CPU), over the indexed data, with distributed checkpoints,
resume, and conversion to a HF model whose logits match."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from kollm.config import ModelConfig, PretrainConfig
from kollm.pretrain import indexed_data
from kollm.pretrain.megatron import convert
from kollm.pretrain.megatron import gpt_model as mmodel
from recipes import executors
from tests.conftest import REPO

TINY = ModelConfig(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128, max_seq_len=64)


@pytest.fixture(scope="module")
def indexed(korean_tokenizer, nsmc_rows, tmp_path_factory):
    folder = tmp_path_factory.mktemp("megatron_data")
    korean_tokenizer.save_pretrained(folder / "tok")
    with open(folder / "corpus.jsonl", "w") as f:
        for r in nsmc_rows[:3000]:
            f.write(json.dumps({"text": r["text"]}, ensure_ascii=False) + "\n")
    indexed_data.build_indexed_dataset(
        str(folder / "corpus.jsonl"), str(folder / "tok"), str(folder / "train"), workers=1, progress=False
    )
    return folder


def run_megatron(indexed, out, nproc=2, signal_after_rows=0, **pretrain):
    """torchrun tests/megatron_cpu_run.py; with signal_after_rows, SIGUSR1 to torchrun once the metrics log
    has that many rows (torchrun passes it on to the ranks, as kollm's executors configure it)."""
    base = dict(
        steps=6,
        batch_size=8,
        seq_len=32,
        lr=1e-2,
        warmup_steps=1,
        checkpoint_every=3,
        log_every=1,
        threads=1,
        precision="fp32",
        seed=7,
    )
    base.update(pretrain)
    job = {
        "model": TINY.__dict__,
        "pretrain": PretrainConfig(**base).__dict__,
        "prefixes": {"train": str(indexed / "train")},
        "tokenizer_dir": str(indexed / "tok"),
        "out_dir": str(out),
        "hf_dir": str(out / "hf"),
        "result": str(out / "result.json"),
    }
    out.mkdir(exist_ok=True)
    (out / "job.json").write_text(json.dumps(job))
    (out / "result.json").unlink(missing_ok=True)
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    proc = subprocess.Popen(
        [
            torchrun,
            "--standalone",
            "--nproc-per-node",
            str(nproc),
            os.path.join(REPO, "tests", "megatron_cpu_run.py"),
            str(out / "job.json"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1", **executors.TORCHRUN_ENV},
    )
    if signal_after_rows:
        metrics, deadline = out / "metrics.jsonl", time.time() + 300
        while (
            time.time() < deadline
            and proc.poll() is None
            and (not metrics.exists() or len(metrics.read_text().splitlines()) < signal_after_rows)
        ):
            time.sleep(0.05)
        proc.send_signal(signal.SIGUSR1)
    stdout, stderr = proc.communicate(timeout=600)
    if not signal_after_rows:  # a signalled torchrun reports the signal; its ranks' result is what counts
        assert proc.returncode == 0, stdout[-3000:] + stderr[-6000:]
    assert (out / "result.json").exists(), stdout[-3000:] + stderr[-6000:]
    return json.load(open(out / "result.json")), stdout


@pytest.mark.parametrize(
    "parallel",
    [
        {"tensor_parallel": 2},
        {"pipeline_parallel": 2, "micro_batch_size": 2},  # 1F1B, 4 micro-batches
        # the 1b preset's optimizer: state sharded over 2 data-parallel ranks
        {"distributed_optimizer": True, "precision": "bf16"},
    ],
    ids=["tp2", "pp2", "dp2_distributed_optimizer_bf16"],
)
def test_model_parallel_training_checkpoints_and_hf_export(indexed, korean_tokenizer, tmp_path, parallel):
    from transformers import AutoModelForCausalLM

    result, _ = run_megatron(indexed, tmp_path / "tp2", **parallel)
    losses = [h["loss"] for h in result["history"]]
    assert 7.5 < losses[0] < 8.5  # ~ln(vocab) at the start: the per-token loss, whatever the micro-batching
    assert [h["step"] for h in result["history"]] == [1, 2, 3, 4, 5, 6]
    assert losses[-1] < losses[0] - 0.3, losses  # it learns
    # pretrain.grad_clip=1.0: Megatron's optimizer measures the gradient norm to clip it (it reports none without)
    assert all(h["grad_norm"] > 0 for h in result["history"])
    assert sorted(os.listdir(tmp_path / "tp2" / "checkpoints")) == ["step_0000003", "step_0000006"]
    # the TP=2 / PP=2 checkpoint, resharded to one process and converted, gives the same logits in HF
    assert result["export"]["max_abs_logit_diff"] < 1e-4
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "tp2" / "hf")
    assert hf.config.vocab_size == len(korean_tokenizer)  # the tokenizer's vocab, not a default
    ids = korean_tokenizer("정말 재밌게 봤어요", return_tensors="pt")["input_ids"]
    assert torch.isfinite(hf(input_ids=ids).logits).all()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])  # bf16: the fp32 main parameters are restored too
def test_resume_from_a_distributed_checkpoint_continues_the_same_curve(indexed, tmp_path, precision):
    first, _ = run_megatron(indexed, tmp_path / "full", tensor_parallel=2, precision=precision)
    # a run killed after step 3: its step-3 checkpoint survives, step 6 never happened
    shutil.copytree(
        tmp_path / "full" / "checkpoints" / "step_0000003", tmp_path / "killed" / "checkpoints" / "step_0000003"
    )
    resumed, stdout = run_megatron(indexed, tmp_path / "killed", tensor_parallel=2, precision=precision)
    assert resumed["resumed_from"].endswith("step_0000003") and "resumed from" in stdout
    assert [h["step"] for h in resumed["history"]] == [4, 5, 6]
    full = {h["step"]: h["loss"] for h in first["history"]}
    for h in resumed["history"]:  # fixed sample order, all state restored: same losses (tolerance 1e-4)
        assert abs(h["loss"] - full[h["step"]]) < 1e-4, (h, full)


def test_sigusr1_checkpoints_stops_and_the_resumed_run_continues_the_same_curve(indexed, tmp_path):
    """Slurm's `--signal=USR1@120` before the time limit, on the megatron backend (2 gloo ranks, TP=2):
    the ranks checkpoint at the step they are on and stop; the rerun resumes there and reproduces the
    uninterrupted loss curve."""
    steps = dict(steps=40, checkpoint_every=100, tensor_parallel=2)  # no periodic checkpoint: only the stop's
    full, _ = run_megatron(indexed, tmp_path / "full", **steps)
    stopped, stdout = run_megatron(indexed, tmp_path / "stopped", signal_after_rows=8, **steps)
    assert stopped["stopped_early"] and "stop requested (SIGTERM/SIGUSR1)" in stdout
    assert 8 <= stopped["steps"] < 40 and "export" not in stopped  # a stopped run exports nothing
    assert sorted(os.listdir(tmp_path / "stopped" / "checkpoints")) == [f"step_{stopped['steps']:07d}"]
    resumed, stdout = run_megatron(indexed, tmp_path / "stopped", **steps)
    assert not resumed["stopped_early"] and resumed["resumed_from"].endswith(f"step_{stopped['steps']:07d}")
    assert [h["step"] for h in resumed["history"]] == list(range(1, 41))  # the log continues, no repeats
    for a, b in zip(full["history"], resumed["history"]):  # fp32, all state restored (tolerance 1e-4)
        assert abs(a["loss"] - b["loss"]) < 1e-4, (a, b)
    assert resumed["export"]["max_abs_logit_diff"] < 1e-4


def test_distributed_optimizer_resumes_on_fewer_ranks(indexed, tmp_path):
    """The 1b preset shards Adam's state over data-parallel ranks; a job requeued on fewer nodes must
    still resume: a 2-rank checkpoint (DP=2) continues on 1 process (DP=1) with the same losses."""
    first, _ = run_megatron(indexed, tmp_path / "full", distributed_optimizer=True)
    shutil.copytree(
        tmp_path / "full" / "checkpoints" / "step_0000003", tmp_path / "fewer" / "checkpoints" / "step_0000003"
    )
    resumed, _ = run_megatron(indexed, tmp_path / "fewer", nproc=1, distributed_optimizer=True)
    assert resumed["world_size"] == 1 and [h["step"] for h in resumed["history"]] == [4, 5, 6]
    full = {h["step"]: h["loss"] for h in first["history"]}
    for h in resumed["history"]:  # fp32; only the gradient reduction order differs (tolerance 1e-3)
        assert abs(h["loss"] - full[h["step"]]) < 1e-3, (h, full)


def test_bf16_training_checkpoint_exports_to_an_fp32_hf_model(indexed, korean_tokenizer, tmp_path):
    """The GPU presets train in bf16: Megatron's mixed-precision optimizer (fp32 main parameters), a bf16
    distributed checkpoint, and its export through the fp32 one-process model. Run here on CPU through
    tests/megatron_cpu_run.py's bf16 switch (kollm itself turns bf16 on only on GPUs)."""
    from torch.distributed.checkpoint import FileSystemReader
    from transformers import AutoModelForCausalLM

    result, _ = run_megatron(indexed, tmp_path / "bf16", tensor_parallel=2, precision="bf16")
    losses = [h["loss"] for h in result["history"]]
    assert 7.5 < losses[0] < 8.5 and losses[-1] < losses[0] - 0.3, losses
    # the checkpoint's model weights are bf16 (the optimizer's main copies, fp32, are stored beside them)
    meta = FileSystemReader(str(tmp_path / "bf16" / "checkpoints" / "step_0000006")).read_metadata()
    weights = {
        key: m.properties.dtype
        for key, m in meta.state_dict_metadata.items()
        if hasattr(m, "properties") and not key.startswith("optimizer")
    }
    assert "embedding.word_embeddings.weight" in weights and set(weights.values()) == {torch.bfloat16}, weights
    # the HF model is fp32 and holds exactly those values; its logits are the megatron model's
    assert result["export"]["max_abs_logit_diff"] < 1e-4
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "bf16" / "hf")
    assert hf.config.vocab_size == len(korean_tokenizer)
    for name, w in hf.state_dict().items():
        assert w.dtype == torch.float32 and torch.equal(w, w.to(torch.bfloat16).float()), name


def test_weight_conversion_round_trips_and_matches_hf_layout():
    sd = {"embedding.word_embeddings.weight": torch.randn(256, 64), "decoder.final_layernorm.weight": torch.randn(64)}
    for i in range(2):
        m = f"decoder.layers.{i}."
        sd[m + "self_attention.linear_qkv.weight"] = torch.randn((4 + 2 * 2) * 16, 64)
        sd[m + "self_attention.linear_proj.weight"] = torch.randn(64, 64)
        sd[m + "mlp.linear_fc1.weight"] = torch.randn(256, 64)
        sd[m + "mlp.linear_fc2.weight"] = torch.randn(64, 128)
        sd[m + "input_layernorm.weight"] = torch.randn(64)
        sd[m + "pre_mlp_layernorm.weight"] = torch.randn(64)
    hf = convert.megatron_to_hf(sd, TINY, vocab_size=200)
    assert hf["model.embed_tokens.weight"].shape == (200, 64)
    # query group 1 = rows [48, 96) of linear_qkv: heads 2-3 of q, then k head 1, then v head 1
    qkv = sd["decoder.layers.0.self_attention.linear_qkv.weight"]
    assert torch.equal(hf["model.layers.0.self_attn.q_proj.weight"][32:64], qkv[64:96])
    assert torch.equal(hf["model.layers.0.self_attn.k_proj.weight"][16:32], qkv[96:112])
    assert torch.equal(hf["model.layers.0.self_attn.v_proj.weight"][16:32], qkv[112:128])
    back = convert.hf_to_megatron(hf, TINY, padded_vocab=256)
    for key, value in back.items():
        expected = sd[key][:200] if key.startswith("embedding") else sd[key]
        assert torch.equal(value[: expected.shape[0]], expected), key


def test_padded_vocab_comes_from_the_tokenizer():
    # the known Megatron-Bridge bug: a custom tokenizer's vocab replaced by the base model's
    assert mmodel.padded_vocab_size(3000, 1) == 3072
    assert mmodel.padded_vocab_size(3000, 4) == 3072
    assert mmodel.padded_vocab_size(32000, 8) == 32768
