"""Small file helpers: JSONL with line-numbered errors, atomic writes."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator

from kollm.core.errors import KollmError


def open_text(path: str):
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def read_jsonl(path: str, required: tuple[str, ...] = ()) -> Iterator[dict]:
    """Yield objects from a JSONL(.gz) file; a bad line is a KollmError naming file and line."""
    if not os.path.exists(path):
        raise KollmError(f"{path}: no such file")
    try:
        with open_text(path) as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise KollmError(f"{path}:{lineno}: malformed JSON line ({e.msg})") from None
                if not isinstance(obj, dict):
                    raise KollmError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
                missing = [k for k in required if k not in obj]
                if missing:
                    raise KollmError(f"{path}:{lineno}: missing field(s) {', '.join(missing)}")
                yield obj
    except UnicodeDecodeError as e:
        raise KollmError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
    except (OSError, EOFError) as e:
        raise KollmError(f"{path}: cannot read ({e})") from None


def write_jsonl(path: str, rows: Iterable[dict]) -> int:
    n = 0
    with atomic_open(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


class atomic_open:
    """Write to a temp file in the same folder, rename over the target on success."""

    def __init__(self, path: str, mode: str = "w"):
        self.path, self.mode = path, mode

    def __enter__(self):
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-" + os.path.basename(self.path))
        self.f = os.fdopen(fd, self.mode, **({} if "b" in self.mode else {"encoding": "utf-8"}))
        return self.f

    def __exit__(self, exc_type, exc, tb):
        self.f.close()
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            os.unlink(self.tmp)
        return False


def write_json(path: str, obj) -> None:
    with atomic_open(path) as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write("\n")


def read_json(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def sha256_file(path: str) -> str:
    """SHA-256 of a file's content: what it holds, whenever and however often it was written."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def line_ranges(path: str, lines_per_range: int) -> list[tuple[int, int, int, int]]:
    """(start byte, end byte, first line number, lines) of consecutive ranges of whole lines
    (one empty range for an empty file)."""
    ranges, start, first, count, offset = [], 0, 1, 0, 0
    with open(path, "rb") as f:
        for raw in f:
            offset += len(raw)
            count += 1
            if count == lines_per_range:
                ranges.append((start, offset, first, count))
                start, first, count = offset, first + count, 0
    if count or not ranges:
        ranges.append((start, offset, first, count))
    return ranges
