"""Quantise the aligned model with NVIDIA ModelOpt (int8 SmoothQuant, fp8, int4-AWQ) for TensorRT-LLM, and measure each format.

Calibration uses the first `quantize.calibration_docs` curated corpus documents. Every format is
measured the same way as the fp32 and bf16 models, on CPU as fake-quant: held-out perplexity and
bits/char of the aligned (served) model, and NSMC accuracy of the finetune stage's NSMC model put
through the same format (the aligned model's own zero-shot NSMC is near chance at CPU sizes); then exported in the HF format TensorRT-LLM's LLM API loads (hf_quant_config.json),
which trtllm/ serves on GPU hosts. A format these layer widths cannot hold is skipped with the reason.
The table also measures torch dynamic int8, what the CPU Triton model serves with serve.quantization.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import os
import time

import torch

from kollm.config import PipelineConfig
from kollm.core import read_jsonl, write_json
from stages.base import Outputs, inputs, the
from stages.curate import CurateOutputs
from stages.data import DataOutputs
from stages.finetune import FinetuneOutputs


@dataclasses.dataclass(frozen=True)
class QuantizeOutputs(Outputs):
    table: str  # quantization.json: each format's size and quality against the float model
    checkpoints: str  # the stage folder: one <format>/ TensorRT-LLM checkpoint folder each, named in the table


def _perplexity(model, tokenizer, heldout: list[str], max_len: int) -> dict:
    from kollm.evaluate import perplexity

    ppl = perplexity(model, tokenizer, heldout, max_len=max_len)
    return {"perplexity": round(ppl["perplexity"], 3), "bits_per_char": round(ppl["bits_per_char"], 4)}


def _accuracy(classifier, rows: list[dict], max_len: int) -> dict:
    from kollm.data import NSMC, accuracy
    from kollm.finetune import predict

    if classifier is None:
        return {"nsmc_accuracy": None}
    model, tokenizer, head = classifier
    pred = predict(head, model, tokenizer, NSMC, rows, max_len)
    return {"nsmc_accuracy": round(accuracy(pred, [r["label"] for r in rows]), 4)}


def _nsmc_classifier(cfg: PipelineConfig):
    """(model, tokenizer, head) of the finetune stage's NSMC model, or None when it left no merged folder."""
    from transformers import AutoTokenizer

    from kollm.core import read_json
    from kollm.finetune import load_base

    result = next((r for r in read_json(inputs(cfg, FinetuneOutputs).results)["tasks"] if r["task"] == "nsmc"), None)
    if not result or not result.get("model_dir"):
        return None
    tokenizer = AutoTokenizer.from_pretrained(result["model_dir"])
    model = load_base(result["model_dir"], result["head"], 2, tokenizer.pad_token_id).eval()
    return model, tokenizer, result["head"]


def run(cfg: PipelineConfig, out: str) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kollm.data import NSMC, load_split
    from kollm.quantize import dynamic_int8, export, folder_mb, quantize, supported, widths

    q = cfg.quantize
    model_dir = the(cfg, "model")
    curated, data = inputs(cfg, CurateOutputs), inputs(cfg, DataOutputs).paths()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    base = AutoModelForCausalLM.from_pretrained(model_dir, use_safetensors=True, dtype=torch.float32).eval()
    heldout = [r["text"] for r in itertools.islice(read_jsonl(curated.heldout), q.perplexity_docs)]
    calibration = [r["text"] for r in itertools.islice(read_jsonl(curated.corpus), q.calibration_docs)]
    batches = [
        tokenizer(
            calibration[i : i + 8], return_tensors="pt", padding=True, truncation=True, max_length=q.calibration_len
        )["input_ids"]
        for i in range(0, len(calibration), 8)
    ]
    nsmc_rows = load_split(NSMC, data, "test", 0, q.nsmc_examples // 2)
    classifier, max_len = _nsmc_classifier(cfg), cfg.align.max_len

    def measured(lm, clf) -> dict:
        t0 = time.perf_counter()
        row = {**_perplexity(lm, tokenizer, heldout, max_len), **_accuracy(clf, nsmc_rows, cfg.finetune.max_len)}
        return {**row, "eval_s": round(time.perf_counter() - t0, 1)}

    def converted(convert):
        return None if classifier is None else (convert(copy.deepcopy(classifier[0])), *classifier[1:])

    rows = [
        {
            "format": "fp32",
            **measured(base, classifier),
            "size_mb": round(folder_mb(model_dir), 2),
            "dir": os.path.abspath(model_dir),
        }
    ]
    bf16_dir = os.path.join(out, "bf16")
    bf16 = copy.deepcopy(base).to(torch.bfloat16)
    bf16.save_pretrained(bf16_dir, safe_serialization=True)
    tokenizer.save_pretrained(bf16_dir)
    rows.append(
        {
            "format": "bf16",
            **measured(bf16, converted(lambda m: m.to(torch.bfloat16))),
            "size_mb": round(folder_mb(bf16_dir), 2),
            "dir": os.path.abspath(bf16_dir),
        }
    )
    del bf16

    def as_int8(m):  # what the CPU Triton model serves with serve.quantization=dynamic_int8
        dynamic_int8(m)
        return m

    rows.append(
        {
            "format": "torch_dynamic_int8",
            **measured(as_int8(copy.deepcopy(base)), converted(as_int8)),
            "size_mb": None,
            "dir": "",
        }
    )
    formats, skipped = supported(q.formats, *widths(base.config))
    for fmt in formats:
        model = copy.deepcopy(base)
        t0 = time.perf_counter()
        quantize(model, fmt, batches)
        calibration_s = time.perf_counter() - t0
        row = measured(model, converted(lambda m, fmt=fmt: quantize(m, fmt, batches)))
        fmt_dir = export(model, tokenizer, os.path.join(out, fmt))
        rows.append(
            {
                "format": fmt,
                **row,
                "calibration_s": round(calibration_s, 1),
                "size_mb": round(folder_mb(fmt_dir), 2),
                "dir": os.path.abspath(fmt_dir),
            }
        )
        del model
    table = {
        "formats": rows,
        "skipped": skipped,
        "model_dir": model_dir,
        "calibration_docs": len(calibration),
        "heldout_docs": len(heldout),
        "nsmc_rows": len(nsmc_rows),
        "note": "CPU fake-quant: quality of each format, not its speed (TensorRT-LLM's kernels need a GPU)",
    }
    write_json(os.path.join(out, "quantization.json"), table)
    return {
        "outputs": QuantizeOutputs(
            table=os.path.abspath(os.path.join(out, "quantization.json")), checkpoints=os.path.abspath(out)
        ),
        "metrics": {f"{r['format']}_{k}": r[k] for r in rows for k in ("perplexity", "nsmc_accuracy")},
        "skipped": skipped,
        "counts": {"formats": len(rows), "skipped": len(skipped)},
    }
