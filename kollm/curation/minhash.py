"""MinHash + LSH near-duplicate detection on CPU, vectorised with numpy.

Korean shingles: character n-grams of a canonical key with spaces and punctuation removed
(Korean spacing varies from writer to writer, so "재밌게 봤어요" and "재밌게봤어요" must
match) and character runs cut to two (ㅋㅋㅋㅋ == ㅋㅋ). Syllables carry more than Latin
letters, so n is small (3) where Curator's English default is 24.

Hashing is done for a whole batch at once: texts are concatenated as UTF-32 code points,
n-gram hashes are a rolling product over the array, MinHash values come from
multiply-shift hashing (a*x + b mod 2^64, high 32 bits) and np.minimum.reduceat per doc.
Band hashes (one uint64 per band) are all the LSH step needs; candidates in a shared
bucket are confirmed with their exact shingle Jaccard, and the result is what Curator's
GPU workflow produces: ids to remove.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

_NOT_WORD = re.compile(r"[\s\W_]+")
_RUNS = re.compile(r"(.)\1{2,}")
_MIX = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class MinHashParams:
    ngram: int = 3
    bands: int = 20
    rows: int = 4  # hashes per band; threshold ~ (1/bands)^(1/rows)
    jaccard_threshold: float = 0.5  # candidates below this true Jaccard are not duplicates
    min_chars: int = 10  # shorter keys carry too little to call "near": exact dedup only
    seed: int = 42

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows


def canonical(text: str) -> str:
    """The string shingles are taken from: lower-case, no spaces or punctuation, runs cut to 2."""
    return _RUNS.sub(r"\1\1", _NOT_WORD.sub("", text.lower()))


def exact_key(text: str) -> int:
    """64-bit hash of the text modulo whitespace (exact duplicates differ only in 띄어쓰기)."""
    return int.from_bytes(hashlib.md5("".join(text.split()).encode("utf-8")).digest()[:8], "little", signed=True)


def shingles(key: str, n: int) -> set[str]:
    return {key[i : i + n] for i in range(len(key) - n + 1)}


def _splitmix(x: np.ndarray) -> np.ndarray:
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class MinHasher:
    def __init__(self, params: MinHashParams = MinHashParams()):
        self.p = params
        rng = np.random.default_rng(params.seed)
        self.a = rng.integers(1, 2**63, size=params.num_perm, dtype=np.uint64) | np.uint64(1)
        self.b = rng.integers(0, 2**63, size=params.num_perm, dtype=np.uint64)
        self.band_mix = rng.integers(1, 2**63, size=params.rows, dtype=np.uint64) | np.uint64(1)

    def band_hashes(self, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(band hashes [len(keys), bands] uint64, mask of keys long enough to be hashed)."""
        n = self.p.ngram
        lengths = np.fromiter((len(k) for k in keys), dtype=np.int64, count=len(keys))
        ok = lengths >= max(self.p.min_chars, n)
        out = np.zeros((len(keys), self.p.bands), dtype=np.uint64)
        idx = np.flatnonzero(ok)
        for start in range(0, len(idx), 4096):  # bounded memory: ~4096 docs x shingles x perms
            chunk = idx[start : start + 4096]
            out[chunk] = self._bands([keys[i] for i in chunk], lengths[chunk])
        return out, ok

    def _bands(self, keys: list[str], lengths: np.ndarray) -> np.ndarray:
        n = self.p.ngram
        cps = np.frombuffer("".join(keys).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        doc_start = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        counts = lengths - n + 1  # n-grams per doc (all >= 1: lengths >= n)
        # start position of every n-gram, doc by doc
        pos = np.repeat(doc_start - np.concatenate(([0], np.cumsum(counts)[:-1])), counts) + np.arange(counts.sum())
        h = np.zeros(len(pos), dtype=np.uint64)
        for k in range(n):
            h = h * _MIX + cps[pos + k]
        x = _splitmix(h) >> np.uint64(32)  # 32-bit shingle hash
        first = np.concatenate(([0], np.cumsum(counts)[:-1]))
        sig = np.empty((len(keys), self.p.num_perm), dtype=np.uint64)
        for j in range(0, self.p.num_perm, 16):
            a, b = self.a[j : j + 16], self.b[j : j + 16]
            vals = (x[:, None] * a[None, :] + b[None, :]) >> np.uint64(32)
            sig[:, j : j + 16] = np.minimum.reduceat(vals, first, axis=0)
        rows = sig.reshape(len(keys), self.p.bands, self.p.rows)
        return _splitmix((rows * self.band_mix).sum(axis=2, dtype=np.uint64))


def find_duplicates(
    ids: np.ndarray,
    exact: np.ndarray,
    bands: np.ndarray,
    hashed: np.ndarray,
    keys: list[str],
    params: MinHashParams,
    lags: int = 20,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick the documents to remove and the kept document each one duplicates.

    1. exact groups (same `exact` key): the smallest id is kept;
    2. near duplicates among what is left: documents sharing an LSH bucket (each checked
       against up to `lags` earlier members of the bucket) and whose true shingle Jaccard is
       at least the threshold. Walking documents in id order, one is removed when it is near
       a document that is kept. No transitive chains: every removed document is itself within
       the threshold of the document it is filed under (connected components would let
       A~B~C remove C for a B that was never kept, and C may look nothing like A).

    Returns (ids to remove, id each one duplicates, is_exact per removed id).
    `exact`: exact_key per doc; `bands`/`hashed`: from MinHasher.band_hashes; `keys`: canonical keys.
    """
    n = len(ids)
    rows = np.arange(n)
    by_exact = np.lexsort((ids, exact))  # within an exact group, the smallest id first
    ex = exact[by_exact]
    first = np.concatenate(([True], ex[1:] != ex[:-1]))
    exact_rep = np.empty(n, dtype=np.int64)
    exact_rep[by_exact] = by_exact[np.maximum.accumulate(np.where(first, rows, 0))]

    cand = np.flatnonzero((exact_rep == rows) & hashed)
    cand = cand[np.argsort(ids[cand], kind="stable")]
    pairs = []
    for band in range(bands.shape[1]):
        v = bands[cand, band]
        s = np.argsort(v, kind="stable")  # stable: id order inside a bucket
        r, vv = cand[s], v[s]
        for lag in range(1, lags + 1):
            same = vv[lag:] == vv[:-lag]
            if not same.any():
                break  # no bucket has more than `lag` members
            pairs.append(r[:-lag][same] * n + r[lag:][same])  # (earlier, later)
    fuzzy_rep = rows.copy()
    if pairs:
        pair = np.unique(np.concatenate(pairs))
        a_all, b_all = pair // n, pair % n
        shingle_sets: dict[int, set[str]] = {}

        def sh(i: int) -> set[str]:
            if i not in shingle_sets:
                shingle_sets[i] = shingles(keys[i], params.ngram)
            return shingle_sets[i]

        t = params.jaccard_threshold
        ok = np.fromiter(
            (len(sh(a) & sh(b)) >= t * len(sh(a) | sh(b)) for a, b in zip(a_all.tolist(), b_all.tolist())),
            dtype=bool,
            count=len(pair),
        )
        a_ok, b_ok = a_all[ok], b_all[ok]
        walk = np.lexsort((ids[a_ok], ids[b_ok]))  # by the later document, then its earlier neighbour
        for a, b in zip(a_ok[walk].tolist(), b_ok[walk].tolist()):
            if fuzzy_rep[b] == b and fuzzy_rep[a] == a:  # a's fate is final: all its own edges came first
                fuzzy_rep[b] = a
    rep = fuzzy_rep[exact_rep]  # an exact copy of a near-duplicate is filed under the kept document
    rep = np.where(exact_rep == rows, fuzzy_rep, rep)
    remove = np.flatnonzero(rep != rows)
    return ids[remove], ids[rep[remove]], exact_rep[remove] != remove
