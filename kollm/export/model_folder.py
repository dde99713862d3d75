"""The exported model folder: what `AutoModelForCausalLM.from_pretrained(dir)` and TensorRT-LLM's LLM API load
(safetensors weights, the tokenizer with its chat template, generation_config.json, `config.architectures`),
and its model card, whose numbers come from the run's manifests, never typed."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence

from kollm.core.io import read_json
from kollm.export.config import ExportConfig

COPIED = (
    "model.safetensors",
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
)


def model_card(
    export: ExportConfig,
    preset: str,
    align_steps: Sequence[str],
    report: str,
    config: dict,
    metrics: dict,
    pretrain: dict,
) -> str:
    """The model card (README.md): `config` the model's config.json, `metrics` the evaluate stage's, `pretrain`
    the pretrain stage's counts and metrics, `report` the path of the report they come from."""
    params = pretrain.get("parameters")
    size = f"{params / 1e6:.1f}M-parameter " if params else ""
    rows = [
        ("NSMC accuracy, fine-tuned classifier (same base)", metrics.get("nsmc_finetuned_accuracy")),
        ("NSMC accuracy, this model asked in its chat format", metrics.get("nsmc_aligned_accuracy")),
        ("NSMC accuracy, TF-IDF + logistic regression baseline", metrics.get("nsmc_tfidf_accuracy")),
        ("KLUE-NLI accuracy, fine-tuned classifier (chance 0.333)", metrics.get("klue_nli_finetuned_accuracy")),
        ("hate speech macro-F1, fine-tuned classifier", metrics.get("hate_finetuned_macro_f1")),
        ("held-out perplexity, pretrained", metrics.get("heldout_perplexity_pretrained")),
        ("held-out perplexity, this model", metrics.get("heldout_perplexity_aligned")),
    ]
    table = "\n".join(f"| {what} | {value} |" for what, value in rows if value is not None)
    chat_acc = metrics.get("nsmc_aligned_accuracy")
    chance = (
        f" Asked for a review's sentiment in the chat format it scores {chat_acc} on NSMC (chance 0.5): use "
        "the fine-tuned classifier for that task."
        if chat_acc is not None and chat_acc < 0.6
        else ""
    )
    return f"""---
language: ko
license: {export.license}
library_name: transformers
pipeline_tag: text-generation
tags: [kollm, korean, llama]
---

# {export.name or "kollm-" + preset}

A {size}Korean Llama ({config.get("num_hidden_layers")} layers, hidden size {config.get("hidden_size")},
vocabulary {config.get("vocab_size")}, context {config.get("max_position_embeddings")} tokens) trained from
scratch by kollm with the `{preset}` preset: pretrained on curated Korean text,
then aligned (SFT → DPO → GRPO). A teaching model: small, fast on a laptop, and weak.

## Data
NSMC movie reviews (CC0; split by movie, test movies never trained on), korean-hate-speech comments and
KLUE sentences (CC BY-SA 4.0), curated with NeMo Curator stages (normalisation, PII redaction, Korean
quality filters, toxicity filter, exact and MinHash near-dedup). KLUE-NLI/STS dev sets are evaluation data.

## Training
Pretraining: {pretrain.get("tokens_seen", 0):,} tokens seen, training loss {pretrain.get("loss_first", "?")} →
{pretrain.get("loss_last", "?")}, held-out loss {pretrain.get("val_loss", "?")}.
Alignment steps: {", ".join(align_steps)} (TRL on CPU; NeMo-RL configs for GPUs).

## Evaluation (this run, `{report}`)

| what | value |
|---|---|
{table}

## Limits
Small and trained on little text: it writes short review-like Korean, often repeats itself, and does not
follow instructions reliably.{chance} Not for any decision about people.

## Usage
```python
from transformers import AutoModelForCausalLM, AutoTokenizer

tok = AutoTokenizer.from_pretrained("PATH")
model = AutoModelForCausalLM.from_pretrained("PATH")
prompt = tok.apply_chat_template([{{"role": "user", "content": "영화 리뷰를 써 주세요."}}],
                                 add_generation_prompt=True, tokenize=False)
ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
print(tok.decode(model.generate(ids, max_new_tokens=48, repetition_penalty=1.2)[0, ids.shape[1]:],
                 skip_special_tokens=True))
```
"""


def write_folder(model_dir: str, folder: str, card: str) -> list[str]:
    """Copy a model folder's weights, config and tokenizer into `folder`, give its config `architectures` (TensorRT-LLM
    and ModelOpt read it) and write `card` as its README.md; returns the folder's files."""
    os.makedirs(folder, exist_ok=True)
    for name in COPIED:
        if os.path.exists(os.path.join(model_dir, name)):
            shutil.copy2(os.path.join(model_dir, name), os.path.join(folder, name))
    config = read_json(os.path.join(folder, "config.json"))
    if not config.get("architectures"):
        config["architectures"] = ["LlamaForCausalLM"]
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
    with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as f:
        f.write(card)
    return sorted(os.listdir(folder))
