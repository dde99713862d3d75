"""One fine-tuning run: a method and a head on one task, trained, measured, scored and saved.

`finetune_task` is what the finetune stage and benchmarks/finetune_methods.py both call; it returns
one row of the method table (trainable parameters, score, time, peak memory, adapter size).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from dataclasses import asdict

from tqdm import tqdm

from kollm.data import metrics
from kollm.data.tasks import Task
from kollm.finetune import heads, methods
from kollm.finetune.config import FinetuneConfig
from kollm.finetune.config import FinetuneHead as Head
from kollm.finetune.config import FinetuneMethod as Method
from kollm.pretrain.frame import autocast


def lr_for(method: Method, s: FinetuneConfig) -> float:
    """The learning rate `method` trains with: the finetune.* field its registration names."""
    return getattr(s, methods.METHODS[method].lr)


class PeakMemory:
    """Peak memory while the block runs: CUDA's allocator peak on a GPU, else the process's RSS
    (sampled every 20 ms; it includes the model and the Python process, not only training)."""

    def __enter__(self):
        import torch

        self.cuda = torch.cuda.is_available()
        self.peak = 0
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            return self
        import psutil

        proc, self._stop = psutil.Process(), threading.Event()

        def sample():
            while not self._stop.is_set():
                self.peak = max(self.peak, proc.memory_info().rss)
                self._stop.wait(0.02)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        import torch

        if self.cuda:
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()

    @property
    def mb(self) -> float:
        return round(self.peak / 2**20, 1)


def length_grouped_batches(examples: list, batch_size: int, rng: random.Random, window: int = 64) -> list[list]:
    """One epoch's batches: shuffled, then sorted by length inside windows of `window` batches, then the
    batches shuffled (transformers' `group_by_length`). Short Korean reviews padded to a batch's longest
    cost 2-3x the compute otherwise; every example is still seen exactly once per epoch."""
    order = list(examples)
    rng.shuffle(order)
    batches = []
    for w in range(0, len(order), batch_size * window):
        chunk = sorted(order[w : w + batch_size * window], key=lambda e: len(e[0]))
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def param_groups(model, lr: float, head_lr: float) -> list[dict]:
    """The trainable parameters as optimizer groups: a freshly initialised classification head (PEFT's
    `modules_to_save` copy) trains at no more than the adapters' rate `head_lr`, even when the method's own rate
    is far larger (IA3's vectors at 1e-1, prompt tuning's at 3e-2: a new linear head diverges there)."""
    new_head: list = []
    rest: list = []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (new_head if "modules_to_save" in name else rest).append(p)
    groups = [{"params": rest, "lr": lr}, {"params": new_head, "lr": min(lr, head_lr)}]
    return [g for g in groups if g["params"]]


def fit(model, examples: list, head: Head, pad_id: int, lr: float, s: FinetuneConfig, desc: str) -> dict:
    """AdamW with a 5 % linear warm-up, then linear decay, over `s.epochs` passes (more if that is under
    `s.min_steps`); returns the loss history."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(param_groups(model, lr, s.lr), weight_decay=0.0)
    per_epoch = (len(examples) + s.batch_size - 1) // s.batch_size
    epochs = max(s.epochs, -(-s.min_steps // max(1, per_epoch)))
    steps = epochs * per_epoch
    warmup = max(1, steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: min((i + 1) / warmup, max(0.0, (steps - i) / max(1, steps - warmup)))
    )
    rng, history, step = random.Random(s.seed), [], 0
    model.train()
    with tqdm(total=steps, desc=desc, unit="step", mininterval=2) as bar:
        for _ in range(epochs):
            for batch in length_grouped_batches(examples, s.batch_size, rng):
                ids, mask, labels = heads.collate(head, batch, pad_id)
                with autocast(s.precision):
                    loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                scheduler.step()
                step += 1
                history.append({"step": step, "loss": round(loss.item(), 4)})
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
    return {"history": history, "steps": step}


def score(head: Head, model, tokenizer, task: Task, rows: list[dict], max_len: int) -> dict:
    pred = heads.predict(head, model, tokenizer, task, rows, max_len)
    return metrics.classification(pred, [r["label"] for r in rows], len(task.labels))


def _size_mb(folder: str) -> float:
    return round(
        sum(
            os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if f.endswith((".safetensors", ".bin"))
        )
        / 2**20,
        3,
    )


def finetune_task(
    base_dir: str, task: Task, train_rows: list[dict], test_rows: list[dict], s: FinetuneConfig, out: str
) -> dict:
    """Train `s.method` with `s.head` on `train_rows`, score it on `test_rows`, save it under `out`.

    Saves `out/adapter` (HF-PEFT format; absent for full fine-tuning) and `out/model` (a plain
    transformers folder: the merged adapter or the fully fine-tuned model; absent for prompt tuning,
    which is evaluated as base + adapter). Returns the method-table row, also in `out/result.json`.
    """
    from transformers import AutoTokenizer

    head, method = s.head, s.method
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    os.makedirs(out, exist_ok=True)
    paths: dict[str, str | None] = {"adapter_dir": None, "model_dir": None}
    if s.backend == "automodel":
        from peft import PeftModel

        from kollm.finetune import automodel

        trained = automodel.train(base_dir, task, train_rows, s, out)
        paths["adapter_dir"] = os.path.abspath(trained["adapter_dir"])
        model = PeftModel.from_pretrained(
            methods.load_base(base_dir, head, len(task.labels), tokenizer.pad_token_id),
            paths["adapter_dir"],
            is_trainable=True,
        )
        trainable, total = methods.trainable_parameters(model)
        train_s, peak_mb = trained["train_s"], trained["peak_mem_mb"]
    else:
        from_instruction = methods.METHODS[method].init_from_instruction
        init_text = task.instruction.split("{")[0].strip() if from_instruction else ""
        model = methods.load(base_dir, head, method, len(task.labels), s, tokenizer.pad_token_id, init_text)
        trainable, total = methods.trainable_parameters(model)
        examples = heads.examples(head, tokenizer, task, train_rows, s.max_len)
        t0 = time.perf_counter()
        with PeakMemory() as mem:
            trained = fit(
                model,
                examples,
                head,
                tokenizer.pad_token_id,
                lr_for(method, s),
                s,
                desc=f"finetune {task.name} ({method}, {head} head)",
            )
        train_s, peak_mb = time.perf_counter() - t0, mem.mb
        if methods.METHODS[method].adapter:
            paths["adapter_dir"] = os.path.abspath(os.path.join(out, "adapter"))
            model.save_pretrained(paths["adapter_dir"])
    result = score(head, model, tokenizer, task, test_rows, s.max_len)
    plain = merged_for_export(
        model, method, base_dir, head, len(task.labels), tokenizer.pad_token_id, paths["adapter_dir"]
    )
    if plain is not None:
        paths["model_dir"] = os.path.abspath(os.path.join(out, "model"))
        plain.save_pretrained(paths["model_dir"], safe_serialization=True)
        tokenizer.save_pretrained(paths["model_dir"])
    with open(os.path.join(out, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(h) + "\n" for h in trained["history"])
    losses = [h["loss"] for h in trained["history"]]
    k = max(1, len(losses) // 10)
    row = {
        "task": task.name,
        "method": method,
        "head": head,
        "backend": "nemo-automodel" if s.backend == "automodel" else "hf-peft",
        "trainable_params": trainable,
        "total_params": total,
        "trainable_pct": round(100 * trainable / total, 4),
        **{k_: round(v, 4) for k_, v in result.items() if k_ != "examples"},
        "test_examples": result["examples"],
        "train_examples": len(train_rows),
        "steps": len(trained["history"]),
        "train_s": round(train_s, 1),
        "peak_mem_mb": peak_mb,
        "adapter_mb": _size_mb(paths["adapter_dir"]) if paths["adapter_dir"] else None,
        "loss_first": round(sum(losses[:k]) / k, 4),
        "loss_last": round(sum(losses[-k:]) / k, 4),
        "base_dir": os.path.abspath(base_dir),
        **paths,
        "settings": asdict(s),
    }
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(row, f, indent=2, ensure_ascii=False)
    return row


def merged_for_export(model, method: Method, base_dir: str, head: Head, n_labels: int, pad_id, adapter_dir):
    """A plain transformers model to save: QLoRA's adapter is merged into the full-precision base
    (the usual QLoRA export), the other adapters into the model they trained on."""
    if methods.METHODS[method].quantized_base:
        from peft import PeftModel

        base = methods.load_base(base_dir, head, n_labels, pad_id)
        return PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    return methods.merged(model, method)
