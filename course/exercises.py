"""연습 문제(exercises) 만들기와 채점: the skeletons of course/scratch/*.py, and the check that runs the pieces' tests
against a learner's files.

    python -m course.exercises list                     the pieces, in learning order
    python -m course.exercises make DIR                 write every piece's skeleton into DIR (never overwrites)
    python -m course.exercises check PIECE [--dir DIR]  PASS or FAIL: the piece's tests on DIR/PIECE.py

A skeleton keeps each file whole except the bodies of the functions whose docstring has a `힌트:` (hint) line: those
become `raise NotImplementedError("힌트: ...")`. The solutions in course/scratch/ and the learner's files are checked
by the same tests (tests/test_scratch_<piece>.py), which load the piece with `course.scratch.load`.
"""

from __future__ import annotations

import argparse
import ast
import os
import subprocess
import sys

from course import scratch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
HINT = "힌트:"


def _hint(docstring: str) -> str | None:
    """The hint paragraph of a docstring (from its `힌트:` line to the next blank line), as one line."""
    lines = docstring.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith(HINT):
            paragraph = [line.strip()]
            for more in lines[i + 1 :]:
                if not more.strip():
                    break
                paragraph.append(more.strip())
            return " ".join(paragraph)
    return None


def skeleton(source: str) -> tuple[str, list[str]]:
    """`source` with every hinted function's body replaced by `raise NotImplementedError(<hint>)`, and the names of
    those functions (Class.method for methods)."""
    tree = ast.parse(source)
    targets: list[tuple[int, int, int, str, str]] = []  # (first body line, last line, indent, hint, name)

    def visit(node: ast.AST, owner: str, inside_target: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(child)
                hint = _hint(doc) if doc else None
                name = f"{owner}{child.name}"
                if hint and not inside_target:
                    body = child.body[1:]  # after the docstring
                    if not body:
                        raise ValueError(f"{name}: a hinted function needs a body to hide")
                    end = child.end_lineno or body[-1].end_lineno or body[-1].lineno
                    targets.append((body[0].lineno, end, body[0].col_offset, hint, name))
                visit(child, f"{name}.", inside_target or bool(hint))
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{owner}{child.name}.", inside_target)
            else:
                visit(child, owner, inside_target)

    visit(tree, "", False)
    lines = source.splitlines()
    for first, last, indent, hint, _ in sorted(targets, reverse=True):
        lines[first - 1 : last] = [" " * indent + f"raise NotImplementedError({hint!r})"]
    return "\n".join(lines) + "\n", [t[4] for t in targets]


def make(folder: str, pieces: tuple[str, ...] = scratch.PIECES) -> list[str]:
    """Write the skeleton of each piece into `folder`; a file already there (a learner's work) is left alone."""
    os.makedirs(folder, exist_ok=True)
    written = []
    for piece in pieces:
        dest = os.path.join(folder, f"{piece}.py")
        if os.path.exists(dest):
            print(f"kept {dest}: it exists (your work is never overwritten; delete it to start the piece again)")
            continue
        with open(os.path.join(HERE, "scratch", f"{piece}.py"), encoding="utf-8") as f:
            text, hidden = skeleton(f.read())
        with open(dest, "w", encoding="utf-8") as f:
            f.write(text)
        written.append(dest)
        print(f"wrote {dest}: {len(hidden)} to write ({', '.join(hidden)})")
    return written


def test_file(piece: str) -> str:
    return os.path.join(REPO, "tests", f"test_scratch_{piece}.py")


def check(piece: str, folder: str | None) -> int:
    """Run the piece's tests on `folder`/piece.py (or the solution); print PASS or FAIL and the first hint met."""
    env = dict(os.environ)
    if folder:
        env[scratch.EXERCISE_DIR_ENV] = os.path.abspath(folder)
    else:
        env.pop(scratch.EXERCISE_DIR_ENV, None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--no-header", test_file(piece)]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    where = os.path.join(folder, f"{piece}.py") if folder else f"course/scratch/{piece}.py"
    if done.returncode == 0:
        print(f"PASS {piece}: {where} passes {os.path.relpath(test_file(piece), REPO)}")
        return 0
    output = done.stdout + done.stderr
    hints = [line for line in output.splitlines() if "NotImplementedError: " + HINT in line]
    failed = [line for line in output.splitlines() if line.startswith(("FAILED", "ERROR"))]
    print(f"FAIL {piece}: {where} does not pass {os.path.relpath(test_file(piece), REPO)}")
    if hints:
        print("  still to write: " + hints[0].split("NotImplementedError: ", 1)[1])
    elif failed:
        print("  " + failed[0])
    print(f"  details: {' '.join(cmd[2:])} (with {scratch.EXERCISE_DIR_ENV}={env.get(scratch.EXERCISE_DIR_ENV, '')})")
    return 1


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m course.exercises", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the pieces in learning order")
    p_make = sub.add_parser("make", help="write the skeletons into a folder (existing files are kept)")
    p_make.add_argument("folder")
    p_make.add_argument("--pieces", nargs="+", choices=scratch.PIECES, default=list(scratch.PIECES))
    p_check = sub.add_parser("check", help="run a piece's tests on your file: PASS or FAIL")
    p_check.add_argument("piece", choices=scratch.PIECES)
    p_check.add_argument("--dir", default=None, help="your folder of pieces (default: the solutions in course/scratch)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "list":
        for piece in scratch.PIECES:
            print(f"{piece:10s} course/scratch/{piece}.py  checked by tests/test_scratch_{piece}.py")
        return 0
    if args.command == "make":
        make(args.folder, tuple(args.pieces))
        return 0
    if args.dir and not os.path.isfile(os.path.join(args.dir, f"{args.piece}.py")):
        print(
            f"error: {os.path.join(args.dir, args.piece + '.py')} does not exist (make it: python -m course.exercises make {args.dir})"
        )
        return 2
    return check(args.piece, args.dir)


if __name__ == "__main__":
    sys.exit(main())
