"""Deterministic train/val/test split by movie id: no movie's reviews cross splits."""

import hashlib


def movie_split(movie_id: int, val_fraction: float, test_fraction: float) -> str:
    # A hash, not a shuffle: the split of a movie never depends on which other movies are present.
    digest = hashlib.sha1(f"nsmc-movie-{movie_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def nli_split(premise: str, test_fraction: float = 1 / 3) -> str:
    """KLUE-NLI has only its dev set offline: a fixed, hashed part by premise is fine-tuned on,
    the rest tested. Each premise has three hypotheses; none crosses the split."""
    digest = hashlib.sha1(f"klue-nli-premise-{premise}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"
