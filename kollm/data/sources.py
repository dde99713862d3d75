"""Where the Korean data lives, and readers for each dataset's own format.

Search order for the data directory: an explicit path, $KOLLM_DATA_DIR, `../shared/data`
beside the repository (every machine here has it), then the download cache filled by
`kollm data download`.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator

from kollm.core.errors import KollmError
from kollm.core.io import open_text, read_jsonl

# The canonical layout: relative path -> (sha256 of the file, size in bytes, required).
FILES: dict[str, tuple[str, int, bool]] = {
    "nsmc/reviews.jsonl.gz": ("f60b849203f6984b7b28b27fbc4d815d1254fac3f496500cab0e7220a7319b8b", 33238075, True),
    "nsmc/synopses.json": ("b9b5af304ff16b7901c5180cc49dc0750c4e8224558fb2a718e13e60c86551dd", 36746, False),
    "klue/klue-ner-v1.1_dev.tsv.gz": ("911123e1de22be397dbed48650503e4a1676f6352e4c0850404439f678b7c509", 842255, True),
    "klue/klue-dp-v1.1_dev.tsv.gz": ("6ebab36d19cb658561c9fbcba64a0e244b4ef7d4d8aa26b98740908bff2880d3", 332621, True),
    "klue/klue-nli-v1.1_dev.json.gz": (
        "be2f8c6f4e60bcf4d4ecfd8b4d04ec3903e4a4fb93c8c32a8447437e71809602",
        131270,
        True,
    ),
    "klue/klue-sts-v1.1_dev.json.gz": ("87edfbb6cd015b615c95778c677c106ebb33df66ba380831d911fbd82ca08cb9", 56286, True),
    "korean_hate_speech/labeled_train.tsv.gz": (
        "5bc3b13bef8e91221aba76a6451d59c420a9fdd02953cc5e34ffa030b0b88fc3",
        337795,
        True,
    ),
    "korean_hate_speech/labeled_dev.tsv.gz": (
        "a1c5c57fc32dc2016c1dfdb79a0acfbd7a54ecf2f306ada486ab44594318d247",
        22282,
        True,
    ),
    "korean_hate_speech/unlabeled_comments_5.txt.gz": (
        "62d822980b2b149e26f4362eea7f4ee8c5b8c13730960021a3e0099bbe14c7d3",
        1384258,
        True,
    ),
}
REQUIRED = [p for p, (_, _, req) in FILES.items() if req]

NSMC_FIELDS = ("review_id", "movie_id", "rating", "text")
NER_TAG = re.compile(r"<([^:<>]+):[A-Z]{2}>")  # KLUE NER markup: <경찰:OG> -> 경찰


def repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "kollm", "data")


def candidate_dirs(explicit: str = "") -> list[str]:
    if explicit:
        return [explicit]
    found = []
    if os.environ.get("KOLLM_DATA_DIR"):
        found.append(os.environ["KOLLM_DATA_DIR"])
    found.append(os.path.join(os.path.dirname(repo_root()), "shared", "data"))
    found.append(os.path.join(os.path.dirname(os.getcwd()), "shared", "data"))
    found.append(cache_dir())
    return list(dict.fromkeys(os.path.abspath(p) for p in found))


def missing_files(data_dir: str) -> list[str]:
    return [p for p in REQUIRED if not os.path.isfile(os.path.join(data_dir, p))]


def resolve_data_dir(explicit: str = "") -> str:
    """The first candidate that holds every required file, or a KollmError saying what to do."""
    tried = []
    for d in candidate_dirs(explicit):
        if os.path.isdir(d) and not missing_files(d):
            return d
        tried.append(d if os.path.isdir(d) else f"{d} (absent)")
    if explicit and os.path.isdir(explicit):
        raise KollmError(
            f"data dir {explicit} lacks {', '.join(missing_files(explicit))}; "
            "run `kollm data download --dest DIR` to fill it"
        )
    raise KollmError(
        "no Korean data found (looked in: " + "; ".join(tried) + "); "
        "run `kollm data download` to fetch NSMC, KLUE and korean-hate-speech into "
        f"{cache_dir()}, or set data.data_dir=PATH"
    )


# ---- readers -------------------------------------------------------------------------


def iter_nsmc(data_dir: str, limit: int = 0) -> Iterator[dict]:
    path = os.path.join(data_dir, "nsmc/reviews.jsonl.gz")
    for i, row in enumerate(read_jsonl(path, required=NSMC_FIELDS)):
        if limit and i >= limit:
            break
        yield row


def nsmc_label(rating: int) -> int | None:
    """The official NSMC labelling: 1-4 negative (0), 9-10 positive (1), 5-8 excluded."""
    if 1 <= rating <= 4:
        return 0
    if 9 <= rating <= 10:
        return 1
    return None


def iter_hate_labeled(data_dir: str, split: str) -> Iterator[dict]:
    path = os.path.join(data_dir, f"korean_hate_speech/labeled_{split}.tsv.gz")
    with open_text(path) as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            yield {"text": row["comments"], "hate": row["hate"], "bias": row["bias"]}


def iter_comments(data_dir: str, limit: int = 0) -> Iterator[str]:
    path = os.path.join(data_dir, "korean_hate_speech/unlabeled_comments_5.txt.gz")
    with open_text(path) as f:
        for i, line in enumerate(f):
            if limit and i >= limit:
                break
            yield line.rstrip("\n")


def iter_klue_sentences(data_dir: str) -> Iterator[tuple[str, str]]:
    """(guid, sentence) from the KLUE NER and DP dev files: formal, edited Korean.

    KLUE NLI/STS are kept out of the pretraining text: they are evaluation sets.
    """
    for name in ("klue-ner-v1.1_dev.tsv.gz", "klue-dp-v1.1_dev.tsv.gz"):
        with open_text(os.path.join(data_dir, "klue", name)) as f:
            for line in f:
                if line.startswith("## klue-"):
                    guid, _, sentence = line[3:].rstrip("\n").partition("\t")
                    if sentence:
                        yield guid, NER_TAG.sub(r"\1", sentence)


def iter_synopses(data_dir: str) -> Iterator[str]:
    path = os.path.join(data_dir, "nsmc/synopses.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for item in json.load(f):
                if item.get("synopsis"):
                    yield item["synopsis"]


def _klue_json(data_dir: str, name: str) -> list[dict]:
    with open_text(os.path.join(data_dir, "klue", name)) as f:
        return json.load(f)


def iter_klue_nli(data_dir: str) -> Iterator[dict]:
    for item in _klue_json(data_dir, "klue-nli-v1.1_dev.json.gz"):
        yield {
            "guid": item["guid"],
            "premise": item["premise"],
            "hypothesis": item["hypothesis"],
            "gold_label": item["gold_label"],
        }


def iter_klue_sts(data_dir: str) -> Iterator[dict]:
    for item in _klue_json(data_dir, "klue-sts-v1.1_dev.json.gz"):
        yield {
            "guid": item["guid"],
            "sentence1": item["sentence1"],
            "sentence2": item["sentence2"],
            "score": item["labels"]["label"],
            "binary_label": item["labels"]["binary-label"],
        }
