"""Align the pretrained LM: a short SFT, then DPO (TRL) on preference pairs from real labels.

CPU path: TRL. The GPU path (NeMo-RL DPO) is configured in aligner/. Outputs: model_dir (the
aligned model), sft_model_dir, dpo_metrics (DPO's held-out metrics before and after, JSON).
"""

from __future__ import annotations

import os

from kollm.config import PipelineConfig
from kollm.io import write_json, write_jsonl
from stages.base import inputs


def _common(out_dir: str, a, lr: float, epochs: int) -> dict:
    return dict(output_dir=out_dir, per_device_train_batch_size=a.batch_size, per_device_eval_batch_size=a.batch_size,
                learning_rate=lr, num_train_epochs=epochs, logging_steps=1, save_strategy="no", report_to=[],
                use_cpu=True, seed=a.seed, lr_scheduler_type="linear", warmup_steps=0, disable_tqdm=False,
                dataloader_num_workers=0, activation_checkpointing=False)


def run(cfg: PipelineConfig, out: str) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    from kollm.alignment import data as alignment_data

    a = cfg.align
    built = alignment_data.build(inputs(cfg, "data"), a.sft_examples, a.dpo_pairs, a.eval_pairs, a.seed)
    sft_rows, pairs, eval_pairs = built.sft, built.train_pairs, built.eval_pairs
    write_jsonl(os.path.join(out, "sft_train.jsonl"), sft_rows)
    write_jsonl(os.path.join(out, "dpo_train.jsonl"), pairs)
    write_jsonl(os.path.join(out, "dpo_eval.jsonl"), eval_pairs)
    with open(os.path.join(out, "datacard.md"), "w", encoding="utf-8") as f:
        f.write(built.card())
    strip = alignment_data.for_trainer

    # Start from the pretrained LM, not the LoRA-merged sentiment model: the adapter is a task
    # adapter (it drives held-out perplexity up several-fold), while SFT mixes sentiment in with the rest.
    base = inputs(cfg, "pretrain")["model_dir"]
    tokenizer = AutoTokenizer.from_pretrained(base)
    torch.manual_seed(a.seed)

    # -- SFT -------------------------------------------------------------------------
    sft_dir = os.path.join(out, "sft")
    model = AutoModelForCausalLM.from_pretrained(base)
    sft = SFTTrainer(model=model, processing_class=tokenizer, train_dataset=Dataset.from_list(strip(sft_rows)),
                     args=SFTConfig(**_common(sft_dir, a, a.sft_lr, a.sft_epochs), max_length=a.max_len))
    sft_result = sft.train()
    sft.save_model(os.path.join(sft_dir, "model"))

    # -- DPO -------------------------------------------------------------------------
    policy = AutoModelForCausalLM.from_pretrained(os.path.join(sft_dir, "model"))
    reference = AutoModelForCausalLM.from_pretrained(os.path.join(sft_dir, "model"))
    dpo = DPOTrainer(model=policy, ref_model=reference, processing_class=tokenizer,
                     train_dataset=Dataset.from_list(strip(pairs)), eval_dataset=Dataset.from_list(strip(eval_pairs)),
                     args=DPOConfig(**_common(os.path.join(out, "dpo"), a, a.dpo_lr, a.dpo_epochs),
                                    beta=a.dpo_beta, max_length=a.max_len))
    before = dpo.evaluate()
    dpo_result = dpo.train()
    after = dpo.evaluate()
    final = os.path.join(out, "model")
    dpo.save_model(final)
    tokenizer.save_pretrained(final)

    def pick(metrics: dict) -> dict:
        keys = ("eval_loss", "eval_rewards/accuracies", "eval_rewards/margins", "eval_logps/chosen", "eval_logps/rejected")
        return {k.removeprefix("eval_"): round(float(metrics[k]), 4) for k in keys if k in metrics}

    dpo_eval = {"before": pick(before), "after": pick(after)}
    dpo_eval_path = os.path.join(out, "dpo_metrics.json")
    write_json(dpo_eval_path, dpo_eval)
    return {
        "outputs": {"model_dir": os.path.abspath(final), "sft_model_dir": os.path.abspath(os.path.join(sft_dir, "model")),
                    "dpo_metrics": os.path.abspath(dpo_eval_path),
                    "datacard": os.path.abspath(os.path.join(out, "datacard.md"))},
        "counts": {"sft_examples": len(sft_rows), "dpo_pairs": len(pairs), "dpo_eval_pairs": len(eval_pairs),
                   "sft_steps": sft_result.global_step, "dpo_steps": dpo_result.global_step},
        "metrics": {"sft_train_loss": round(sft_result.training_loss, 4),
                    "dpo_train_loss": round(dpo_result.training_loss, 4),
                    "dpo_eval_before": dpo_eval["before"], "dpo_eval_after": dpo_eval["after"]},
    }
