"""`kollm data download` against real HTTP servers on 127.0.0.1 serving the real data."""

import gzip
import io
import json
import os
import shutil
import tarfile

import pytest

from kollm.core.errors import KollmError
from kollm.core.io import sha256_file
from kollm.data import download, sources
from tests.http_fixture import FileServer


def test_mirror_download_is_complete_and_verified(data_dir, tmp_path):
    dest = tmp_path / "cache"
    with FileServer(data_dir) as server:
        done = download.download_mirror(server.url, str(dest))
    assert set(sources.REQUIRED) <= set(done)
    assert sources.resolve_data_dir(str(dest)) == str(dest)
    for rel in done:
        assert sha256_file(str(dest / rel)) == sources.FILES[rel][0]
    # the downloaded copy reads exactly like the original
    assert sum(1 for _ in sources.iter_nsmc(str(dest))) == 676624


def test_interrupted_download_resumes_with_range(data_dir, tmp_path):
    rel = "korean_hate_speech/labeled_train.tsv.gz"
    with FileServer(data_dir, cut_after=100_000) as server:
        with pytest.raises(KollmError, match="run the command again to resume"):
            download.download_mirror(server.url, str(tmp_path), files=[rel])
        assert os.path.getsize(tmp_path / (rel + ".part")) == 100_000
        download.download_mirror(server.url, str(tmp_path), files=[rel])
        assert ("/" + rel, "bytes=100000-") in server.handler.requests
    assert sha256_file(str(tmp_path / rel)) == sources.FILES[rel][0]
    assert not os.path.exists(tmp_path / (rel + ".part"))


def test_corrupted_source_is_refused(data_dir, tmp_path):
    rel = "klue/klue-sts-v1.1_dev.json.gz"
    bad_root = tmp_path / "mirror"
    (bad_root / "klue").mkdir(parents=True)
    blob = bytearray(open(os.path.join(data_dir, rel), "rb").read())
    blob[1000] ^= 0xFF
    (bad_root / rel).write_bytes(bytes(blob))
    with FileServer(str(bad_root)) as server:
        with pytest.raises(KollmError, match="checksum mismatch for klue/klue-sts-v1.1_dev.json.gz"):
            download.download_mirror(server.url, str(tmp_path / "dest"), files=[rel])
    assert not os.path.exists(tmp_path / "dest" / rel)  # never installed


def test_unreachable_server_is_one_clear_error(tmp_path):
    with pytest.raises(KollmError, match="download failed: http://127.0.0.1:9/"):
        download.download_mirror("http://127.0.0.1:9", str(tmp_path), files=["klue/klue-sts-v1.1_dev.json.gz"])


def _upstream_layout(data_dir, root, movies=3):
    """Re-create the upstream repositories' files from the real data: e9t/nsmc raw/<movie>.json
    in a GitHub tarball, plain (not gzipped) KLUE and korean-hate-speech files."""
    by_movie = {}
    for r in sources.iter_nsmc(data_dir, limit=3000):
        by_movie.setdefault(r["movie_id"], []).append(r)
    chosen = dict(list(by_movie.items())[:movies])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for movie, rows in chosen.items():
            raw = [
                {
                    "review": r["text"],
                    "date": r["date"],
                    "rating": str(r["rating"]),
                    "author": "abcd****",
                    "review_id": str(r["review_id"]),
                    "movie_id": str(movie),
                }
                for r in rows
            ]
            blob = json.dumps(raw, ensure_ascii=False, indent=2).encode()
            info = tarfile.TarInfo(f"nsmc-{download.NSMC_COMMIT}/raw/{movie}.json")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    overrides = {}
    (root / "nsmc.tar.gz").write_bytes(buf.getvalue())
    overrides["nsmc/reviews.jsonl.gz"] = "nsmc.tar.gz"
    for rel in download.UPSTREAM:
        if rel.startswith("nsmc/"):
            continue
        plain = rel.removesuffix(".gz").replace("/", "_")
        with gzip.open(os.path.join(data_dir, rel), "rb") as f:
            (root / plain).write_bytes(f.read())
        overrides[rel] = plain
    return chosen, overrides


def test_upstream_download_converts_to_the_canonical_layout(data_dir, tmp_path):
    root = tmp_path / "upstream"
    root.mkdir()
    chosen, overrides = _upstream_layout(data_dir, root)
    dest = tmp_path / "dest"
    with FileServer(str(root)) as server:
        urls = {rel: f"{server.url}/{name}" for rel, name in overrides.items()}
        download.download_upstream(str(dest), overrides=urls)
        rows = list(sources.iter_nsmc(str(dest)))
        assert len(rows) == sum(len(v) for v in chosen.values())
        assert {r["movie_id"] for r in rows} == set(chosen)
        assert all(set(r) == {"review_id", "movie_id", "rating", "date", "text"} for r in rows)  # author dropped
        original = {r["review_id"]: r for v in chosen.values() for r in v}
        assert all(original[r["review_id"]]["text"] == r["text"] for r in rows)
        # non-NSMC files decompress to exactly the upstream bytes
        for rel in ("klue/klue-nli-v1.1_dev.json.gz", "korean_hate_speech/labeled_dev.tsv.gz"):
            assert gzip.open(dest / rel).read() == gzip.open(os.path.join(data_dir, rel)).read()
        lock = json.load(open(dest / "sources.lock.json"))
        assert set(lock) == set(download.UPSTREAM)
        # a second run is a no-op; a changed upstream file is refused against the lock
        n = len(server.handler.requests)
        download.download_upstream(str(dest), overrides=urls)
        assert len(server.handler.requests) == n
        os.unlink(dest / "klue/klue-nli-v1.1_dev.json.gz")
        (root / overrides["klue/klue-nli-v1.1_dev.json.gz"]).write_bytes(b"[]")
        with pytest.raises(KollmError, match="checksum mismatch"):
            download.download_upstream(str(dest), overrides=urls)
    shutil.rmtree(dest)
