"""Which model the laptop preset trains: tokens/s and held-out loss vs model size and steps, on 2 CPU cores.

    .venv/bin/python benchmarks/laptop_sweep.py --run runs/tiny   # writes benchmarks/results/laptop_sweep.json

Trains each candidate Llama from scratch on the run's tokenised curated corpus (the pretrain stage's
indexed data) with the laptop preset's optimiser settings, for a short full schedule, then measures the
loss on the held-out split. From tokens/s it projects the minutes one pass over the whole corpus
takes: the laptop preset must pretrain on all of it and still leave the pipeline under 90 minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from benchmarks.pipeline_tiny import write_result  # noqa: E402
from kollm.config import ModelConfig  # noqa: E402
from kollm.models import build_model, flops_per_token, parameter_count  # noqa: E402
from kollm.pretrain import indexed_data  # noqa: E402
from kollm.pretrain import torch_backend as pretrain  # noqa: E402
from kollm.pretrain.frame import summarize  # noqa: E402
from recipes import presets  # noqa: E402
from stages.base import outputs_of  # noqa: E402
from stages.pretrain import PretrainOutputs  # noqa: E402

CANDIDATES = {
    "h192-L4": ModelConfig(
        hidden_size=192, num_layers=4, num_heads=3, num_kv_heads=1, intermediate_size=512, max_seq_len=256
    ),
    "h256-L4 (tiny)": presets.llama_5m_cpu_demo().model,
    "h256-L6": ModelConfig(
        hidden_size=256, num_layers=6, num_heads=4, num_kv_heads=2, intermediate_size=704, max_seq_len=256
    ),
    "h384-L6": ModelConfig(
        hidden_size=384, num_layers=6, num_heads=6, num_kv_heads=2, intermediate_size=1024, max_seq_len=256
    ),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/tiny", help="a run whose pretrain stage is done (its tokenised corpus)")
    ap.add_argument(
        "--steps",
        type=int,
        nargs="+",
        default=[150, 300],
        help="schedules to train: the tiny shape gets all of them, the others the first",
    )
    ap.add_argument("--candidates", nargs="+", default=list(CANDIDATES), help=f"of: {', '.join(CANDIDATES)}")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "laptop_sweep.json"))
    args = ap.parse_args()
    from transformers import AutoTokenizer

    pretrained = outputs_of(args.run, PretrainOutputs)
    prefix = pretrained.indexed_data
    train_tokens = indexed_data.load_tokens(prefix)
    val_tokens = indexed_data.load_tokens(prefix[: -len("train")] + "val")
    tokenizer = AutoTokenizer.from_pretrained(pretrained.model_dir)
    p = dataclasses.replace(presets.from_preset("laptop").pretrain, checkpoint_every=0, log_every=50)
    rows = []
    for name in args.candidates:
        model_cfg = CANDIDATES[name]
        for steps in args.steps if name == "h256-L4 (tiny)" else args.steps[:1]:
            cfg = dataclasses.replace(p, steps=steps, warmup_steps=min(p.warmup_steps, steps // 10))
            model = build_model(model_cfg, tokenizer, seed=0)
            fpt = flops_per_token(model_cfg, len(tokenizer), cfg.seq_len)
            with tempfile.TemporaryDirectory() as work:
                result = pretrain.train_loop(model, train_tokens, cfg, work, fpt, val_tokens=val_tokens)
            tps = summarize(result["history"])["tokens_per_s"]
            rows.append(
                {
                    "model": name,
                    **dataclasses.asdict(model_cfg),
                    "parameters": parameter_count(model_cfg, len(tokenizer)),
                    "steps": steps,
                    "tokens_per_s": round(tps, 1),
                    "val_loss": result["val_loss"],
                    "epoch_minutes": round(len(train_tokens) / tps / 60, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    out = {
        "name": "laptop_sweep",
        "train_tokens": int(len(train_tokens)),
        "batch_tokens": p.batch_size * p.seq_len,
        "candidates": rows,
    }
    write_result(
        args.out,
        out,
        ".venv/bin/python benchmarks/laptop_sweep.py --run "
        + args.run
        + " --steps "
        + " ".join(map(str, args.steps))
        + " --candidates "
        + " ".join(f"'{c}'" for c in args.candidates),
    )


if __name__ == "__main__":
    main()
