import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from kollm.config import ModelConfig, PretrainConfig
from kollm.core.io import line_ranges
from kollm.models import build_model, flops_per_token, parameter_count
from kollm.pretrain import frame as training
from kollm.pretrain import indexed_data
from kollm.pretrain import torch_backend as pretrain
from tests.conftest import write_corpus

SMALL = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64, max_seq_len=64)


@pytest.fixture(scope="module")
def tokenizer_dir(korean_tokenizer, tmp_path_factory):
    path = tmp_path_factory.mktemp("tok")
    korean_tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def packed(tokenizer_dir, nsmc_rows, tmp_path_factory):
    """3,000 real reviews tokenised in 3 ranges by 2 workers into data.bin/.idx."""
    folder = tmp_path_factory.mktemp("packed")
    corpus = folder / "corpus.jsonl"
    write_corpus(nsmc_rows[:3000], corpus)
    summary = indexed_data.build_indexed_dataset(
        str(corpus), tokenizer_dir, str(folder / "data"), workers=2, lines_per_range=1000, progress=False
    )
    return str(folder / "data"), summary, str(corpus)


def test_indexed_data_is_one_document_per_review_ending_in_eod(packed, korean_tokenizer, nsmc_rows):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    prefix, summary, _ = packed
    tokens = indexed_data.load_tokens(prefix)
    assert len(tokens) == summary["tokens"] and tokens.dtype == np.uint16 and summary["documents"] == 3000
    assert int((tokens == korean_tokenizer.eos_token_id).sum()) == 3000
    dataset = IndexedDataset(prefix)  # megatron-core's reader of the .bin/.idx pair
    assert len(dataset) == 3000
    for i in (0, 1234, 2999):  # in corpus order across the 3 ranges, each ending in EOD
        doc = dataset[i].tolist()
        assert doc[-1] == korean_tokenizer.eos_token_id
        assert korean_tokenizer.decode(doc[:-1]) == korean_tokenizer.decode(
            korean_tokenizer(nsmc_rows[i]["text"], add_special_tokens=False)["input_ids"]
        )


def test_tokenisation_resumes_from_finished_ranges(packed, tokenizer_dir, tmp_path):
    prefix, summary, corpus = packed
    # a killed run left range 0 finished and nothing else: only ranges 1 and 2 are redone
    parts = tmp_path / "data.parts"
    parts.mkdir()
    job = {
        "corpus": corpus,
        "tokenizer_dir": tokenizer_dir,
        "start": 0,
        "first_line": 1,
        "rating_in_text": False,
        "batch": 1000,
        "part": str(parts / "00000"),
    }
    job["end"] = line_ranges(corpus, 1000)[0][1]
    indexed_data._tokenize_range(job)
    stamp = os.path.getmtime(parts / "00000.bin")
    calls = []
    real = indexed_data._tokenize_range
    indexed_data._tokenize_range = lambda j: calls.append(j["part"]) or real(j)
    try:
        again = indexed_data.build_indexed_dataset(
            corpus, tokenizer_dir, str(tmp_path / "data"), workers=1, lines_per_range=1000, progress=False
        )
    finally:
        indexed_data._tokenize_range = real
    assert [os.path.basename(c) for c in calls] == ["00001", "00002"] and stamp
    assert again["tokens"] == summary["tokens"]
    assert open(tmp_path / "data.bin", "rb").read() == open(prefix + ".bin", "rb").read()
    assert not parts.exists()  # merged and cleaned up


def _cfg(**kw):
    base = dict(
        steps=30, batch_size=8, seq_len=32, lr=5e-3, warmup_steps=5, checkpoint_every=10, log_every=5, threads=1
    )
    base.update(kw)
    return PretrainConfig(**base)


def test_loss_decreases_and_checkpoints_are_safetensors(packed, korean_tokenizer, tmp_path):
    tokens = indexed_data.load_tokens(packed[0])
    model = build_model(SMALL, korean_tokenizer, seed=0)
    handlers = [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)]
    result = pretrain.train_loop(
        model, tokens, _cfg(), str(tmp_path), flops_per_token(SMALL, len(korean_tokenizer), 32)
    )
    # training in-process gives the stop handlers back: a process that forks workers later (curation's
    # pool) must not leave them deaf to SIGTERM (that hung the test suite once)
    assert [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)] == handlers
    losses = [h["loss"] for h in result["history"]]
    assert losses[-1] < losses[0] - 0.5
    assert all(h["tokens_per_s"] > 0 for h in result["history"])
    ckpts = sorted(os.listdir(tmp_path / "checkpoints"))
    assert ckpts == ["step_0000010", "step_0000020", "step_0000030"]
    assert os.path.exists(tmp_path / "checkpoints" / "step_0000030" / "model.safetensors")
    # MFU against the measured peak of this CPU, memory, and the same scalars in TensorBoard
    assert result["peak_flops"] > 1e9 and "measured" in result["peak_flops_source"]
    assert all(0 < h["mfu"] < 1 and h["peak_mem_mb"] > 100 for h in result["history"])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(tmp_path / "tensorboard"))
    board.Reload()
    assert [e.step for e in board.Scalars("train/loss")] == [h["step"] for h in result["history"]]
    assert np.allclose([e.value for e in board.Scalars("train/mfu")], [h["mfu"] for h in result["history"]])


def test_fused_loss_and_eager_attention_train_like_the_plain_hf_path(packed, korean_tokenizer, tmp_path):
    """The CPU defaults (chunked LM head + loss, eager attention) are a speed-up, not another model:
    fp32, same init and data, the loss curve of HF's logits + F.cross_entropy with SDPA, to 1e-4."""
    tokens = indexed_data.load_tokens(packed[0])

    def curve(run, **kw):
        model = build_model(SMALL, korean_tokenizer, seed=0)
        cfg = _cfg(steps=12, precision="fp32", checkpoint_every=12, log_every=1, **kw)
        return [h["loss"] for h in pretrain.train_loop(model, tokens, cfg, str(tmp_path / run), 1.0)["history"]]

    plain = curve("plain", loss_chunk=0, attention="sdpa")
    fused = curve("fused", loss_chunk=50)  # 50 does not divide the 8 x 32 tokens of a batch
    # ...and they are what a CPU run gets by default
    assert (
        PretrainConfig().loss_chunk > 0
        and pretrain.attention_kernel(PretrainConfig().attention, torch.device("cpu")) == "eager"
    )
    assert pretrain.attention_kernel("auto", torch.device("cuda")) == "sdpa"
    assert len(plain) == 12 and np.allclose(plain, fused, atol=1e-4), (plain, fused)
    assert plain[-1] < plain[0] - 0.3


def test_the_scratch_gpt_trains_like_hfs_llama_and_exports_as_it(packed, korean_tokenizer, tmp_path):
    """model.impl=scratch: the torch loop trains course/scratch/llama.py; from HF's initial weights it follows HF's
    loss curve (fp32, 1e-4), and its checkpoint becomes the HF Llama every later stage loads."""
    from dataclasses import replace

    from course.scratch import llama

    tokens = indexed_data.load_tokens(packed[0])
    scratch_cfg = replace(SMALL, impl="scratch")

    def train(run, model):
        cfg = _cfg(steps=12, precision="fp32", checkpoint_every=12, log_every=1, attention="sdpa")
        return pretrain.train_loop(model, tokens, cfg, str(tmp_path / run), 1.0)

    hf = train("hf", build_model(SMALL, korean_tokenizer, seed=0))
    scratch_model = build_model(scratch_cfg, korean_tokenizer, seed=0)
    assert isinstance(scratch_model, llama.GPT)
    scratch_model.load_state_dict(build_model(SMALL, korean_tokenizer, seed=0).state_dict())  # the same start
    scratch = train("scratch", scratch_model)
    curves = [[h["loss"] for h in r["history"]] for r in (hf, scratch)]
    assert len(curves[0]) == 12 and np.allclose(*curves, atol=1e-4), curves
    exported, _ = pretrain.to_hf(scratch["checkpoint"], scratch_cfg, korean_tokenizer)
    assert type(exported).__name__ == "LlamaForCausalLM"
    ids = torch.arange(40).view(1, 40)
    with torch.no_grad():
        assert (exported.eval()(input_ids=ids).logits - scratch_model.eval()(ids).logits).abs().max() < 1e-4


def test_micro_batches_accumulate_to_the_whole_batch(packed, korean_tokenizer, tmp_path):
    """pretrain.micro_batch_size: a GPU-sized global batch in pieces that fit; same curve as all at once."""
    tokens = indexed_data.load_tokens(packed[0])

    def curve(run, micro):
        model = build_model(SMALL, korean_tokenizer, seed=0)
        cfg = _cfg(steps=8, precision="fp32", checkpoint_every=8, log_every=1, micro_batch_size=micro)
        return [h["loss"] for h in pretrain.train_loop(model, tokens, cfg, str(tmp_path / run), 1.0)["history"]]

    whole, pieces = curve("whole", 0), curve("pieces", 2)  # batch 8: 4 micro-batches of 2 rows
    # the history rounds losses to 4 decimals: two sums 1e-6 apart can print 1e-4 apart (8.0123 vs 8.0122)
    assert len(whole) == 8 and np.allclose(whole, pieces, atol=1.5e-4), (whole, pieces)
    # a micro-batch size that does not divide the batch (kollm.config.validate refuses it for a pipeline; a script
    # calling the loop may pass one): 3 + 3 + 2 rows, no row dropped, the same curve
    assert np.allclose(whole, curve("uneven", 3), atol=1.5e-4)


def test_gpu_peak_flops_come_from_the_datasheet(monkeypatch):
    from kollm.pretrain import mfu

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H100 80GB HBM3")
    assert mfu.peak_flops("bf16", "cuda") == (989.4e12, "NVIDIA H100 80GB HBM3: datasheet dense bf16")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA GeForce GTX 1080")
    with pytest.raises(ValueError, match="GPU_PEAK_TFLOPS"):
        mfu.peak_flops("bf16", "cuda")


def test_torn_and_truncated_checkpoints_are_skipped_with_a_warning(tmp_path):
    def checkpoint(step, payload=b"x" * 100):
        tmp = tmp_path / f"step_{step:07d}.tmp"
        tmp.mkdir()
        (tmp / "model.safetensors").write_bytes(payload)
        return training.commit_checkpoint(str(tmp), str(tmp_path / f"step_{step:07d}"), {"step": step})

    checkpoint(10)
    checkpoint(20)
    (tmp_path / "step_0000030.tmp").mkdir()  # killed while writing: never renamed
    (tmp_path / "step_0000040").mkdir()  # no trainer_state: incomplete
    last = checkpoint(50)
    with open(os.path.join(last, "model.safetensors"), "r+b") as f:
        f.truncate(60)  # e.g. a partial copy or a full disk after the fact
    warnings = []
    assert training.latest_checkpoint(str(tmp_path), warn=warnings.append).endswith("step_0000020")
    assert warnings == [
        f"warning: skipping checkpoint {tmp_path}/step_0000050: model.safetensors is truncated (60 of 100 bytes)",
        f"warning: skipping checkpoint {tmp_path}/step_0000040: no trainer_state.json (killed while writing?)",
    ]


TRAIN_SCRIPT = """
import sys, torch
from transformers import AutoTokenizer
from kollm.pretrain import indexed_data
from kollm.pretrain import torch_backend as pretrain
from kollm.config import ModelConfig, PretrainConfig
from kollm.models import build_model
tok = AutoTokenizer.from_pretrained(sys.argv[1])
small = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64, max_seq_len=64)
cfg = PretrainConfig(steps=40, batch_size=8, seq_len=32, lr=5e-3, warmup_steps=5, checkpoint_every=10, log_every=1, threads=1)
model = build_model(small, tok, seed=0)
pretrain.train_loop(model, indexed_data.load_tokens(sys.argv[2]), cfg, sys.argv[3], 1.0)
"""


def test_sigkilled_run_resumes_to_the_same_loss_curve(packed, korean_tokenizer, tmp_path):
    tok_dir = tmp_path / "tok"
    korean_tokenizer.save_pretrained(tok_dir)
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    args = [sys.executable, str(script), str(tok_dir), packed[0]]
    subprocess.run(args + [str(tmp_path / "clean")], check=True, capture_output=True, timeout=300)

    proc = subprocess.Popen(args + [str(tmp_path / "killed")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "killed" / "checkpoints" / "step_0000010" / "trainer_state.json"
    deadline = time.time() + 240
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists() and proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "checkpoints" / "step_0000040").exists()  # really cut short
    subprocess.run(args + [str(tmp_path / "killed")], check=True, capture_output=True, timeout=300)

    def curve(run):
        return [json.loads(line) for line in open(tmp_path / run / "metrics.jsonl")]

    clean, resumed = curve("clean"), curve("killed")
    assert [h["step"] for h in resumed] == list(range(1, 41))  # no gaps, no duplicated steps
    # fixed seed, one thread: the resumed curve matches the uninterrupted one (tolerance 1e-4)
    assert np.allclose([h["loss"] for h in clean], [h["loss"] for h in resumed], atol=1e-4)


def test_ratings_go_into_the_token_stream_only_when_asked(korean_tokenizer, tokenizer_dir, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        json.dumps({"id": "nsmc:1", "text": "정말 재밌어요", "rating": 10}, ensure_ascii=False)
        + "\n"
        + json.dumps({"id": "comments:0", "text": "좋은 영화입니다"}, ensure_ascii=False)
        + "\n"
    )
    for name, ratings in (("with", True), ("without", False)):
        indexed_data.build_indexed_dataset(
            str(corpus), tokenizer_dir, str(tmp_path / name), workers=1, rating_in_text=ratings, progress=False
        )
    text = korean_tokenizer.decode(indexed_data.load_tokens(str(tmp_path / "with")).tolist())
    assert text == "정말 재밌어요 평점: 10</s> 좋은 영화입니다</s>"
    plain = korean_tokenizer.decode(indexed_data.load_tokens(str(tmp_path / "without")).tolist())
    assert plain == "정말 재밌어요</s> 좋은 영화입니다</s>"


def test_bad_corpus_line_is_named(tokenizer_dir, tmp_path):
    from kollm.core.errors import KollmError

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"text": "좋아요"}\n{"txt": "오타"}\n')
    with pytest.raises(KollmError, match=r"corpus.jsonl:2: not a JSON object with a 'text' field"):
        indexed_data.build_indexed_dataset(
            str(corpus), tokenizer_dir, str(tmp_path / "data"), workers=1, progress=False
        )


DDP_SCRIPT = """
import json, sys, torch
from transformers import AutoTokenizer
from kollm.pretrain import indexed_data
from kollm.pretrain import torch_backend as pretrain
from kollm.config import ModelConfig, PretrainConfig
from kollm.models import build_model
tok = AutoTokenizer.from_pretrained(sys.argv[1])
small = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64, max_seq_len=64)
cfg = PretrainConfig(steps=12, batch_size=8, seq_len=32, lr=5e-3, warmup_steps=2, checkpoint_every=6, log_every=1,
                     threads=1, precision="fp32", strategy=sys.argv[4], micro_batch_size=int(sys.argv[5]))
model = build_model(small, tok, seed=0)
result = pretrain.train_loop(model, indexed_data.load_tokens(sys.argv[2]), cfg, sys.argv[3], 1.0)
"""


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_gloo_ranks_train_like_one_process(packed, tokenizer_dir, tmp_path, strategy):
    """torchrun, 2 CPU ranks: each takes half of the same global batch, in 2 micro-batches of 2 rows
    (gradients synchronised once a step), so the loss curve is the single-process, whole-batch one
    (fp32; tolerance 2e-3 for the different reduction order)."""
    script = tmp_path / "train.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, str(script), tokenizer_dir, packed[0], str(tmp_path / "one"), strategy, "0"],
        check=True,
        capture_output=True,
        timeout=300,
        env=env,
    )
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    proc = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc-per-node",
            "2",
            str(script),
            tokenizer_dir,
            packed[0],
            str(tmp_path / "two"),
            strategy,
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    def curve(run):
        return [json.loads(line)["loss"] for line in open(tmp_path / run / "metrics.jsonl")]

    one, two = curve("one"), curve("two")
    assert len(two) == 12 and np.allclose(one, two, atol=2e-3), (one, two)
    # rank 0 wrote one full checkpoint the single-process loader reads
    model = build_model(SMALL, __import__("transformers").AutoTokenizer.from_pretrained(tokenizer_dir))
    pretrain.load_weights(model, str(tmp_path / "two" / "checkpoints" / "step_0000012" / "model.safetensors"))


def test_cli_pretrain_on_two_torchrun_ranks_through_nemo_run(packed, tokenizer_dir, tmp_path):
    """`kollm run pretrain pretrain.nproc_per_node=2`: NeMo Run's local executor launches torchrun."""
    from tests.conftest import run_cli

    proc = run_cli(
        [
            "run",
            "pretrain",
            "preset=ci",
            f"run.root={tmp_path}",
            f"pretrain.corpus={packed[2]}",
            f"pretrain.tokenizer_dir={tokenizer_dir}",
            "pretrain.nproc_per_node=2",
            "pretrain.steps=10",
            "pretrain.checkpoint_every=5",
            "pretrain.threads=1",
        ]
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    manifest = json.load(open(tmp_path / "ci" / "pretrain" / "manifest.json"))
    assert manifest["counts"]["world_size"] == 2 and manifest["counts"]["steps"] == 10
    assert manifest["counts"]["vocab_size"] == len(
        __import__("transformers").AutoTokenizer.from_pretrained(tokenizer_dir)
    )
    assert os.path.exists(manifest["outputs"]["model_dir"] + "/model.safetensors")


def test_gpu_benchmark_plumbing_on_cpu(tmp_path, data_dir):  # data_dir: skipped without data (prepare reads it)
    """benchmarks/pretrain_gpu.py, everything but the GPU: prepare the data, run the torch backend under
    torchrun with the benchmark's settings (no checkpoints), and write the result fields the README and
    the issue ask for. Without a GPU and without --allow-cpu it refuses in one line."""
    script = os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks", "pretrain_gpu.py")
    data, out = tmp_path / "data", tmp_path / "gpu.json"
    subprocess.run(
        [sys.executable, script, "prepare", str(data), "--reviews", "3000"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    refused = subprocess.run([sys.executable, script, "run", str(data)], capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and refused.stderr.strip().startswith("error: no CUDA GPU")
    proc = subprocess.run(
        [
            sys.executable,
            script,
            "run",
            str(data),
            "pretrain.micro_batch_size=2",
            "--allow-cpu",
            "--preset",
            "ci",
            "--backends",
            "torch",
            "--steps",
            "15",
            "--rows-per-gpu",
            "4",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    torch_run = result["backends"]["torch"]
    assert torch_run["steps"] == 15 and torch_run["steady_windows"] == 1  # logs at 5, 10, 15; 2 warm-up windows
    assert 0 < result["mfu"] == torch_run["mfu"] < 1 and result["tokens_per_s_per_gpu"] > 0
    assert result["device"] == "cpu" and result["micro_batch_size"] == 2 and result["global_batch_rows"] == 4
    assert all(result[k] for k in ("command", "machine", "date")) and "pretrain.micro_batch_size=2" in result["command"]
    assert not list(tmp_path.glob("**/checkpoints/step_*"))


@pytest.mark.parametrize("preset", ["tiny", "ci", "8b"])
def test_parameters_and_flops_are_counted_from_the_config(preset, korean_tokenizer):
    """The pretrain stage counts without building the model (8b: ~30 GB of host memory per rank):
    the count equals the built model's, on a real build for the CPU presets and a meta-device one for 8b."""
    from recipes import presets

    cfg = presets.from_preset(preset)
    vocab = len(korean_tokenizer)
    with torch.device("meta") if preset == "8b" else contextlib.nullcontext():
        model = build_model(cfg.model, korean_tokenizer)
    assert parameter_count(cfg.model, vocab) == sum(p.numel() for p in model.parameters())
    c = model.config
    assert flops_per_token(cfg.model, vocab, 128) == (
        6 * parameter_count(cfg.model, vocab) + 12 * c.num_hidden_layers * c.hidden_size * 128
    )


def test_sigusr1_stops_the_stage_with_the_requeue_status_and_a_rerun_resumes(packed, tokenizer_dir, tmp_path):
    """The torch backend through the stage (`kollm stage pretrain`): SIGUSR1 mid-run -> a checkpoint at that
    step, one `error:` line, exit status 75 (kollm.core.errors.StoppedEarly; non-zero so a Slurm job requeues);
    the same command again resumes there and finishes, with the uninterrupted run's loss curve."""
    from kollm.core.errors import StoppedEarly

    args = [
        sys.executable,
        "-m",
        "recipes.cli",
        "stage",
        "pretrain",
        "preset=ci",
        f"pretrain.corpus={packed[2]}",
        f"pretrain.tokenizer_dir={tokenizer_dir}",
        "pretrain.steps=120",
        "pretrain.checkpoint_every=1000",
        "pretrain.log_every=1",
        "pretrain.threads=1",
        "pretrain.precision=fp32",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(args + [f"run.root={tmp_path / 'clean'}"], check=True, capture_output=True, timeout=300, env=env)
    root = tmp_path / "signalled"
    proc = subprocess.Popen(
        args + [f"run.root={root}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    metrics = root / "ci" / "pretrain" / "metrics.jsonl"
    deadline = time.time() + 240
    while (
        time.time() < deadline
        and proc.poll() is None
        and (not metrics.exists() or len(metrics.read_text().splitlines()) < 20)
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR1)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == StoppedEarly.exit_code == 75, stderr[-2000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "rerun the same command to resume" in errors[0] and "Traceback" not in stderr
    [checkpoint] = os.listdir(root / "ci" / "pretrain" / "checkpoints")
    stopped_at = int(checkpoint.split("_")[1])
    assert 20 <= stopped_at < 120 and not (root / "ci" / "pretrain" / "manifest.json").exists()
    again = subprocess.run(args + [f"run.root={root}"], capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    manifest = json.load(open(root / "ci" / "pretrain" / "manifest.json"))
    assert manifest["resumed_from"].endswith(checkpoint) and manifest["counts"]["steps"] == 120

    def curve(run):
        return [json.loads(line) for line in open(tmp_path / run / "ci" / "pretrain" / "metrics.jsonl")]

    clean, resumed = curve("clean"), curve("signalled")
    assert [h["step"] for h in resumed] == list(range(1, 121))
    assert np.allclose([h["loss"] for h in clean], [h["loss"] for h in resumed], atol=1e-4)


def test_tokenising_in_forked_workers_after_the_parent_used_the_rust_thread_pool_does_not_hang(
    tokenizer_dir, packed, tmp_path
):
    """Seen in benchmarks/tokenizer_study.py: a process that batch-encoded under TOKENIZERS_PARALLELISM=true,
    then tokenised the corpus with 2 forked workers, hung forever (the children's copy of the pool has no
    threads). The workers now encode serially."""
    script = f"""
import os
os.environ["TOKENIZERS_PARALLELISM"] = "true"
from transformers import AutoTokenizer
from kollm.pretrain import indexed_data
texts = [line for line in open({packed[2]!r})][:3000]
AutoTokenizer.from_pretrained({tokenizer_dir!r})(texts)  # the Rust pool is used in the parent
print(indexed_data.build_indexed_dataset({packed[2]!r}, {tokenizer_dir!r}, {str(tmp_path / "data")!r}, workers=2,
                                         lines_per_range=1000, progress=False)["documents"])
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-1] == "3000"


def test_train_on_is_the_pretraining_loop_on_your_batches(packed, korean_tokenizer, tmp_path):
    """kollm.pretrain.train_on, the loop the from-scratch code checks its own against: given the batches the
    pretraining loop draws, it gives the pretraining loop's losses; batches that run out are one error."""
    from kollm.pretrain import train_on

    tokens = indexed_data.load_tokens(packed[0])
    cfg = _cfg(steps=6, precision="fp32", checkpoint_every=6, log_every=1)
    model = build_model(SMALL, korean_tokenizer, seed=0)
    looped = [h["loss"] for h in pretrain.train_loop(model, tokens, cfg, str(tmp_path), 1.0)["history"]]
    gen = torch.Generator().manual_seed(cfg.seed)
    batches = [pretrain.get_batch(tokens, cfg.batch_size, cfg.seq_len, gen) for _ in range(6)]
    losses = train_on(build_model(SMALL, korean_tokenizer, seed=0), iter(batches), 6, cfg)
    assert len(losses) == 6 and np.allclose(losses, looped, atol=1e-4) and losses[-1] < losses[0], (losses, looped)
    with pytest.raises(ValueError, match="ran out after 2 of 3 steps"):
        train_on(build_model(SMALL, korean_tokenizer, seed=0), iter(batches[:2]), 3, cfg)
