"""What each quantisation format costs: the quantize stage of a finished run, rerun and recorded.

    .venv/bin/python benchmarks/quantization.py --run runs/tiny    # writes benchmarks/results/quantization.json

Reruns the run's quantize stage (ModelOpt int8 SmoothQuant, fp8, int4-AWQ where the widths allow it, plus
bf16 and the CPU server's torch dynamic int8) and keeps its table: held-out perplexity of the aligned
model, NSMC accuracy of the fine-tuned classifier in the same format, weights on disk. CPU fake-quant:
quality, not speed.
"""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from benchmarks.alignment import run_config  # noqa: E402
from benchmarks.pipeline_tiny import write_result  # noqa: E402
from kollm.core.io import read_json  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/tiny", help="a run whose finetune and align stages are done")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "quantization.json"))
    args = ap.parse_args()
    from stages.runner import main as run_stage

    cfg = run_config(args.run)
    cfg.run.force = True
    run_stage("quantize", cfg)
    from stages.base import outputs_of
    from stages.quantize import QuantizeOutputs

    table = read_json(outputs_of(cfg.run_dir, QuantizeOutputs).table)
    for row in table["formats"]:
        row["dir"] = os.path.relpath(row["dir"]) if row["dir"] else ""
    table["model_dir"] = os.path.relpath(table["model_dir"])
    write_result(
        args.out,
        {"name": "quantization", "preset": cfg.preset, **table},
        f"python benchmarks/quantization.py --run {args.run}",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
