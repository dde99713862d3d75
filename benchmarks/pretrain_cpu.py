"""CPU pretraining throughput: kollm's torch backend vs a plain HF `Trainer`, same model, same data.

    .venv/bin/python benchmarks/pretrain_cpu.py      # writes benchmarks/results/pretrain_cpu.json

Both train the tiny preset's Llama (bf16 autocast, fp32 weights, AdamW, grad clip 1.0,
batch 32 x 128 tokens) from the same initial weights on the same packed NSMC token stream
(random windows of 129 tokens), for the same number of steps, one after the other in this
process. Tokens/s is measured over the steps after a warm-up (the first 10 are excluded
from both). The Trainer gets what a user would write: `TrainingArguments(bf16=True,
use_cpu=True, ...)`, a Dataset of windows, no evaluation, no saving, HF's default (SDPA)
attention. kollm runs with its defaults: the LM head and loss fused in chunks
(`kollm.pretrain.losses`) and eager attention on CPUs.

Two more runs say where the difference comes from: the Trainer with eager attention, and
kollm's loop with the plain loss and SDPA (`pretrain.loss_chunk=0 pretrain.attention=sdpa`).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.pipeline_tiny import machine  # noqa: E402
from kollm import config  # noqa: E402
from kollm.data import sources  # noqa: E402
from kollm.models import build_model, flops_per_token, parameter_count  # noqa: E402
from kollm.pretrain import indexed_data
from kollm.pretrain import torch_backend as pretrain
from kollm.tokenization import train_bpe  # noqa: E402
from recipes import presets  # noqa: E402

STEPS, WARMUP_STEPS = 60, 10


class Windows(torch.utils.data.Dataset):
    """Random windows of the token stream, drawn up front with a fixed seed (HF side)."""

    def __init__(self, tokens: np.ndarray, count: int, seq_len: int, seed: int):
        gen = torch.Generator().manual_seed(seed)
        self.tokens, self.seq_len = tokens, seq_len
        self.starts = torch.randint(0, len(tokens) - seq_len - 1, (count,), generator=gen).tolist()

    def __len__(self):
        return len(self.starts)

    def __getitem__(self, i):
        ids = torch.from_numpy(self.tokens[self.starts[i] : self.starts[i] + self.seq_len].astype(np.int64))
        return {"input_ids": ids, "labels": ids}


def hf_trainer_tokens_per_s(model, tokens, cfg, work: str, attention: str = "sdpa") -> float:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    stamps = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    args = TrainingArguments(
        output_dir=work,
        per_device_train_batch_size=cfg.batch_size,
        max_steps=STEPS,
        learning_rate=cfg.lr,
        weight_decay=cfg.weight_decay,
        adam_beta2=0.95,
        warmup_steps=cfg.warmup_steps,
        lr_scheduler_type="cosine",
        max_grad_norm=cfg.grad_clip,
        bf16=cfg.precision == "bf16",
        use_cpu=True,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        logging_steps=STEPS,
        dataloader_num_workers=0,
        seed=cfg.seed,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Windows(tokens, STEPS * cfg.batch_size, cfg.seq_len, cfg.seed),
        callbacks=[Clock()],
    )
    model.set_attn_implementation(attention)
    trainer.train()
    return (STEPS - WARMUP_STEPS) * cfg.batch_size * cfg.seq_len / (stamps[-1] - stamps[WARMUP_STEPS - 1])


def kollm_tokens_per_s(model, tokens, cfg, work: str, fpt: float, **overrides) -> float:
    cfg = dataclasses.replace(
        cfg,
        log_every=WARMUP_STEPS,
        checkpoint_every=STEPS,  # one checkpoint, at the end,
        steps=STEPS,
        **overrides,
    )  # outside the window
    history = pretrain.train_loop(model, tokens, cfg, work, fpt)["history"]
    # log windows after the first WARMUP_STEPS steps; the last one includes the final checkpoint: excluded
    steady = [h["tokens_per_s"] for h in history if WARMUP_STEPS < h["step"] < STEPS]
    return float(np.mean(steady))


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    torch.set_num_threads(os.cpu_count())
    cfg = presets.llama_5m_cpu_demo()
    data_dir = sources.resolve_data_dir()
    reviews = [r["text"] for r in sources.iter_nsmc(data_dir, limit=100_000)]
    work = tempfile.mkdtemp(prefix="kollm-bench-pretrain-")
    tokenizer = train_bpe(reviews[:50_000], vocab_size=cfg.tokenizer.vocab_size)
    tokenizer.save_pretrained(os.path.join(work, "tok"))
    with open(os.path.join(work, "corpus.jsonl"), "w") as f:
        for text in reviews:
            f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    indexed_data.build_indexed_dataset(
        os.path.join(work, "corpus.jsonl"), os.path.join(work, "tok"), os.path.join(work, "data")
    )
    tokens = indexed_data.load_tokens(os.path.join(work, "data"))

    def model():  # the same initial weights for every run
        return build_model(cfg.model, tokenizer, seed=cfg.pretrain.seed)

    fpt = flops_per_token(cfg.model, len(tokenizer), cfg.pretrain.seq_len)
    hf_tps = hf_trainer_tokens_per_s(model(), tokens, cfg.pretrain, os.path.join(work, "hf"))
    kollm_tps = kollm_tokens_per_s(model(), tokens, cfg.pretrain, os.path.join(work, "kollm"), fpt)
    hf_eager_tps = hf_trainer_tokens_per_s(model(), tokens, cfg.pretrain, os.path.join(work, "hf_eager"), "eager")
    plain_tps = kollm_tokens_per_s(
        model(), tokens, cfg.pretrain, os.path.join(work, "kollm_plain"), fpt, loss_chunk=0, attention="sdpa"
    )
    import transformers

    result = {
        "name": "pretrain_cpu",
        "kollm_tokens_per_s": round(kollm_tps, 1),
        "hf_trainer_tokens_per_s": round(hf_tps, 1),
        "ratio": round(kollm_tps / hf_tps, 3),
        "goal_ratio": 1.3,
        "kollm_settings": {
            "loss_chunk": cfg.pretrain.loss_chunk,
            "attention": pretrain.attention_kernel(cfg.pretrain.attention, torch.device("cpu")),
        },
        "ablation_tokens_per_s": {
            "hf_trainer_eager_attention": round(hf_eager_tps, 1),
            "kollm_plain_loss_sdpa": round(plain_tps, 1),
        },
        "model": {
            "preset": "tiny",
            "parameters": parameter_count(cfg.model, len(tokenizer)),
            "flops_per_token": fpt,
            **config.to_dict(cfg)["model"],
        },
        "training": {
            "batch_size": cfg.pretrain.batch_size,
            "seq_len": cfg.pretrain.seq_len,
            "precision": cfg.pretrain.precision,
            "steps": STEPS,
            "excluded_warmup_steps": WARMUP_STEPS,
            "threads": torch.get_num_threads(),
        },
        "data": f"{len(reviews):,} NSMC reviews, {len(tokens):,} tokens (BPE {len(tokenizer)} trained on 50k)",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "command": ".venv/bin/python benchmarks/pretrain_cpu.py",
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
    }
    out = os.path.join(HERE, "results", "pretrain_cpu.json")
    with open(out, "w") as f:
        json.dump(result, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(json.dumps({k: result[k] for k in ("kollm_tokens_per_s", "hf_trainer_tokens_per_s", "ratio")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
