"""Korean curation: kollm's NeMo Curator pipeline vs datatrove's equivalent, in one run.

    .venv/bin/python benchmarks/curation.py            # full bundled corpus + planted set
    .venv/bin/python benchmarks/curation.py --docs 50000   # a quicker look (not written to results)

Two corpora, both given to both tools as the same 8 JSONL files:
  full     every NSMC review (~677k) + the unlabelled web comments (~34k): docs/s, peak RSS.
  planted  30k NSMC reviews, pairwise dissimilar (no two with character-3-gram Jaccard >= 0.3,
           checked exactly on all pairs a very sensitive LSH proposes), plus 3,000 near-copies of
           them made the way reposts differ: spacing, trailing punctuation / ㅋㅋ / emoticons,
           stretched characters, an added word, one syllable typo or deletion. Ground truth is
           the copy -> original map, so dedup precision and recall are exact.

Both tools run the same work: NFC + PII redaction, the same Korean filters (datatrove gets
them as LambdaFilters; its stock filters are English-only), the same fastText language id
and toxicity model (batched in both), then near-dedup: kollm's MinHash (char 3-grams,
exact Jaccard check) vs datatrove's MinhashDedup* with its Korean setting (Kiwi word
5-grams, 14x8 hashes, as `language=Languages.korean` configures it, with Kiwi's current
"cong" model: the "sbg" model datatrove asks for is no longer shipped by kiwipiepy). Each tool runs in a
child process on all CPUs (kollm: forked shard workers; datatrove: LocalPipelineExecutor,
2 workers); peak RSS is of the whole process tree, sampled every 0.1 s.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import platform
import random
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

FILES = 8
PLANTED_BASE, PLANTED_COPIES, CLEAN_JACCARD = 30_000, 3_000, 0.3


# ---------------------------------------------------------------- corpora
def _write_files(docs: list[dict], folder: str) -> list[str]:
    os.makedirs(folder, exist_ok=True)
    paths = [os.path.join(folder, f"part-{i:02d}.jsonl") for i in range(FILES)]
    per = -(-len(docs) // FILES)
    for i, path in enumerate(paths):
        with open(path, "w", encoding="utf-8") as f:
            for d in docs[i * per : (i + 1) * per]:
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
    return paths


def full_corpus(data_dir: str, limit: int) -> list[dict]:
    docs = []
    with gzip.open(os.path.join(data_dir, "nsmc", "reviews.jsonl.gz"), "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            docs.append({"id": f"nsmc:{r['review_id']}", "text": r["text"], "rating": r["rating"]})
    with gzip.open(
        os.path.join(data_dir, "korean_hate_speech", "unlabeled_comments_5.txt.gz"), "rt", encoding="utf-8"
    ) as f:
        for i, line in enumerate(f):
            docs.append({"id": f"comments:{i}", "text": line.rstrip("\n")})
    if limit:
        docs = random.Random(0).sample(docs, limit)
    return docs


EXTRA_WORDS = ["진짜 ", "정말 ", "솔직히 ", " 강추", " 추천합니다", " 최고"]
TAILS = ["!!", "...", "^^", "ㅋㅋ", "ㅎㅎ", "~~", " ㅠㅠ", "!!!", ".."]


def perturb(text: str, rng: random.Random) -> str:
    """A repost-like near copy: one surface change, and half the time one syllable edit."""
    op = rng.choice(["spacing", "tail", "stretch", "word"])
    if op == "spacing":
        text = (
            text.replace(" ", "")
            if " " in text and rng.random() < 0.5
            else "".join(c + (" " if c != " " and rng.random() < 0.15 else "") for c in text).strip()
        )
    elif op == "tail":
        text = text.rstrip(".!~^ ") + rng.choice(TAILS)
    elif op == "stretch":
        i = rng.randrange(len(text))
        text = text[: i + 1] + text[i] * rng.randint(2, 4) + text[i + 1 :]
    else:
        w = rng.choice(EXTRA_WORDS)
        text = w + text if not w.startswith(" ") else text + w
    if rng.random() < 0.5:
        syll = [i for i, c in enumerate(text) if "\uac00" <= c <= "\ud7a3"]
        i = rng.choice(syll)
        text = text[:i] + (chr(rng.randint(0xAC00, 0xD7A3)) if rng.random() < 0.5 else "") + text[i + 1 :]
    return text


def planted_corpus(data_dir: str) -> tuple[list[dict], dict[str, str]]:
    import numpy as np

    from kollm.curation import korean
    from kollm.curation.minhash import MinHasher, MinHashParams, canonical, find_duplicates

    rng = random.Random(0)
    pool = []
    with gzip.open(os.path.join(data_dir, "nsmc", "reviews.jsonl.gz"), "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            t = korean.normalize(r["text"])
            if (
                20 <= len(canonical(t)) <= 150
                and korean.hangul_ratio(t) >= 0.8
                and korean.jamo_ratio(t) <= 0.2
                and korean.char_run_ratio(t) == 0
                and korean.repeated_ngram_ratio(t) <= 0.2
                and not korean.url_count(t)
            ):
                pool.append({"id": f"nsmc:{r['review_id']}", "text": t})
    sample = rng.sample(pool, int(PLANTED_BASE * 1.6))
    # drop every document that has a neighbour at Jaccard >= 0.3 (bands x rows = 60 x 2: a pair at
    # 0.3 is proposed with probability 1 - (1 - 0.09)^60 = 0.996, then checked exactly)
    sensitive = MinHashParams(bands=60, rows=2, jaccard_threshold=CLEAN_JACCARD, min_chars=1)
    keys = [canonical(d["text"]) for d in sample]
    bands, hashed = MinHasher(sensitive).band_hashes(keys)
    ids = np.arange(len(sample))
    remove, of, _ = find_duplicates(ids, np.arange(len(sample)), bands, hashed, keys, sensitive, lags=200)
    involved = set(remove.tolist()) | set(of.tolist())
    base = [d for i, d in enumerate(sample) if i not in involved][:PLANTED_BASE]
    truth = {}
    docs = list(base)
    for k, orig in enumerate(rng.sample(base, PLANTED_COPIES)):
        copy_id = f"copy:{k}"
        docs.append({"id": copy_id, "text": perturb(orig["text"], rng)})
        truth[copy_id] = orig["id"]
    rng.shuffle(docs)
    return docs, truth


# ---------------------------------------------------------------- the two pipelines
def run_kollm(inputs: list[str], out: str, toxicity_model: str) -> None:
    from curator_pipelines.korean_pipeline import curate
    from kollm.config import CurateConfig

    curate(inputs, out, CurateConfig(shard_docs=25_000), toxicity_model, progress=False)


def run_datatrove(inputs: list[str], out: str, toxicity_model: str) -> None:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.filters import LambdaFilter
    from datatrove.pipeline.filters.base_filter import BaseFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.word_tokenizers import KiwiTokenizer

    from curator_pipelines.korean_pipeline import document_filters
    from kollm.config import CurateConfig
    from kollm.curation import korean, pii

    cfg = CurateConfig()
    filters = document_filters(cfg, toxicity_model)
    heuristics, langid, tox = filters[:-2], filters[-2], filters[-1]

    def normalise(data, rank=0, world_size=1):
        for doc in data:
            doc.text = pii.redact(korean.normalize(doc.text))[0]
            yield doc

    class Batched(BaseFilter):
        name = "batched"

        def __init__(self, f):
            super().__init__(batch_size=1000)
            self.f = f

        def filter_batch(self, batch):
            texts = [d.text for d in batch]
            if hasattr(self.f, "keep_batch"):
                if not hasattr(self.f, "_fasttext_langid_model"):
                    self.f.load_model()
                return list(self.f.keep_batch(*self.f.score_batch(texts), texts))
            return [self.f.keep_document(s) for s in self.f.score_batch(texts)]

        def filter(self, doc):
            return self.filter_batch([doc])[0]

    mh = MinhashConfig()
    tasks = FILES
    work = os.path.join(out, "work")
    stage1 = LocalPipelineExecutor(
        pipeline=[
            JsonlReader(os.path.dirname(inputs[0]), glob_pattern="*.jsonl", text_key="text", id_key="id"),
            normalise,
            *[LambdaFilter(lambda doc, f=f: f.keep_document(f.score_document(doc.text))) for f in heuristics],
            Batched(langid),
            Batched(tox),
            JsonlWriter(os.path.join(work, "filtered"), output_filename="${rank}.jsonl", compression=None),
            # datatrove's Korean default, KiwiTokenizer(model_type="sbg"), cannot load with kiwipiepy >= 0.22
            # (the sbg model files are no longer shipped): "cong" is kiwipiepy's current default model.
            MinhashDedupSignature(os.path.join(work, "sigs"), config=mh, language=KiwiTokenizer(model_type="cong")),
        ],
        tasks=tasks,
        workers=os.cpu_count(),
        logging_dir=os.path.join(work, "logs1"),
    )
    stage2 = LocalPipelineExecutor(
        pipeline=[
            MinhashDedupBuckets(os.path.join(work, "sigs"), os.path.join(work, "buckets"), config=mh),
        ],
        tasks=mh.num_buckets,
        workers=os.cpu_count(),
        logging_dir=os.path.join(work, "logs2"),
        depends=stage1,
    )
    stage3 = LocalPipelineExecutor(
        pipeline=[
            MinhashDedupCluster(
                os.path.join(work, "buckets"), os.path.join(work, "remove_ids"), config=mh, save_cluster_id=True
            ),
        ],
        tasks=1,
        logging_dir=os.path.join(work, "logs3"),
        depends=stage2,
    )
    stage4 = LocalPipelineExecutor(
        pipeline=[
            JsonlReader(os.path.join(work, "filtered"), text_key="text", id_key="id"),
            MinhashDedupFilter(
                os.path.join(work, "remove_ids"),
                load_cluster_ids=True,
                exclusion_writer=JsonlWriter(os.path.join(out, "removed"), compression=None),
            ),
            JsonlWriter(os.path.join(out, "kept"), compression=None),
        ],
        tasks=tasks,
        workers=os.cpu_count(),
        logging_dir=os.path.join(work, "logs4"),
        depends=stage3,
    )
    stage4.run()


# ---------------------------------------------------------------- measuring
def measure(tool: str, inputs: list[str], out: str, toxicity_model: str) -> dict:
    """Run one tool in a child process; wall time and peak RSS of its whole process tree."""
    import psutil

    cmd = [sys.executable, __file__, "--run-one", tool, "--out", out, "--toxicity", toxicity_model, *inputs]
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def sample():
        p = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                rss = sum(c.memory_info().rss for c in [p, *p.children(recursive=True)])
                peak[0] = max(peak[0], rss)
            except psutil.Error:
                pass
            time.sleep(0.1)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    _, err = proc.communicate()
    th.join()
    if proc.returncode:
        raise SystemExit(f"{tool} failed:\n{err[-3000:]}")
    return {"wall_s": round(time.time() - t0, 2), "peak_rss_mb": round(peak[0] / 2**20, 1)}


def _rows(pattern: str):
    for path in sorted(glob.glob(pattern)):
        with open(path, encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)


def groups(tool: str, out: str) -> tuple[dict[str, str], set[str], set[str]]:
    """(doc id -> dedup group, ids that reached dedup, ids removed as duplicates)."""
    group, reached, removed = {}, set(), set()
    if tool == "kollm":
        for d in _rows(os.path.join(out, "kept", "*.jsonl")):
            reached.add(d["id"])
            group[d["id"]] = d["id"]
        for d in _rows(os.path.join(out, "removed", "*.dedup.jsonl")):
            reached.add(d["id"])
            removed.add(d["id"])
            group[d["id"]] = d["duplicate_of"]
    else:
        for folder, is_removed in (("kept", False), ("removed", True)):
            for d in _rows(os.path.join(out, folder, "*.jsonl")):
                reached.add(d["id"])
                cid = d.get("metadata", {}).get("minhash_cluster_id", -1)
                group[d["id"]] = f"cluster:{cid}" if cid not in (-1, None) else d["id"]
                if is_removed:
                    removed.add(d["id"])
    return group, reached, removed


def dedup_quality(tool: str, out: str, truth: dict[str, str]) -> dict:
    group, reached, removed = groups(tool, out)
    family = {**{c: o for c, o in truth.items()}, **{o: o for o in truth.values()}}
    pairs = [(c, o) for c, o in truth.items() if c in reached and o in reached]
    found = sum(group[c] == group[o] for c, o in pairs)
    members: dict[str, list[str]] = {}
    for d in reached:
        members.setdefault(group[d], []).append(d)
    correct = 0
    for d in removed:
        fam = family.get(d)
        correct += fam is not None and any(family.get(m) == fam for m in members[group[d]] if m != d)
    return {
        "near_dup_recall": round(found / len(pairs), 4) if pairs else None,
        "near_dup_precision": round(correct / len(removed), 4) if removed else None,
        "planted_pairs_evaluated": len(pairs),
        "removed_as_duplicate": len(removed),
    }


def count_kept(tool: str, out: str) -> int:
    return sum(1 for _ in _rows(os.path.join(out, "kept", "*.jsonl")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=0, help="sample this many documents of the full corpus (0 = all)")
    ap.add_argument("--work", default=os.path.join(REPO, "runs", "bench_curation"))
    ap.add_argument("--run-one", choices=["kollm", "datatrove"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--toxicity", help=argparse.SUPPRESS)
    ap.add_argument("inputs", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run_one:
        (run_kollm if args.run_one == "kollm" else run_datatrove)(args.inputs, args.out, args.toxicity)
        return

    import shutil

    from kollm.curation import toxicity
    from kollm.data import sources

    data_dir = sources.resolve_data_dir()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    tox = os.path.join(args.work, "toxicity.npz")
    model, tox_metrics = toxicity.train(
        sources.iter_hate_labeled(data_dir, "train"), sources.iter_hate_labeled(data_dir, "dev")
    )
    model.save(tox)
    full = _write_files(full_corpus(data_dir, args.docs), os.path.join(args.work, "full_in"))
    planted_docs, truth = planted_corpus(data_dir)
    planted = _write_files(planted_docs, os.path.join(args.work, "planted_in"))
    docs_in = sum(1 for p in full for _ in open(p, encoding="utf-8"))
    result: dict = {
        "docs_in": docs_in,
        "planted_docs": len(planted_docs),
        "planted_copies": len(truth),
        "toxicity_dev_f1": tox_metrics["dev_f1"],
    }
    for tool in ("kollm", "datatrove"):
        m = measure(tool, full, os.path.join(args.work, f"{tool}_full"), tox)
        result[f"{tool}_wall_s"] = m["wall_s"]
        result[f"{tool}_docs_per_s"] = round(docs_in / m["wall_s"], 1)
        result[f"{tool}_peak_rss_mb"] = m["peak_rss_mb"]
        result[f"{tool}_docs_kept"] = count_kept(tool, os.path.join(args.work, f"{tool}_full"))
        print(tool, m, flush=True)
        if tool == "kollm" and not args.docs:  # the full-corpus data card, with its histograms
            card = os.path.join(REPO, "benchmarks", "results", "curation_datacard")
            shutil.rmtree(card, ignore_errors=True)
            os.makedirs(card)
            for f in glob.glob(os.path.join(args.work, "kollm_full", "*.png")) + [
                os.path.join(args.work, "kollm_full", "datacard.md")
            ]:
                shutil.copy(f, card)
        out = os.path.join(args.work, f"{tool}_planted")
        measure(tool, planted, out, tox)
        q = dedup_quality(tool, out, truth)
        result.update({f"{tool}_{k}": v for k, v in q.items()})
        print(tool, q, flush=True)
    result.update(
        {
            "near_dup_precision": result["kollm_near_dup_precision"],
            "near_dup_recall": result["kollm_near_dup_recall"],
            "docs_kept": result["kollm_docs_kept"],
            "command": "make env && .venv/bin/python benchmarks/curation.py"
            + (f" --docs {args.docs}" if args.docs else ""),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
            "date": time.strftime("%Y-%m-%d"),
        }
    )
    print(json.dumps(result, indent=2))
    if not args.docs:
        path = os.path.join(REPO, "benchmarks", "results", "curation.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
