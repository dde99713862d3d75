"""NeMo-Aligner DPO, legacy: a `gpt_dpo.yaml`-style override and its JSONL, for older NGC NeMo containers.

NeMo-Aligner is deprecated upstream ("no longer actively maintained" since 2025-05-15; NeMo-RL
replaces it: aligner/nemo_rl.py). It needs a NeMo 1.x `.nemo` checkpoint and GPUs, so kollm only
writes what its DPO example reads: JSONL lines `{"prompt", "chosen_response", "rejected_response"}`
with the prompt already in the chat template (NeMo-Aligner applies none), and the overrides of
examples/nlp/gpt/conf/gpt_dpo.yaml that `train_gpt_dpo.py` takes on its command line.
"""

from __future__ import annotations

import os
import shlex

from kollm.config import PipelineConfig
from kollm.core.io import write_jsonl

# NeMo-Aligner's Dockerfile builds its image on a NeMo framework container (its example: 24.07)
CONTAINER = "nvcr.io/nvidia/nemo:24.07"
SCRIPT = "examples/nlp/gpt/train_gpt_dpo.py"
CHECKPOINT_PLACEHOLDER = "/path/to/model.nemo"  # kollm exports HF folders, not .nemo


def rows(pairs: list[dict], tokenizer) -> list[dict]:
    """NeMo-Aligner's DPO rows: the prompt rendered by the chat template up to the assistant's turn,
    the answers as the text that follows it (ending with the end-of-sequence token)."""
    eos = tokenizer.eos_token or ""
    out = []
    for p in pairs:
        prompt = tokenizer.apply_chat_template(p["prompt"], tokenize=False, add_generation_prompt=True)
        out.append(
            {
                "prompt": prompt,
                "chosen_response": p["chosen"][0]["content"] + eos,
                "rejected_response": p["rejected"][0]["content"] + eos,
            }
        )
    return out


def overrides(cfg: PipelineConfig, train: str, validation: str, n_pairs: int) -> list[str]:
    a = cfg.align
    steps = max(1, -(-n_pairs // a.batch_size) * a.dpo_epochs)
    return [
        f"pretrained_checkpoint.restore_from_path={CHECKPOINT_PLACEHOLDER}",
        f"trainer.num_nodes={max(1, cfg.run.nodes)}",
        f"trainer.devices={max(1, cfg.run.gpus_per_node)}",
        f"trainer.dpo.max_epochs={a.dpo_epochs}",
        f"trainer.dpo.max_steps={steps}",
        f"model.global_batch_size={a.batch_size}",
        "model.micro_batch_size=1",
        f"model.encoder_seq_length={a.max_len}",
        f"++model.dpo.ref_policy_kl_penalty={a.dpo_beta}",
        "model.dpo.preference_loss=dpo",
        f"model.dpo.sft_loss_weight={a.dpo_sft_weight}",
        f"model.optim.lr={a.dpo_lr}",
        f"model.peft.peft_scheme={'lora' if a.lora else 'none'}",
        "model.data.data_impl=jsonl",
        f"model.data.data_prefix={{train: [{train}], validation: [{validation}], test: [{validation}]}}",
    ]


def write(cfg: PipelineConfig, pairs: list[dict], eval_pairs: list[dict], tokenizer_dir: str, out: str) -> str:
    """dpo_train.jsonl, dpo_eval.jsonl and train_gpt_dpo.sh (the command, marked legacy)."""
    from transformers import AutoTokenizer

    out = os.path.abspath(out)
    paths = {"train": os.path.join(out, "dpo_train.jsonl"), "validation": os.path.join(out, "dpo_eval.jsonl")}
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    write_jsonl(paths["train"], rows(pairs, tokenizer))
    write_jsonl(paths["validation"], rows(eval_pairs, tokenizer))
    command = ["python", "-u", SCRIPT, *overrides(cfg, paths["train"], paths["validation"], len(pairs))]
    with open(os.path.join(out, "train_gpt_dpo.sh"), "w", encoding="utf-8") as f:
        f.write(
            "#!/usr/bin/env bash\n# LEGACY: NeMo-Aligner is deprecated (2025-05-15); use NeMo-RL "
            "(../nemo_rl/run_all.sh).\n"
            f"# In NeMo-Aligner 0.7's image (built on {CONTAINER}) from its checkout, a .nemo checkpoint of the model in place of "
            f"{CHECKPOINT_PLACEHOLDER}:\n" + shlex.join(command) + "\n"
        )
    return out
