"""Every command the README and the docs quote runs in a cheap form: kollm commands parse and their
overrides resolve to a valid config (what a dry run checks first), benchmark scripts answer --help, make
targets exist (make -n), lm_eval knows every option quoted; commands for other machines (docker, enroot,
curl against a running server) are named as such. A quoted command that no longer parses fails here."""

import functools
import glob
import os
import re
import shlex
import subprocess
import sys

import pytest

from tests.conftest import REPO

PAGES = [
    "README.md",
    *sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "**", "*.md"), recursive=True)),
    *sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "*", "README.md"))),
]
# programs whose commands need another machine or a running server: quoted, not run here
ELSEWHERE = {"docker", "enroot", "curl"}
# inline `code` is a command when it starts like one; placeholders (UPPERCASE words, <x>, a|b, ...) are
# parsed up to the subcommand only
STARTS = (
    "kollm ",
    ".venv/bin/kollm ",
    "make ",
    "python benchmarks/",
    ".venv/bin/python benchmarks/",
    "lm_eval ",
    "python -m course",
)
PLACEHOLDER = re.compile(r"\.\.\.|<[^>]+>|\||\b[A-Z][A-Z_/]{2,}\b")


def quoted_commands() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        text = open(os.path.join(REPO, page), encoding="utf-8").read()
        for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", text, re.S):
            block = re.sub(r"\\\n\s*", " ", block)
            for line in block.splitlines():
                line = re.split(r"\s+#\s", line)[0].strip()
                if line and not line.startswith("#"):
                    found.append((page, line))
        prose = re.sub(r"```.*?```", "", text, flags=re.S)
        for code in re.findall(r"`([^`\n]+)`", prose):
            if code.startswith(STARTS):
                found.append((page, code.replace("\\|", "|")))
    return list(dict.fromkeys(found))


def _parts(line: str) -> list[list[str]]:
    """`a && b | c` -> the commands a and b (what a pipe feeds is not the command quoted)."""
    out = []
    for part in line.split("&&"):
        words = shlex.split(part.split(" | ")[0])
        if words:
            out.append(words)
    return out


@functools.cache
def _help(script: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, script, "--help"], cwd=REPO, capture_output=True, text=True, timeout=300)


def check_kollm(words: list[str], placeholder: bool) -> None:
    from kollm.core.errors import KollmError
    from recipes import cli

    parser = cli.parser()
    if placeholder:  # e.g. `kollm trtllm triton|serve|bench`: the subcommand must exist
        sub = next(w for w in words if not w.startswith("-"))
        assert sub in parser._subparsers._group_actions[0].choices, f"no kollm subcommand {sub!r}"
        return
    try:
        args, extra = parser.parse_known_args(words)
    except SystemExit as e:
        if e.code == 0:  # `kollm run --help`: printed its help
            return
        raise AssertionError(f"kollm {' '.join(words)}: does not parse") from e
    assert all("=" in e and not e.startswith("-") for e in extra), f"unrecognised arguments {extra}"
    overrides = [*getattr(args, "overrides", []), *extra]
    if getattr(args, "profile", ""):  # the quoted profile lives on a cluster; its keys are tested elsewhere
        overrides = [o for o in overrides if not o.startswith("run.profile=")]
    if args.command in ("run", "stage", "config", "nemo-rl", "trtllm", "export"):
        try:
            cfg = cli._config(overrides)
        except KollmError as e:
            raise AssertionError(f"kollm {' '.join(words)}: {e}") from None
        from stages import NAMES

        if args.command == "run":
            assert args.recipe in ["pipeline", *NAMES], args.recipe
        if args.command == "stage":
            assert args.name in NAMES, args.name
        if args.command == "nemo-rl":
            from aligner.nemo_rl import STEPS

            assert args.step in STEPS, args.step
        if args.command == "trtllm":
            assert args.action in ("triton", "serve", "bench"), args.action
        assert cfg is not None


def line_of(words: list[str]) -> str:
    return " ".join(words)


def check(words: list[str], placeholder: bool) -> None:
    program = words[0]
    if program in ("kollm", ".venv/bin/kollm"):
        return check_kollm(words[1:], placeholder)
    if program in ("python", ".venv/bin/python", "python3"):
        if words[1:2] == ["-m"]:
            if words[2].startswith("course"):  # the course's modules: they exist, and the exercise command parses
                import importlib.util

                assert importlib.util.find_spec(words[2]) is not None, f"no module {words[2]}"
                if words[2] == "course.exercises" and not placeholder:
                    from course import exercises

                    assert exercises.parser().parse_args(words[3:]).command, line_of(words)
            return  # `python -m nemo_run...`: how containers run tasks, named in prose
        script = words[1]
        assert os.path.isfile(os.path.join(REPO, script)), f"{script} does not exist"
        proc = _help(script)
        assert proc.returncode == 0 and "usage" in proc.stdout.lower(), f"{script} --help: {proc.stderr[-800:]}"
        for option in (w.split("=")[0] for w in words[2:] if w.startswith("--")):
            assert option in proc.stdout, f"{script} has no option {option}"
        return
    if program == "make":
        targets = [w for w in words[1:] if "=" not in w]
        proc = subprocess.run(["make", "-n", *targets], cwd=REPO, capture_output=True, text=True)
        assert proc.returncode == 0, f"make {' '.join(targets)}: {proc.stderr}"
        return
    if program == "lm_eval":
        lm_eval = os.path.join(os.path.dirname(sys.executable), "lm_eval")
        # without a subcommand lm-eval inserts `run`, whose options are these
        proc = subprocess.run([lm_eval, "run", "--help"], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-800:]
        for option in (w for w in words[1:] if w.startswith("--")):
            assert option in proc.stdout, f"lm_eval has no option {option}"
        if not placeholder:
            tasks = words[words.index("--tasks") + 1].split(",")
            shipped = {
                os.path.basename(p)[:-5]
                for p in glob.glob(os.path.join(REPO, "kollm", "evaluate", "lm_eval_tasks", "*.yaml"))
            }
            assert set(tasks) <= shipped, f"tasks {set(tasks) - shipped} are not in kollm/evaluate/lm_eval_tasks"
        return
    assert program in ELSEWHERE, f"{program!r}: a quoted command this test does not know how to check"
    if program == "docker" and words[1] == "build":
        assert os.path.isfile(os.path.join(REPO, words[words.index("-f") + 1]))


COMMANDS = quoted_commands()


def test_the_pages_quote_commands():
    pages = {p for p, _ in COMMANDS}
    assert "README.md" in pages and any(p.startswith("docs/workshop/") for p in pages)
    assert len([1 for p, _ in COMMANDS if p.startswith("docs/workshop/")]) >= 30


@pytest.mark.parametrize("page, line", COMMANDS, ids=[f"{p}: {c[:60]}" for p, c in COMMANDS])
def test_quoted_command_runs_in_a_cheap_form(page, line):
    placeholder = bool(PLACEHOLDER.search(line))
    for words in _parts(line):
        check(words, placeholder)


def test_a_broken_command_is_caught():
    with pytest.raises(AssertionError, match="unknown override key"):
        check(["kollm", "run", "pretrain", "preset=tiny", "pretrain.stepz=5"], False)
    with pytest.raises(AssertionError, match="does not parse"):
        check(["kollm", "evaluate"], False)
    with pytest.raises(AssertionError, match="no option --nope"):
        check(["python", "benchmarks/render.py", "--nope"], False)
    with pytest.raises(AssertionError, match="does not know how"):
        check(["kolm", "run"], False)
