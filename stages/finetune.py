"""Fine-tune the pretrained LM with LoRA (HF PEFT) to answer 긍정/부정 for NSMC reviews."""

from __future__ import annotations

import json
import os
import random
import time

from tqdm import tqdm

from kollm.config import PipelineConfig
from kollm.io import read_jsonl
from stages.base import inputs


def run(cfg: PipelineConfig, out: str) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kollm import sentiment
    from kollm.training import loss_window

    ft = cfg.finetune
    base = inputs(cfg, "pretrain")["model_dir"]
    data = inputs(cfg, "data")
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    lora = LoraConfig(r=ft.lora_r, lora_alpha=ft.lora_alpha, lora_dropout=ft.lora_dropout, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    torch.manual_seed(ft.seed)  # before the adapter exists: LoRA's A matrices are drawn from this generator
    model = get_peft_model(model, lora)
    trainable, total = model.get_nb_trainable_parameters()

    rows = sentiment.labelled(read_jsonl(data["nsmc_train"]), ft.seed, ft.examples_per_class)
    val_rows = sentiment.labelled(read_jsonl(data["nsmc_val"]), ft.seed, 250)
    examples = [sentiment.training_example(tokenizer, r, ft.max_len) for r in rows]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=ft.lr, weight_decay=0.0)
    steps = ft.epochs * ((len(examples) + ft.batch_size - 1) // ft.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / max(1, steps))
    rng = random.Random(ft.seed)
    history, step, t0 = [], 0, time.perf_counter()
    model.train()
    with tqdm(total=steps, desc="finetune (LoRA)", unit="step", mininterval=2) as bar:
        for _ in range(ft.epochs):
            rng.shuffle(examples)
            for start in range(0, len(examples), ft.batch_size):
                ids, mask, labels = sentiment.collate(examples[start: start + ft.batch_size], tokenizer.pad_token_id)
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                step += 1
                history.append({"step": step, "loss": round(loss.item(), 4)})
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
    train_s = time.perf_counter() - t0
    probs = sentiment.predict(model, tokenizer, [r["text"] for r in val_rows], ft.max_len)
    val_acc = sum((p > 0.5) == bool(r["label"]) for p, r in zip(probs, val_rows)) / max(1, len(val_rows))

    model.save_pretrained(os.path.join(out, "adapter"))  # HF-PEFT format
    merged = model.merge_and_unload()
    merged.save_pretrained(os.path.join(out, "model"), safe_serialization=True)
    tokenizer.save_pretrained(os.path.join(out, "model"))
    with open(os.path.join(out, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(h) + "\n" for h in history)
    loss_first, loss_last = loss_window(history)
    return {
        "outputs": {"adapter_dir": os.path.abspath(os.path.join(out, "adapter")),
                    "model_dir": os.path.abspath(os.path.join(out, "model"))},
        "counts": {"train_examples": len(rows), "val_examples": len(val_rows), "steps": step,
                   "trainable_parameters": trainable, "total_parameters": total},
        "metrics": {"loss_first": loss_first, "loss_last": loss_last, "val_accuracy": round(val_acc, 4), "train_s": round(train_s, 1)},
    }
