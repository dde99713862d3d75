"""Deterministic train/val/test split by movie id: no movie's reviews cross splits."""

import hashlib


def unit_interval(digest: bytes) -> float:
    """The first 8 bytes of a hash digest as a number in [0, 1): where a key falls, the same on every run."""
    return int.from_bytes(digest[:8], "big") / 2**64


def in_corpus_sample(doc_id: str, fraction: float) -> bool:
    """Whether a pretraining document is in the `data.corpus_fraction` sample: a hash of its id, so the
    same documents are kept on every run and machine, and every source keeps about the same share."""
    # blake2b, not crc32: crc32 is linear, and sequential ids ("comments:0", "comments:1", ...) drew a
    # skewed share through it
    return fraction >= 1 or unit_interval(hashlib.blake2b(doc_id.encode(), digest_size=8).digest()) < fraction


def movie_split(movie_id: int, val_fraction: float, test_fraction: float) -> str:
    # A hash, not a shuffle: the split of a movie never depends on which other movies are present.
    u = unit_interval(hashlib.sha1(f"nsmc-movie-{movie_id}".encode()).digest())
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def nli_split(premise: str, test_fraction: float = 1 / 3) -> str:
    """KLUE-NLI has only its dev set offline: a fixed, hashed part by premise is fine-tuned on,
    the rest tested. Each premise has three hypotheses; none crosses the split."""
    u = unit_interval(hashlib.sha1(f"klue-nli-premise-{premise}".encode()).digest())
    return "test" if u < test_fraction else "train"
