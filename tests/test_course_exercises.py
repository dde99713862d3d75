"""The course's exercises: skeletons made from the pieces in course/scratch/, checked by the same tests as the
pieces. A learner's skeleton fails its check with the hint of what to write; the piece passes it."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from course import exercises, scratch
from tests.conftest import REPO

SOURCE = '''"""A module."""

import math


def keep(x):
    """No hint here: stays as written."""
    return x + 1


def area(r):
    """원의 넓이.

    힌트: 넓이는 pi * r ** 2 입니다.
    math.pi를 쓰세요.

    Returns a float.
    """
    squared = r * r
    return math.pi * squared


class Circle:
    def __init__(self, r):
        self.r = r

    def perimeter(self):
        """둘레.

        힌트: 2 * pi * r
        """

        def helper():
            """힌트: not reached: the method around it is already hidden."""
            return 2 * math.pi

        return helper() * self.r
'''


def test_a_skeleton_hides_the_hinted_bodies_and_keeps_the_rest(tmp_path):
    text, hidden = exercises.skeleton(SOURCE)
    assert hidden == ["area", "Circle.perimeter"]  # outermost hinted functions only, methods named by their class
    ns: dict = {}
    exec(compile(text, "skeleton.py", "exec"), ns)  # still a module that imports and defines everything
    assert ns["keep"](1) == 2 and ns["Circle"](2).r == 2
    with pytest.raises(NotImplementedError, match=r"^힌트: 넓이는 pi \* r \*\* 2 입니다. math.pi를 쓰세요.$"):
        ns["area"](1.0)
    with pytest.raises(NotImplementedError, match=r"힌트: 2 \* pi \* r"):
        ns["Circle"](1).perimeter()
    assert "math.pi * squared" not in text and '"""원의 넓이.' in text  # the docstring stays: it is the task
    ns_solution: dict = {}
    exec(compile(SOURCE, "solution.py", "exec"), ns_solution)
    assert ns_solution["area"](1.0) == pytest.approx(3.14159265)


def test_every_piece_has_a_skeleton_to_write_and_a_test_that_checks_it():
    for piece in scratch.PIECES:
        path = os.path.join(REPO, "course", "scratch", f"{piece}.py")
        with open(path, encoding="utf-8") as f:
            text, hidden = exercises.skeleton(f.read())
        assert hidden, f"{piece}: no function has a 힌트: line, so its exercise would have nothing to write"
        compile(text, path, "exec")
        assert os.path.isfile(exercises.test_file(piece)), piece


def test_make_writes_the_skeletons_and_never_overwrites_a_learners_file(tmp_path, capsys):
    folder = tmp_path / "mine"
    written = exercises.make(str(folder))
    assert sorted(os.path.basename(p) for p in written) == sorted(f"{p}.py" for p in scratch.PIECES)
    mine = folder / "autograd.py"
    mine.write_text("# my half-written work\n", encoding="utf-8")
    assert exercises.make(str(folder)) == []
    assert mine.read_text(encoding="utf-8") == "# my half-written work\n"
    assert "your work is never overwritten" in capsys.readouterr().out


def test_each_pieces_check_fails_on_its_skeleton_with_a_hint(tmp_path):
    """All the pieces' tests, run once on the skeletons (one pytest process, each file stopped at its first failure):
    every piece's file fails, and with the hint of what to write. (On the solutions the same files pass: they run in
    this suite.)"""
    folder = tmp_path / "skeletons"
    exercises.make(str(folder))
    report = tmp_path / "report.xml"
    env = dict(os.environ, **{scratch.EXERCISE_DIR_ENV: str(folder)})
    files = [exercises.test_file(p) for p in scratch.PIECES]
    plugin = ["-p", "tests.first_failure_per_file"]
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin, f"--junitxml={report}", *files]
    subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    outcome: dict[str, list[str]] = {p: [] for p in scratch.PIECES}
    for case in ET.parse(report).getroot().iter("testcase"):
        module = [part for part in case.get("classname", "").split(".") if part.startswith("test_scratch_")]
        piece = module[0].removeprefix("test_scratch_")
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            outcome[piece].append(problem.get("message", "") + (problem.text or ""))
        else:
            outcome[piece].append("skipped" if case.find("skipped") is not None else "passed")
    for piece, results in outcome.items():
        failures = [r for r in results if r not in ("passed", "skipped")]
        assert failures, f"{piece}: its tests pass on the skeleton, so they cannot tell a learner's work from none"
        assert any("NotImplementedError: 힌트:" in f for f in failures), (piece, failures[0][:500])


def test_the_check_command_says_pass_for_the_piece_and_fail_with_the_hint_for_the_skeleton(tmp_path):
    folder = tmp_path / "mine"
    exercises.make(str(folder), ("autograd",))
    run = [sys.executable, "-m", "course.exercises", "check", "autograd"]
    done = subprocess.run(run, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.startswith("PASS autograd"), done.stdout + done.stderr
    done = subprocess.run([*run, "--dir", str(folder)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and done.stdout.startswith("FAIL autograd"), done.stdout + done.stderr
    assert "still to write: 힌트:" in done.stdout
    done = subprocess.run([*run, "--dir", str(tmp_path / "none")], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout.startswith("error: ") and "Traceback" not in done.stderr
