"""Measure the demo: the whole pipeline, preset tiny, from an empty run directory, on this machine.

    .venv/bin/python benchmarks/pipeline_tiny.py            # writes benchmarks/results/pipeline_tiny.json
    .venv/bin/python benchmarks/pipeline_tiny.py preset=ci  # any preset/overrides, written under its name
    .venv/bin/python benchmarks/pipeline_tiny.py preset=laptop run.root=runs   # keeps the run (else a temp dir)

Runs exactly what `make demo` runs (`kollm run pipeline ...` through NeMo Run), timed from
outside, and records per-stage wall times from the manifests plus the report's headline numbers.
With a kept run.root the pipeline resumes: stages whose manifests are current are skipped, and the
whole pipeline's `wall_s` is this call plus those stages' own recorded times (`resumed_stages` names them)
plus, when pretraining resumed from a checkpoint, the earlier steps' training time (`earlier_training_s`,
from metrics.jsonl: tokens per log interval / that interval's tokens per second).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from stages import NAMES as STAGES  # noqa: E402  the declared stages, in pipeline order
from stages.base import require_manifest

# the demo's goals (issue 11): the whole pipeline within 15 minutes, its best NSMC model >= 0.80;
# benchmarks/render.py shows them beside the measured figures
GOALS = {"tiny": {"wall_s": 900, "nsmc_best_accuracy": 0.80}}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(line for line in open("/proc/meminfo") if line.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} CPU cores ({cpu}){mem}, no GPU, Python {platform.python_version()}, {platform.system()}"


def write_result(path: str, out: dict, command: str) -> None:
    """A benchmark's JSON: its figures plus the command that reruns it, this machine and today's date."""
    out = {**out, "command": command, "machine": machine(), "date": datetime.date.today().isoformat()}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {path}")


def earlier_training_s(pretrain: dict) -> float:
    """Training time of the steps before the checkpoint this pretrain stage resumed from (0 if it did not)."""
    from kollm.pretrain.frame import checkpoint_step
    from stages.pretrain import PretrainOutputs

    resumed = pretrain.get("resumed_from")
    if not resumed:
        return 0.0
    step = checkpoint_step(resumed)
    total, seen = 0.0, 0
    for line in open(PretrainOutputs.from_manifest(pretrain, "pretrain").metrics):
        row = json.loads(line)
        if row["step"] > step:
            break
        total += (row["tokens_seen"] - seen) / row["tokens_per_s"]
        seen = row["tokens_seen"]
    return total


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "overrides",
        nargs="*",
        help="preset=NAME (default tiny) and section.key=value overrides; "
        "run.root=DIR keeps the run there (else a temp dir)",
    )
    overrides = ap.parse_args(argv).overrides or ["preset=tiny"]
    preset = next((a.split("=", 1)[1] for a in overrides if a.startswith("preset=")), "tiny")
    kept = next((a.split("=", 1)[1] for a in overrides if a.startswith("run.root=")), "")
    root = os.path.abspath(kept) if kept else tempfile.mkdtemp(prefix="kollm-bench-")
    cmd = [
        sys.executable,
        "-m",
        "recipes.cli",
        "run",
        "pipeline",
        *[a for a in overrides if not a.startswith("run.root=")],
        f"run.root={root}",
    ]
    called = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(f"pipeline failed (exit {proc.returncode}); run dir kept at {root}", file=sys.stderr)
        return proc.returncode
    run_dir = os.path.join(root, preset)
    manifests = {s: require_manifest(run_dir, s) for s in STAGES}
    report = json.load(open(os.path.join(run_dir, "evaluate", "report.json"), encoding="utf-8"))
    nsmc = report["tasks"]["nsmc"]
    # stages skipped as up to date started before this call: count their own time, not this call's skip
    resumed = [s for s, m in manifests.items() if datetime.datetime.fromisoformat(m["started"]) < called]
    earlier = 0.0 if "pretrain" in resumed else earlier_training_s(manifests["pretrain"])
    result = {
        "name": f"pipeline_{preset}",
        "wall_s": round(wall + sum(manifests[s]["wall_s"] for s in resumed) + earlier, 1),
        "wall_s_this_call": round(wall, 1),
        "resumed_stages": resumed,
        "earlier_training_s": round(earlier, 1),
        "stages": {s: m["wall_s"] for s, m in manifests.items()},
        "overhead_s": round(wall - sum(m["wall_s"] for s, m in manifests.items() if s not in resumed), 1),
        "metrics": {
            **manifests["evaluate"]["metrics"],
            # the best LM on NSMC: fine-tuned, or pretrained/aligned prompted zero-shot
            "nsmc_best_accuracy": max(nsmc[k]["acc"] for k in ("finetuned", "pretrained", "aligned") if k in nsmc),
            "finetune_method": f"{report['finetune']['method']} ({report['finetune']['head']} head)",
            "pretrain_tokens_per_s": manifests["pretrain"]["metrics"]["tokens_per_s"],
            "pretrain_loss_first": manifests["pretrain"]["metrics"]["loss_first"],
            "pretrain_loss_last": manifests["pretrain"]["metrics"]["loss_last"],
            "parameters": manifests["pretrain"]["counts"]["parameters"],
            "tokens_seen": manifests["pretrain"]["counts"]["tokens_seen"],
            "docs_in": manifests["curate"]["counts"]["corpus"]["in"],
            "docs_kept": manifests["curate"]["counts"]["corpus"]["kept"],
            "dpo_eval_reward_accuracy": manifests["align"]["metrics"]["dpo_eval_after"].get("rewards/accuracies"),
            "served_http_answer": manifests["serve"]["answers"]["http"]["text"],
            "served_grpc_stream_pieces": manifests["serve"]["answers"]["grpc_stream"]["pieces"],
        },
        # committed: the report's paths (the lm_eval command) relative to the repository
        "report_md": open(os.path.join(run_dir, "evaluate", "report.md"), encoding="utf-8")
        .read()
        .replace(REPO + "/", ""),
        "command": ("make env && .venv/bin/python benchmarks/pipeline_tiny.py " + " ".join(argv)).rstrip(),
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
    }
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    out = os.path.join(HERE, "results", f"pipeline_{preset}.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, indent=2)
        f.write("\n")
    if not kept:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"wrote {out}: wall {result['wall_s']:.0f}s"
        + (f" (this call {wall:.0f}s; resumed {', '.join(resumed)})" if resumed else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
