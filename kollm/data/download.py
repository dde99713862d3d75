"""`kollm data download`: fetch the Korean datasets from their public sources.

Two kinds of source:
- a mirror (`--mirror URL`): any HTTP server holding kollm's canonical layout (the same
  files as ../shared/data). Every file is checked against a pinned SHA-256.
- the original upstream repositories (default): e9t/nsmc (per-movie raw crawl, CC0),
  KLUE-benchmark/KLUE (dev sets) and kocohub/korean-hate-speech, converted here into the
  canonical layout. Upstream bytes have no pinned checksum; the SHA-256 of each download is
  recorded in `sources.lock.json` and verified on later downloads.

Downloads resume from `*.part` files with HTTP Range requests and show a progress bar.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
import urllib.error
import urllib.request

from tqdm import tqdm

from kollm.core.errors import KollmError
from kollm.core.io import atomic_open, sha256_file, write_json
from kollm.data.sources import FILES, cache_dir

NSMC_COMMIT = "b6232e69290a826104357381560e18adbad23473"
GITHUB = "https://codeload.github.com"
RAW = "https://raw.githubusercontent.com"

# canonical path -> (upstream URL, how to turn the upstream bytes into the canonical file)
UPSTREAM: dict[str, tuple[str, str]] = {
    "nsmc/reviews.jsonl.gz": (f"{GITHUB}/e9t/nsmc/tar.gz/{NSMC_COMMIT}", "nsmc_raw_tarball"),
    "klue/klue-ner-v1.1_dev.tsv.gz": (
        f"{RAW}/KLUE-benchmark/KLUE/main/klue_benchmark/klue-ner-v1.1/klue-ner-v1.1_dev.tsv",
        "gzip",
    ),
    "klue/klue-dp-v1.1_dev.tsv.gz": (
        f"{RAW}/KLUE-benchmark/KLUE/main/klue_benchmark/klue-dp-v1.1/klue-dp-v1.1_dev.tsv",
        "gzip",
    ),
    "klue/klue-nli-v1.1_dev.json.gz": (
        f"{RAW}/KLUE-benchmark/KLUE/main/klue_benchmark/klue-nli-v1.1/klue-nli-v1.1_dev.json",
        "gzip",
    ),
    "klue/klue-sts-v1.1_dev.json.gz": (
        f"{RAW}/KLUE-benchmark/KLUE/main/klue_benchmark/klue-sts-v1.1/klue-sts-v1.1_dev.json",
        "gzip",
    ),
    "korean_hate_speech/labeled_train.tsv.gz": (f"{RAW}/kocohub/korean-hate-speech/master/labeled/train.tsv", "gzip"),
    "korean_hate_speech/labeled_dev.tsv.gz": (f"{RAW}/kocohub/korean-hate-speech/master/labeled/dev.tsv", "gzip"),
    "korean_hate_speech/unlabeled_comments_5.txt.gz": (
        f"{RAW}/kocohub/korean-hate-speech/master/unlabeled/unlabeled_comments_5.txt",
        "gzip",
    ),
}


def fetch(url: str, dest: str, expected_size: int = 0, timeout: float = 60.0) -> str:
    """Download `url` to `dest`, resuming from `dest.part`; returns dest. Progress on stderr."""
    part = dest + ".part"
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    have = os.path.getsize(part) if os.path.exists(part) else 0
    if expected_size and have >= expected_size:
        os.replace(part, dest)
        return dest
    request = urllib.request.Request(url, headers={"User-Agent": "kollm-download"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the part file is already complete
            os.replace(part, dest)
            return dest
        raise KollmError(f"download failed: {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise KollmError(f"download failed: {url}: {reason}") from None
    with response:
        if have and response.status != 206:  # server ignored Range: start over
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length else (expected_size or None)
        mode = "ab" if have else "wb"
        with (
            open(part, mode) as out,
            tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=os.path.basename(dest), leave=False) as bar,
        ):
            while True:
                try:
                    block = response.read(1 << 16)
                except (OSError, ValueError) as e:
                    raise KollmError(f"download interrupted: {url}: {e}; run the command again to resume") from None
                if not block:
                    break
                out.write(block)
                bar.update(len(block))
    if expected_size and os.path.getsize(part) < expected_size:
        raise KollmError(
            f"download incomplete: {url} ({os.path.getsize(part)} of {expected_size} bytes); "
            "run the command again to resume"
        )
    os.replace(part, dest)
    return dest


def _verify(path: str, expected: str, what: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        bad = path + ".bad"
        os.replace(path, bad)
        raise KollmError(
            f"checksum mismatch for {what}: expected sha256 {expected[:12]}…, got {actual[:12]}… "
            f"(kept as {bad}); the source changed or the transfer was corrupted"
        )


def download_mirror(mirror: str, dest: str, files: list[str] | None = None) -> list[str]:
    """Fetch the canonical layout from a mirror into dest, verifying pinned checksums."""
    done = []
    for rel in files or list(FILES):
        sha, size, required = FILES[rel]
        target = os.path.join(dest, rel)
        if os.path.exists(target) and sha256_file(target) == sha:
            done.append(rel)
            continue
        url = mirror.rstrip("/") + "/" + rel
        try:
            fetch(url, target, expected_size=size)
        except KollmError:
            if not required:
                print(f"skipped optional {rel} (not on the mirror)")
                continue
            raise
        _verify(target, sha, rel)
        done.append(rel)
    return done


def _lock_path(dest: str) -> str:
    return os.path.join(dest, "sources.lock.json")


def download_upstream(dest: str, overrides: dict[str, str] | None = None) -> list[str]:
    """Fetch every dataset from its original repository and convert it into the canonical layout.

    `overrides` maps canonical paths to other upstream URLs (tests point them at 127.0.0.1).
    """
    lock = json.load(open(_lock_path(dest))) if os.path.exists(_lock_path(dest)) else {}
    raw_dir = os.path.join(dest, ".upstream")
    done = []
    for rel, (url, convert) in UPSTREAM.items():
        url = (overrides or {}).get(rel, url)
        target = os.path.join(dest, rel)
        if os.path.exists(target) and rel in lock and lock[rel].get("converted_sha256") == sha256_file(target):
            done.append(rel)
            continue
        raw = os.path.join(raw_dir, rel + ".upstream")
        fetch(url, raw)
        sha = sha256_file(raw)
        if rel in lock and lock[rel]["sha256"] != sha:
            _verify(raw, lock[rel]["sha256"], f"{rel} from {url}")
        CONVERTERS[convert](raw, target)
        lock[rel] = {"url": url, "sha256": sha, "converted_sha256": sha256_file(target)}
        write_json(_lock_path(dest), lock)
        os.unlink(raw)
        done.append(rel)
    shutil.rmtree(raw_dir, ignore_errors=True)
    return done


def _gzip(src: str, dst: str) -> None:
    with open(src, "rb") as fin, atomic_open(dst, "wb") as raw_out:
        with gzip.GzipFile(fileobj=raw_out, mode="wb", mtime=0) as out:
            shutil.copyfileobj(fin, out)


def _nsmc_from_raw_tarball(src: str, dst: str) -> None:
    """e9t/nsmc's raw/<movie_id>.json crawl files -> reviews.jsonl.gz (author names dropped)."""
    rows = []
    with tarfile.open(src, "r:*") as tar:
        members = [m for m in tar.getmembers() if m.isfile() and "/raw/" in "/" + m.name and m.name.endswith(".json")]
        for member in tqdm(members, desc="nsmc raw files", unit="file", leave=False):
            try:
                member_file = tar.extractfile(member)
                assert member_file is not None  # a regular file (isfile above)
                reviews = json.load(io.TextIOWrapper(member_file, encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise KollmError(f"{src}:{member.name}: not a valid NSMC raw file ({e})") from None
            for r in reviews:
                rows.append(
                    {
                        "review_id": int(r["review_id"]),
                        "movie_id": int(r["movie_id"]),
                        "rating": int(r["rating"]),
                        "date": r.get("date", ""),
                        "text": r["review"],
                    }
                )
    rows.sort(key=lambda r: r["review_id"])
    with atomic_open(dst, "wb") as raw_out:
        with gzip.GzipFile(fileobj=raw_out, mode="wb", mtime=0) as out:
            for r in rows:
                out.write((json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8"))


CONVERTERS = {"gzip": _gzip, "nsmc_raw_tarball": _nsmc_from_raw_tarball}


def default_dest() -> str:
    return cache_dir()
