"""Stage 6, align: a short SFT then DPO with TRL, from the pretrained LM, on real labelled data.

CPU path: TRL. The GPU path (NeMo-RL DPO) is configured in aligner/.
"""

from __future__ import annotations

import os

from kollm.config import PipelineConfig
from kollm.io import read_jsonl, write_jsonl
from kollm.stages.runner import stage_dir


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

    from kollm import preferences

    a = cfg.align
    data = stage_dir(cfg, "data")
    train_reviews = list(read_jsonl(os.path.join(data, "nsmc_train.jsonl")))
    val_reviews = list(read_jsonl(os.path.join(data, "nsmc_val.jsonl")))
    hate_train = list(read_jsonl(os.path.join(data, "hate_train.jsonl")))
    hate_dev = list(read_jsonl(os.path.join(data, "hate_dev.jsonl")))

    sft_rows = preferences.sft_examples(train_reviews, hate_train, a.sft_examples, a.seed)
    pairs = preferences.dpo_pairs(train_reviews, hate_train, a.dpo_pairs, a.seed + 1)
    eval_pairs = preferences.dpo_pairs(val_reviews, hate_dev, a.eval_pairs, a.seed + 2)  # disjoint sources
    write_jsonl(os.path.join(out, "sft_train.jsonl"), sft_rows)
    write_jsonl(os.path.join(out, "dpo_train.jsonl"), pairs)
    write_jsonl(os.path.join(out, "dpo_eval.jsonl"), eval_pairs)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "kind"} for r in rows]  # noqa: E731

    # Start from the pretrained LM, not the LoRA-merged sentiment model: the adapter is a task
    # adapter (it drives held-out perplexity up several-fold), while SFT mixes sentiment in with the rest.
    base = os.path.join(stage_dir(cfg, "pretrain"), "model")
    tokenizer = AutoTokenizer.from_pretrained(base)
    torch.manual_seed(a.seed)

    # -- SFT -------------------------------------------------------------------------
    sft_dir = os.path.join(out, "sft")
    model = AutoModelForCausalLM.from_pretrained(base)
    sft = SFTTrainer(model=model, processing_class=tokenizer, train_dataset=Dataset.from_list(sft_rows),
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

    return {
        "outputs": {"model_dir": os.path.abspath(final), "sft_model_dir": os.path.abspath(os.path.join(sft_dir, "model"))},
        "counts": {"sft_examples": len(sft_rows), "dpo_pairs": len(pairs), "dpo_eval_pairs": len(eval_pairs),
                   "sft_steps": sft_result.global_step, "dpo_steps": dpo_result.global_step},
        "metrics": {"sft_train_loss": round(sft_result.training_loss, 4),
                    "dpo_train_loss": round(dpo_result.training_loss, 4),
                    "dpo_eval_before": pick(before), "dpo_eval_after": pick(after)},
    }
