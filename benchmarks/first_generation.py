"""Week 1's first generation: the run's own models through a plain Hugging Face `pipeline`, nothing of kollm.

    .venv/bin/python benchmarks/first_generation.py --run runs/tiny   # writes benchmarks/results/first_generation.json

The pretrained model continues a Korean sentence; the aligned one answers a chat message in its own chat
template. Greedy, so a rerun on the same run gives the same text. docs/workshop/week01 renders the JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from benchmarks.pipeline_tiny import write_result  # noqa: E402
from kollm.core import KollmError  # noqa: E402
from stages.align import AlignOutputs  # noqa: E402
from stages.base import outputs_of  # noqa: E402
from stages.pretrain import PretrainOutputs  # noqa: E402

PROMPTS = {"pretrained": "이 영화 정말", "aligned": "이 영화에 대한 긍정적인 리뷰를 써 주세요."}


def generate(run_dir: str, max_new_tokens: int = 24) -> dict:
    import torch
    from transformers import pipeline

    from kollm.models import flush_subnormals

    flush_subnormals()
    out = {}
    for which, record in (("pretrained", PretrainOutputs), ("aligned", AlignOutputs)):
        # where each stage's model is: its manifest says (the align stage's is its last step's policy)
        try:
            model_dir = outputs_of(run_dir, record).model_dir
        except KollmError as e:
            raise SystemExit(f"error: {e}; run `kollm run pipeline preset=tiny` first") from None
        gen = pipeline("text-generation", model=model_dir, device="cpu", dtype=torch.float32)
        prompt = PROMPTS[which]
        t0 = time.perf_counter()
        if which == "aligned":  # a chat message: the pipeline renders the tokenizer's chat template
            answer = gen(
                [{"role": "user", "content": prompt}], max_new_tokens=max_new_tokens, do_sample=False, min_new_tokens=8
            )[0]["generated_text"][-1]["content"]
        else:
            answer = gen(
                prompt, max_new_tokens=max_new_tokens, do_sample=False, return_full_text=False, min_new_tokens=8
            )[0]["generated_text"]
        out[which] = {
            "model_dir": os.path.relpath(model_dir),
            "prompt": prompt,
            "output": answer.strip(),
            "seconds": round(time.perf_counter() - t0, 2),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/tiny", help="a finished pipeline run (its pretrain and align models)")
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "first_generation.json"))
    args = ap.parse_args(argv)
    result = {"name": "first_generation", "run": os.path.relpath(args.run), **generate(args.run, args.max_new_tokens)}
    write_result(args.out, result, f".venv/bin/python benchmarks/first_generation.py --run {os.path.relpath(args.run)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
