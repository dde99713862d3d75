"""`kollm`: run recipes through NeMo Run, run one stage in-process, download data.

  kollm run pipeline preset=tiny                 # the whole pipeline (NeMo Run, local executor)
  kollm run pretrain preset=ci pretrain.steps=50 # one stage
  kollm run pipeline run.executor=slurm run.partition=gpu --dryrun
  kollm stage evaluate preset=ci evaluate.nsmc_path=my.jsonl   # in this process, no NeMo Run
  kollm evaluate runs/tiny/align --tasks nsmc klue_sts   # a stage folder (its manifest's model) or any HF model folder
  kollm evaluate BASE_DIR --adapter ADAPTER_DIR --tasks hate --data my_comments.jsonl
  kollm nemo-rl dpo preset=1b run.executor=slurm --dryrun   # a NeMo-RL step (GPUs) on the align stage's data
  kollm data download [--mirror URL] [--dest DIR]
  kollm config preset=ci pretrain.steps=10       # print the resolved config
  kollm run pipeline preset=1b --profile cluster.yaml --dryrun   # a cluster profile fills run.* (Slurm)
  kollm doctor                                   # is this machine ready? each problem with its fix

Overrides are `section.key=value`; `preset=NAME` picks the recipe to start from
(recipes/presets.py: tiny, laptop, ci, small, 1b, 8b). User mistakes print one `error:` line and exit
with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys

from kollm.core.errors import KollmError


def _config(tokens: list[str], config_file: str = ""):
    """The config from a preset (or a JSON file) and overrides, checked as a whole (`config.validate`)
    before anything is launched anywhere: a dry run or a Slurm job gets the same one-line errors."""
    from kollm import config
    from recipes import presets

    if config_file:
        try:
            with open(config_file, encoding="utf-8") as f:
                cfg = config.from_dict(json.load(f))
        except (OSError, json.JSONDecodeError, TypeError) as e:
            raise KollmError(f"cannot read config {config_file}: {e}") from None
        cfg = config.apply_overrides(cfg, tokens)
    else:
        from recipes import cluster

        preset, profile = "tiny", ""
        rest = []
        for t in tokens:
            if t.startswith("preset="):
                preset = t.split("=", 1)[1]
            elif t.startswith("run.profile="):
                profile = t.split("=", 1)[1]
            else:
                rest.append(t)
        # preset < cluster profile < the command line's own overrides
        found = cluster.find(profile)
        cfg = presets.build(preset, (cluster.overrides(found) if found else []) + rest)
    config.validate(cfg)
    return cfg


def preflight(cfg, names: list[str]) -> None:
    """Catch user mistakes in this machine's files before launching: bad data dir, bad evaluation file."""
    from kollm.core.io import read_jsonl
    from kollm.data.sources import NSMC_FIELDS, resolve_data_dir

    if "data" in names:
        resolve_data_dir(cfg.data.data_dir)
    if "evaluate" in names and cfg.evaluate.nsmc_path:
        for _ in read_jsonl(cfg.evaluate.nsmc_path, required=NSMC_FIELDS):
            pass
    if "finetune" in names and cfg.finetune.backend == "automodel":
        from kollm.finetune import automodel

        automodel.check(cfg.finetune)


def _prepare_environment(cfg) -> None:
    # Stage tasks are child processes that run `python` from PATH: make it this environment's.
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    os.environ.setdefault("NEMORUN_HOME", os.path.abspath(os.path.join(cfg.run.root, ".nemo_run")))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def cmd_run(args) -> int:
    from stages import NAMES
    from stages.base import load_manifest

    cfg = _config(args.overrides)
    cfg.run.root = os.path.abspath(cfg.run.root)  # tasks may run elsewhere (container workdir, other node)
    if args.recipe not in ["pipeline", *NAMES]:
        raise KollmError(f"unknown recipe {args.recipe!r}; choose one of: pipeline, {', '.join(NAMES)}")
    only = NAMES if args.recipe == "pipeline" else [args.recipe]
    if cfg.run.executor == "local" and not args.dryrun:
        preflight(cfg, only)
    _prepare_environment(cfg)
    from recipes.pipeline import launch

    status = launch(cfg, only, dryrun=args.dryrun)
    exp_dir = status.pop("_exp_dir")
    if args.dryrun:
        print(f"dry run: nothing was launched; generated files are under {exp_dir}")
        return 0
    failed = [s for s in only if load_manifest(cfg.run_dir, s) is None]
    print()
    print(f"{'stage':<10} {'status':<10} {'wall_s':>8}")
    for s in only:
        m = load_manifest(cfg.run_dir, s)
        print(f"{s:<10} {'done' if m else 'FAILED':<10} {m['wall_s'] if m else '':>8}")
    if failed:
        print(
            f"error: stage {failed[0]!r} did not complete; its log: nemo experiment logs, or {exp_dir}/{failed[0]}",
            file=sys.stderr,
        )
        return 1
    report = load_manifest(cfg.run_dir, "evaluate")
    if report:
        print(f"\nreport: {report['outputs']['report_md']}")
        print("headline: " + ", ".join(f"{k}={v}" for k, v in report["metrics"].items()))
    return 0


def cmd_stage(args) -> int:
    from stages import by_name
    from stages.runner import main

    stage = by_name(args.name)  # an unknown stage is one line, before the config is read
    cfg = _config(args.overrides, args.config)
    if stage.env == "serve":
        _in_serve_env(cfg, "pytriton")
    preflight(cfg, [args.name])
    main(args.name, cfg)
    return 0


def _in_serve_env(cfg, module: str) -> bool:
    """True when `module` imports here; else this command re-runs in the serve environment (as the pipeline runs
    serve-environment stages there) and does not return, or False when there is none to switch to."""
    if importlib.util.find_spec(module) is not None:
        return True
    from recipes.stage_tasks import serve_python

    python = serve_python(cfg)
    if os.path.exists(python) and os.path.abspath(python) != os.path.abspath(sys.executable):
        os.execv(python, [python, "-m", "recipes.cli", *sys.argv[1:]])
    return False


def cmd_chat(args) -> int:
    from kollm.core.errors import KollmError as Error

    if args.url or args.ui:
        if not _in_serve_env(_config([]), "tritonclient" if args.url else "gradio"):
            raise Error("the Triton clients and Gradio are not installed here; use the serve environment (.venv-serve)")
    from transformers import AutoConfig, AutoTokenizer

    from kollm.serve import chat

    model_dir = args.model_dir or served_model(args.run)
    if not os.path.exists(os.path.join(model_dir, "config.json")):
        raise Error(f"{model_dir} is not a HF model folder (no config.json)")
    sampling = {
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "top_k": args.top_k,
        "top_p": args.top_p,
        **({"min_tokens": args.min_tokens} if args.min_tokens else {}),
    }
    if args.url:
        backend, protocol = chat.triton_backend(args.url, args.protocol, args.model, args.timeout)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        where = f"Triton {args.model} at {args.url} ({protocol}{', detected' if args.protocol == 'auto' else ''})"
    else:
        backend, tokenizer = chat.local_backend(model_dir)
        where = f"{model_dir} in this process"
    context = getattr(AutoConfig.from_pretrained(model_dir), "max_position_embeddings", 2048)
    conversation = chat.Conversation(tokenizer, context, args.max_tokens, system=args.system)
    if args.ui:
        from kollm.serve import web

        app = web.build_app(
            backend,
            conversation,
            f"kollm chat — {where}",
            args.max_tokens,
            extra={"min_tokens": args.min_tokens} if args.min_tokens else None,
        )
        print(f"kollm chat UI on http://{args.host}:{args.port} ({where}); Ctrl-C stops it", flush=True)
        web.serve(app, args.host, args.port)
        return 0
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"kollm chat: {where}. /reset clears the history, /exit or Ctrl-D leaves.")
    chat.run_chat(backend, conversation, sampling, read=chat.terminal_reader() if interactive else input)
    return 0


def served_model(run_dir: str) -> str:
    """The model the run's pipeline served (the output playing the "model" role: the align stage's last policy)."""
    from stages.base import model_of_run

    try:
        return model_of_run(run_dir)
    except KollmError as e:
        raise KollmError(
            f"no served model: {e}: run the pipeline first (kollm run pipeline) or pass --model-dir"
        ) from None


def cmd_export(args) -> int:
    from recipes import hub
    from stages.base import load_manifest, outputs_of
    from stages.export import ExportOutputs

    cfg = _config(args.overrides)
    if args.push:
        hub.check_repo_id(args.push)  # a bad id is one line, before anything runs
    manifest = load_manifest(cfg.run_dir, "export")
    if manifest is None or args.rerun:
        from stages.runner import main as run_stage

        run_stage("export", cfg)
    folder = outputs_of(cfg.run_dir, ExportOutputs).model_dir
    print(f"exported: {folder}")
    if not args.push:
        return 0
    result = hub.push(folder, args.push, dry_run=args.dry_run, private=args.private)
    verb = "would upload" if args.dry_run else "uploaded"
    total = sum(f["bytes"] for f in result["files"])
    print(f"{verb} {len(result['files'])} files ({total / 1e6:.1f} MB) from {folder} to {result['url']}:")
    for f in result["files"]:
        print(f"  {f['name']:<28} {f['bytes']:>12,} bytes  sha256 {f['sha256']}")
    return 0


def cmd_trtllm(args) -> int:
    from recipes import trtllm

    cfg = _config(args.overrides)
    result = trtllm.launch(cfg, args.action, dryrun=args.dryrun)
    print(f"command: {result['command']}")
    for key in ("model_yaml", "options", "dataset"):
        if key in result:
            print(f"{key}: {result[key]}")
    return 0


def cmd_config(args) -> int:
    cfg = _config(args.overrides)
    print(json.dumps(dataclasses.asdict(cfg), indent=2, ensure_ascii=False))
    return 0


def cmd_doctor(args) -> int:
    from recipes import doctor

    return doctor.main(args.data_dir, args.root, args.profile, args.json)


def cmd_download(args) -> int:
    from kollm.data import download

    dest = args.dest or download.default_dest()
    if args.mirror:
        done = download.download_mirror(args.mirror, dest)
    else:
        done = download.download_upstream(dest)
    print(f"{len(done)} files ready in {dest}")
    return 0


def cmd_evaluate(args) -> int:
    from kollm.evaluate import harness

    # one line before lm-eval loads anything
    from recipes.locate import check_causal_lm, evaluation_input

    model_dir = evaluation_input(args.model_dir, "model", args.tasks)
    adapter = evaluation_input(args.adapter, "adapter", args.tasks) if args.adapter else None
    harness.check_model_dir(model_dir)
    if adapter:
        harness.check_adapter_dir(adapter)
    check_causal_lm(model_dir, adapter)
    rows = harness.rows_for(args.tasks, args.data, args.data_dir, args.nsmc_per_class)
    folder = harness.write_rows(rows, os.path.join(args.out, "rows"))
    scores = harness.evaluate(
        model_dir, list(rows), folder, adapter=adapter, batch_size=args.batch_size, limit=args.limit or None
    )
    report = {
        "model_dir": os.path.abspath(model_dir),
        "adapter": os.path.abspath(adapter) if adapter else None,
        "rows": {n: len(r) for n, r in rows.items()},
        "scores": scores,
        "lm_eval_command": harness.command(model_dir, list(rows), folder, adapter),
    }
    with open(os.path.join(args.out, "scores.json"), "w") as f:
        json.dump(report, f, indent=2, ensure_ascii=False)
    print(f"model: {model_dir}" + (f" + adapter {adapter}" if adapter else ""))
    for name, values in scores.items():
        print(f"{name:<10} ({len(rows[name])} rows)  " + "  ".join(f"{k} {v:.4f}" for k, v in sorted(values.items())))
    print(f"wrote {os.path.join(args.out, 'scores.json')}")
    return 0


def cmd_nemo_rl(args) -> int:
    from recipes import nemo_rl_steps

    cfg = _config(args.overrides)
    cfg.run.root = os.path.abspath(cfg.run.root)
    _prepare_environment(cfg)
    status = nemo_rl_steps.launch(cfg, args.step, dryrun=args.dryrun)
    if "_exp_dir" in status and args.dryrun:
        print(f"dry run: nothing was launched; generated files are under {status['_exp_dir']}")
    elif "_exp_dir" in status:
        failed = [k for k, v in status.items() if k != "_exp_dir" and "SUCCEEDED" not in v]
        if failed:
            print(f"error: NeMo-RL step {args.step} did not succeed: {status}", file=sys.stderr)
            return 1
    return 0


def _stage_list() -> str:
    """The stages, from their declarations: name, what it reads, what it does."""
    from stages import STAGES

    rows = [f"  {'pipeline':<10} every stage below, in this order"]
    for s in STAGES:
        reads = f" (reads {', '.join(s.upstream)})" if s.upstream else ""
        env = " [serving environment]" if s.env == "serve" else ""
        rows.append(f"  {s.name:<10} {s.about}{reads}{env}")
    return "\n".join(rows)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kollm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser(
        "run",
        help="run a recipe (the pipeline or one stage) through NeMo Run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the pipeline or one stage through NeMo Run, under the executor "
        "run.executor names (local, slurm, docker).\n\n" + _stage_list(),
    )
    r.add_argument("recipe", help="pipeline or a stage name")
    r.add_argument("overrides", nargs="*", help="preset=NAME and section.key=value overrides")
    r.add_argument("--dryrun", action="store_true", help="print what would be launched (e.g. the sbatch script)")
    _add_profile(r)
    r.set_defaults(fn=cmd_run)
    s = sub.add_parser(
        "stage",
        help="run one stage in this process (no NeMo Run)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run one stage in this process, without NeMo Run.\n\n" + _stage_list(),
    )
    s.add_argument("name", help="a stage name")
    s.add_argument("overrides", nargs="*")
    s.add_argument("--config", default="", help="a config.json written by a previous run")
    s.set_defaults(fn=cmd_stage)
    c = sub.add_parser("config", help="print the resolved config")
    c.add_argument("overrides", nargs="*")
    _add_profile(c)
    c.set_defaults(fn=cmd_config)
    e = sub.add_parser(
        "evaluate",
        help="evaluate any HF model folder (+ a PEFT adapter) on kollm's Korean tasks",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Score a causal LM on kollm's lm-evaluation-harness tasks (kollm/evaluate/lm_eval_tasks/): "
        "NSMC sentiment, KLUE-NLI, hate speech (accuracy, macro-F1, toxicity F1) and "
        "KLUE-STS (accuracy, Pearson, Spearman), with the model's chat template.\n"
        "Without --data, each task's test split comes from the Korean data (../shared/data "
        "or `kollm data download`), split as the pipeline splits it.",
    )
    e.add_argument(
        "model_dir",
        help="a causal LM: a HF model folder (config.json + safetensors), or a run's stage "
        "folder (runs/tiny/pretrain, runs/tiny/align): the model its manifest declares",
    )
    e.add_argument(
        "--adapter",
        default="",
        help="a PEFT adapter folder (finetune.head=lm) to apply on top, e.g. "
        "runs/tiny/finetune/nsmc/adapter after finetune.method=lora",
    )
    e.add_argument(
        "--tasks",
        nargs="+",
        default=["nsmc", "klue_nli", "hate", "klue_sts"],
        help="nsmc, klue_nli, hate, klue_sts (default: all)",
    )
    e.add_argument(
        "--data",
        default="",
        help="a JSONL of one task's rows (with --tasks NAME): that task's own "
        "columns, or text[, text_pair] + an integer label",
    )
    e.add_argument("--data-dir", default="", help="where the Korean data is (default: searched)")
    e.add_argument("--nsmc-per-class", type=int, default=1000, help="NSMC test reviews per class (0 = all)")
    e.add_argument("--limit", type=int, default=0, help="at most this many rows per task (0 = all)")
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--out", default="kollm_eval", help="folder for scores.json and the rows lm-eval read")
    e.set_defaults(fn=cmd_evaluate)
    n = sub.add_parser(
        "nemo-rl",
        help="run an alignment step on NeMo-RL (GPUs, its container) through NeMo Run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run one NeMo-RL step (sft, dpo, reward, grpo) on the config and data the run's "
        "align stage wrote (<run>/align/nemo_rl/), in run.nemo_rl_image (default "
        "nvcr.io/nvidia/nemo-rl:v0.7.0): run.executor=docker on this machine, slurm on one node "
        "(several: prints NeMo-RL's ray.sub command), local inside that container. "
        "The same run's align stage must be done (kollm run align ...).",
    )
    n.add_argument("step", help="sft, dpo, reward or grpo")
    n.add_argument("overrides", nargs="*", help="preset=NAME and section.key=value overrides (run.*)")
    n.add_argument("--dryrun", action="store_true", help="print what would be launched")
    _add_profile(n)
    n.set_defaults(fn=cmd_nemo_rl)
    ch = sub.add_parser(
        "chat",
        help="a streaming terminal chat with the served model (Triton) or a local folder",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Chat in the terminal. With --url, against a running Triton server (the serve "
        "stage with serve.keep_running=true, or TensorRT-LLM's llmapi model: --model "
        "tensorrt_llm); without, the model runs in this process. The history is sent "
        "in the model's chat template every turn. /reset clears it, /exit leaves.",
    )
    ch.add_argument("--url", default="", help="Triton's HTTP (host:8000) or gRPC (host:8001) address")
    ch.add_argument(
        "--protocol",
        choices=["auto", "http", "grpc"],
        default="auto",
        help="how to talk to --url (default auto: the port says which of Triton's two it is)",
    )
    ch.add_argument("--model", default="kollm", help="the Triton model; streaming uses MODEL_stream")
    ch.add_argument(
        "--model-dir",
        default="",
        help="the model folder (its tokenizer renders the chat template; without --url it is also what generates)",
    )
    ch.add_argument("--run", default="runs/tiny", help="a pipeline run whose served model to use (default runs/tiny)")
    ch.add_argument("--max-tokens", type=int, default=64)
    ch.add_argument(
        "--min-tokens",
        type=int,
        default=0,
        help="no end of answer before this many tokens (kollm's "
        "CPU model; TensorRT-LLM's Triton model has no such input)",
    )
    ch.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    ch.add_argument("--top-k", type=int, default=0)
    ch.add_argument("--top-p", type=float, default=1.0)
    ch.add_argument("--system", default="", help="a system message")
    ch.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the server")
    ch.add_argument("--ui", action="store_true", help="a Gradio chat in the browser instead of the terminal")
    ch.add_argument("--host", default="127.0.0.1", help="with --ui: the address to serve on (default loopback only)")
    ch.add_argument("--port", type=int, default=7860, help="with --ui: the port")
    ch.set_defaults(fn=cmd_chat)
    x = sub.add_parser(
        "export",
        help="the aligned model as a HF folder with a model card; --push to the Hub",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run (or reuse) the export stage: safetensors, tokenizer, generation config and "
        "a model card whose numbers come from the run's report. With --push REPO it "
        "uploads the folder through huggingface_hub (needs a token: `hf auth login`); "
        "--dry-run lists the files, sizes and sha256 it would upload, and where.",
    )
    x.add_argument("overrides", nargs="*", help="preset=NAME and run.* overrides (which run to export)")
    x.add_argument("--push", default="", metavar="REPO", help="a Hub repository id, owner/name")
    x.add_argument("--dry-run", action="store_true", help="with --push: list what would be uploaded, upload nothing")
    x.add_argument("--private", action="store_true", help="with --push: create the repository private")
    x.add_argument("--rerun", action="store_true", help="export again even if the stage is done")
    x.set_defaults(fn=cmd_export)
    t = sub.add_parser(
        "trtllm",
        help="serve the quantised checkpoint with TensorRT-LLM (GPUs, its container)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="On a GPU host, serve the quantize stage's checkpoint (trtllm.format) with "
        "TensorRT-LLM's PyTorch backend: `triton` (Triton's llmapi model, the same request "
        "contract as kollm's CPU model), `serve` (trtllm-serve, OpenAI-compatible) or "
        "`bench` (trtllm-bench throughput on Korean prompts), in trtllm.container: "
        "run.executor=docker here, slurm (pyxis) on a cluster, local inside the container.",
    )
    t.add_argument("action", help="triton, serve or bench")
    t.add_argument("overrides", nargs="*", help="preset=NAME, trtllm.* and run.* overrides")
    t.add_argument("--dryrun", action="store_true", help="write the files and print what would be launched")
    _add_profile(t)
    t.set_defaults(fn=cmd_trtllm)
    dr = sub.add_parser(
        "doctor",
        help="check this machine: Python, torch/CUDA, the environments' pins, NeMo Run, "
        "Curator, Megatron, tritonserver, Slurm, Docker, the data, disk",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Check what the demo and the GPU/cluster paths need, each with a fix when it is "
        "wrong. Exit status 0: the demo (make demo) can run here; 1: something it "
        "needs failed (warnings are paths this machine does not offer).",
    )
    dr.add_argument(
        "--data-dir", default="", help="the Korean data folder to check (default: searched as the data stage searches)"
    )
    dr.add_argument("--root", default="runs", help="where runs go (its disk is checked)")
    dr.add_argument("--json", action="store_true", help="the checks as JSON")
    _add_profile(dr)
    dr.set_defaults(fn=cmd_doctor)
    d = sub.add_parser("data", help="dataset commands")
    dsub = d.add_subparsers(dest="data_command", required=True)
    dl = dsub.add_parser("download", help="download NSMC, KLUE and korean-hate-speech (resumable, checksummed)")
    dl.add_argument("--dest", default="", help="target directory (default: the user cache)")
    dl.add_argument("--mirror", default="", help="base URL of a server holding kollm's data layout")
    dl.set_defaults(fn=cmd_download)
    return p


def _add_profile(sub_parser) -> None:
    sub_parser.add_argument(
        "--profile",
        default="",
        metavar="FILE",
        help="a cluster profile (account, partition, images, mounts, tunnel; recipes/cluster.py); "
        "default: $KOLLM_PROFILE, else ~/.config/kollm/cluster.yaml if it exists",
    )


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args, extra = p.parse_known_args(argv)
    # overrides may also follow an option (`kollm stage serve --config run/config.json run.force=true`)
    if extra:
        if not hasattr(args, "overrides") or any(e.startswith("-") or "=" not in e for e in extra):
            p.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides += extra
    if getattr(args, "profile", "") and hasattr(args, "overrides"):
        args.overrides.insert(0, f"run.profile={args.profile}")
    try:
        return args.fn(args)
    except KollmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
