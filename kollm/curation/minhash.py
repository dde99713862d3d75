"""MinHash + LSH near-duplicate detection on CPU, vectorised with numpy.

Korean shingles: character n-grams of a canonical key with spaces and punctuation removed
(Korean spacing varies from writer to writer, so "재밌게 봤어요" and "재밌게봤어요" must
match) and character runs cut to two (ㅋㅋㅋㅋ == ㅋㅋ). Syllables carry more than Latin
letters, so n is small (3) where Curator's English default is 24.

Hashing is done for a whole batch at once: texts are concatenated as UTF-32 code points,
n-gram hashes are a rolling product over the array, MinHash values come from
multiply-shift hashing (a*x + b mod 2^64, high 32 bits) and np.minimum.reduceat per doc.
Band hashes (one uint64 per band) are all the LSH step needs; candidates in a shared
bucket are confirmed with their exact shingle Jaccard, then grouped as connected
components (scipy), which is the contract of Curator's GPU workflow: ids to remove.
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
    return {key[i:i + n] for i in range(len(key) - n + 1)}


def jaccard(a: str, b: str, n: int) -> float:
    sa, sb = shingles(a, n), shingles(b, n)
    return len(sa & sb) / len(sa | sb) if sa or sb else 1.0


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
            chunk = idx[start:start + 4096]
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
            a, b = self.a[j:j + 16], self.b[j:j + 16]
            vals = (x[:, None] * a[None, :] + b[None, :]) >> np.uint64(32)
            sig[:, j:j + 16] = np.minimum.reduceat(vals, first, axis=0)
        rows = sig.reshape(len(keys), self.p.bands, self.p.rows)
        return _splitmix((rows * self.band_mix).sum(axis=2, dtype=np.uint64))


def find_duplicates(ids: np.ndarray, exact: np.ndarray, bands: np.ndarray, hashed: np.ndarray,
                    keys: list[str], params: MinHashParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group documents and pick one to keep per group (the smallest id).

    Returns (ids to remove, the id each duplicates, is_exact per removed id).
    `exact`: exact_key per doc; `bands`/`hashed`: from MinHasher.band_hashes; `keys`: canonical keys.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(ids)
    order = np.argsort(ids, kind="stable")  # position 0 of a group = its smallest id
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []

    def group_edges(values: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Edges from each member of a run of equal values to the run's first (smallest-id) member."""
        rows = rows[np.argsort(values[rows], kind="stable")]  # rows arrive id-ordered; stable keeps it
        v = values[rows]
        new_group = np.concatenate(([True], v[1:] != v[:-1]))
        head = rows[np.maximum.accumulate(np.where(new_group, np.arange(len(rows)), 0))]
        keep = ~new_group
        return head[keep], rows[keep]

    s, d = group_edges(exact, order)
    exact_pairs = set(zip(s.tolist(), d.tolist()))
    src.append(s), dst.append(d)
    hashed_rows = order[hashed[order]]
    cand = [group_edges(bands[:, band], hashed_rows) for band in range(bands.shape[1])]
    if cand:
        pair = np.unique(np.concatenate([a * n + b for a, b in cand]))  # same pair, many bands: check once
        if exact_pairs:
            pair = pair[~np.isin(pair, np.array([a * n + b for a, b in exact_pairs]))]
        shingle_sets: dict[int, set[str]] = {}

        def sh(r: int) -> set[str]:
            if r not in shingle_sets:
                shingle_sets[r] = shingles(keys[r], params.ngram)
            return shingle_sets[r]

        ok = np.fromiter((len(sh(a) & sh(b)) >= params.jaccard_threshold * len(sh(a) | sh(b))
                          for a, b in zip((pair // n).tolist(), (pair % n).tolist())), dtype=bool, count=len(pair))
        src.append(pair[ok] // n), dst.append(pair[ok] % n)
    s, d = np.concatenate(src), np.concatenate(dst)
    graph = coo_matrix((np.ones(len(s), dtype=np.int8), (s, d)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    # keep the smallest id of each component
    keep_row = np.full(label.max() + 1, -1)
    for r in order[::-1]:
        keep_row[label[r]] = r
    rep = keep_row[label]
    remove = np.flatnonzero(rep != np.arange(n))
    exact_rows = {b for _, b in exact_pairs}
    is_exact = np.array([r in exact_rows and exact[r] == exact[rep[r]] for r in remove], dtype=bool)
    return ids[remove], ids[rep[remove]], is_exact
