"""Read NSMC, korean-hate-speech and KLUE; write the run's splits (by movie) and raw corpus.

Outputs (JSONL): nsmc_{train,val,test} (reviews with ratings, split by movie_id),
hate_{train,dev} (labelled comments), klue_nli_{train,test} (KLUE-NLI dev split by premise
into a fine-tuning 2/3 and a disjoint test 1/3: KLUE has no train set offline), klue_sts (KLUE-STS
dev, evaluation only), corpus_raw (pretraining documents from the train
split, web comments and KLUE NER/DP sentences; `data.corpus_fraction` of them), heldout_raw (val-split reviews, for
perplexity).
"""

from __future__ import annotations

import collections
import dataclasses
import os

from tqdm import tqdm

from kollm.config import PipelineConfig
from kollm.core import write_jsonl
from kollm.data import (
    in_corpus_sample,
    iter_comments,
    iter_hate_labeled,
    iter_klue_nli,
    iter_klue_sentences,
    iter_klue_sts,
    iter_nsmc,
    iter_synopses,
    movie_split,
    nli_split,
    resolve_data_dir,
)
from stages.base import Outputs


@dataclasses.dataclass(frozen=True)
class DataOutputs(Outputs):
    """The run's splits and raw text (JSONL paths); `.paths()` is what kollm.data.load_split reads."""

    nsmc_train: str
    nsmc_val: str
    nsmc_test: str
    hate_train: str
    hate_dev: str
    klue_nli_train: str
    klue_nli_test: str
    klue_sts: str
    corpus_raw: str
    heldout_raw: str


def run(cfg: PipelineConfig, out: str) -> dict:
    data_dir = resolve_data_dir(cfg.data.data_dir)
    splits: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    reviews = iter_nsmc(data_dir, cfg.data.max_reviews)
    for row in tqdm(reviews, desc="nsmc", unit="review", mininterval=2):
        split = movie_split(int(row["movie_id"]), cfg.data.val_fraction, cfg.data.test_fraction)
        splits[split].append(row)
    outputs: dict[str, str] = {}
    counts: dict[str, int] = {}

    def write(name: str, rows) -> None:
        outputs[name] = os.path.abspath(os.path.join(out, f"{name}.jsonl"))
        counts[name] = write_jsonl(outputs[name], rows)

    for split, rows in splits.items():
        write(f"nsmc_{split}", rows)
    for split in ("train", "dev"):
        write(f"hate_{split}", iter_hate_labeled(data_dir, split))
    nli = list(iter_klue_nli(data_dir))
    for split in ("train", "test"):
        write(f"klue_nli_{split}", (r for r in nli if nli_split(r["premise"]) == split))
    write("klue_sts", iter_klue_sts(data_dir))

    def corpus():
        for r in splits["train"]:
            yield {"id": f"nsmc:{r['review_id']}", "source": "nsmc", "text": r["text"], "rating": r["rating"]}
        for i, text in enumerate(iter_comments(data_dir, cfg.data.max_comments)):
            yield {"id": f"comments:{i}", "source": "comments", "text": text}
        for guid, text in iter_klue_sentences(data_dir):
            yield {"id": f"klue:{guid}", "source": "klue", "text": text}
        for i, text in enumerate(iter_synopses(data_dir)):
            yield {"id": f"synopsis:{i}", "source": "synopsis", "text": text}

    by_source: collections.Counter = collections.Counter()

    def counted(rows):
        for row in rows:
            if in_corpus_sample(row["id"], cfg.data.corpus_fraction):
                by_source[row["source"]] += 1
                yield row

    write("corpus_raw", counted(corpus()))
    write("heldout_raw", ({"id": f"nsmc:{r['review_id']}", "source": "nsmc", "text": r["text"]} for r in splits["val"]))
    movies = {s: len({r["movie_id"] for r in rows}) for s, rows in splits.items()}
    return {
        "data_dir": data_dir,
        "outputs": DataOutputs(**outputs),
        "counts": counts,
        "corpus_by_source": dict(by_source),
        "movies": movies,
    }
