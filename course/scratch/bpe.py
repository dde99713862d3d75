"""바이트 수준 BPE(byte-level BPE): 학습기(trainer), 인코더(encoder), 디코더(decoder)를 손으로 만듭니다.

BPE(byte-pair encoding)는 말뭉치에서 가장 자주 붙어 나오는 두 토큰을 하나로 합치는 일을 어휘(vocabulary)가 정한
크기가 될 때까지 되풀이합니다. 바이트 수준이라서 처음 어휘는 256개 바이트뿐이고, 그래서 어떤 글자(한글, 이모지,
자모)도 모르는 토큰(unknown token) 없이 표현됩니다. 특수 토큰(special token, 예: "<|endoftext|>")은 통째로 한
토큰이며 쪼개지도 합쳐지지도 않습니다.

전처리(pre-tokenization)는 HF tokenizers의 ByteLevel(add_prefix_space=False)과 똑같이, GPT-2 정규식으로 텍스트를
조각내고 각 조각의 UTF-8 바이트를 `bytes_to_unicode` 표의 문자로 바꿉니다. 같은 말뭉치에서 HF `tokenizers`의
BpeTrainer와 같은 merges와 같은 id가 나옵니다 (tests/test_scratch_bpe.py가 확인합니다).

    python -m course.scratch.bpe    # NSMC 리뷰 2만 개로 어휘 1,000개를 학습하고 한 문장을 인코딩해 봅니다
                                    # (데이터: $KOLLM_DATA_DIR 또는 ../shared/data)
"""

from __future__ import annotations

import gzip
import heapq
import json
import os
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2의 바이트→문자 표: 눈에 보이는 바이트는 그 문자 그대로, 나머지(공백, 제어 문자...)는 256번부터의
    문자로 바꿉니다. 그래서 공백 " "은 "Ġ"가 됩니다. 토큰을 늘 눈에 보이는 문자열로 다루려는 장치입니다."""
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table = {b: chr(b) for b in keep}
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + len(table) - len(keep))
    return dict(sorted(table.items()))


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def _unicode_classes() -> tuple[str, str]:
    """정규식 문자 집합(character class) 안에 넣을 \\p{L}(글자)과 \\p{N}(숫자): 표준 라이브러리 `re`에는 \\p{..}가
    없어서 유니코드 범주(category)로 직접 만듭니다."""
    ranges: dict[str, list[str]] = {"L": [], "N": []}
    start, kind = 0, ""
    for cp in range(0x110001):
        now = unicodedata.category(chr(cp))[0] if cp < 0x110000 else ""
        now = now if now in ranges else ""
        if now != kind:
            if kind:
                ranges[kind].append(f"{re.escape(chr(start))}-{re.escape(chr(cp - 1))}")
            start, kind = cp, now
    return "".join(ranges["L"]), "".join(ranges["N"])


# 이 Python의 unicodedata(3.11: Unicode 14)보다 나중에 생긴 글자는 HF(Oniguruma)와 달리 나뉠 수 있습니다
_L, _N = _unicode_classes()
_S = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"  # Oniguruma(HF)의 \s
# GPT-2의 나누기 정규식: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
GPT2_SPLIT = re.compile(rf"'s|'t|'re|'ve|'m|'ll|'d| ?[{_L}]+| ?[{_N}]+| ?[^{_S}{_L}{_N}]+|[{_S}]+(?![^{_S}])|[{_S}]+")


def pre_tokenize(text: str) -> list[str]:
    """HF ByteLevel 전처리: GPT-2 정규식으로 자른 조각마다 UTF-8 바이트를 표의 문자로 바꿉니다 ("안" → "ìķĪ")."""
    return ["".join(BYTE_TO_CHAR[b] for b in piece.encode("utf-8")) for piece in GPT2_SPLIT.findall(text)]


def split_specials(text: str, special_tokens) -> list[str]:
    """특수 토큰을 경계로 자릅니다: "a<|endoftext|>b" → ["a", "<|endoftext|>", "b"] (긴 특수 토큰이 먼저)."""
    if not special_tokens:
        return [text]
    pattern = "|".join(re.escape(s) for s in sorted(special_tokens, key=len, reverse=True))
    return [piece for piece in re.split(f"({pattern})", text) if piece]


def merge_word(word: list[int], pair: tuple[int, int], new: int) -> list[int]:
    """단어(토큰 id의 리스트)에서 `pair`가 나올 때마다 `new` 하나로 바꾼 새 리스트.

    힌트: 왼쪽부터 훑으며 word[i], word[i+1]이 pair이면 new를 넣고 두 칸 건너뜁니다(겹치는 쌍은 왼쪽이 먼저:
    [a, a, a]를 (a, a)로 합치면 [aa, a]). 아니면 word[i]를 그대로 넣고 한 칸 갑니다.
    """
    (a, b), out, i = pair, [], 0
    while i < len(word):
        if word[i] == a and i + 1 < len(word) and word[i + 1] == b:
            out.append(new)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


@dataclass
class BPETokenizer:
    """학습이 끝난 토크나이저: vocab(토큰 문자열 → id)과 merges(합친 순서대로의 쌍), 특수 토큰."""

    vocab: dict[str, int]
    merges: list[tuple[str, str]]
    special_tokens: tuple[str, ...] = ()
    tokens: dict[int, str] = field(init=False, repr=False)  # id → 토큰
    ranks: dict[tuple[str, str], int] = field(init=False, repr=False)  # 쌍 → 합친 순서(작을수록 먼저)

    def __post_init__(self) -> None:
        self.special_tokens = tuple(self.special_tokens)
        self.tokens = {i: t for t, i in self.vocab.items()}
        self.ranks = {pair: rank for rank, pair in enumerate(self.merges)}

    def encode(self, text: str) -> list[int]:
        """텍스트 → 토큰 id. 특수 토큰은 통째로 그 id 하나가 됩니다.

        힌트: split_specials로 자른 뒤 특수 토큰이 아닌 조각을 pre_tokenize하고, 각 단어를 문자 리스트로 시작해
        이웃한 쌍 가운데 self.ranks가 가장 작은 쌍(같으면 왼쪽)을 하나 합치기를 더 합칠 쌍이 없을 때까지
        되풀이합니다. 남은 조각을 self.vocab으로 id로 바꿉니다.
        """
        ids = []
        for piece in split_specials(text, self.special_tokens):
            if piece in self.special_tokens:
                ids.append(self.vocab[piece])
                continue
            for word in pre_tokenize(piece):
                parts = list(word)
                while len(parts) > 1:
                    rank, i = min(
                        (self.ranks.get(pair, len(self.ranks)), i) for i, pair in enumerate(zip(parts, parts[1:]))
                    )
                    if rank == len(self.ranks):  # 합칠 쌍이 없습니다
                        break
                    parts[i : i + 2] = [parts[i] + parts[i + 1]]
                ids.extend(self.vocab[p] for p in parts)
        return ids

    def decode(self, ids: list[int]) -> str:
        """토큰 id → 텍스트: encode의 역(inverse)입니다.

        힌트: 보통 토큰은 문자마다 CHAR_TO_BYTE로 바이트를 모아 UTF-8로 풉니다(errors="replace": 토큰 경계가
        글자 중간일 수 있으니 바이트를 다 모은 뒤에 풉니다). 특수 토큰은 그 문자열 그대로 넣습니다.
        """
        out, buf = [], bytearray()
        for i in ids:
            token = self.tokens[i]
            if token in self.special_tokens:
                out += [buf.decode("utf-8", errors="replace"), token]
                buf.clear()
            else:
                buf.extend(CHAR_TO_BYTE[c] for c in token)
        return "".join(out) + buf.decode("utf-8", errors="replace")


def train(texts, vocab_size: int, special_tokens=(), min_frequency: int = 0) -> BPETokenizer:
    """`texts`에서 BPE를 학습합니다: HF BpeTrainer(initial_alphabet=ByteLevel.alphabet())와 같은 결과입니다.

    처음 어휘의 id는 HF와 같은 순서입니다: 특수 토큰, 그다음 256개 바이트 문자를 코드 포인트(code point) 순으로.
    학습 텍스트 속 특수 토큰은 잘라 내고 세지 않습니다 (HF는 보통 글자처럼 세므로, 그런 텍스트에서는 다를 수
    있습니다).

    힌트: 단어(pre_tokenize의 조각)별 개수를 세고 각 단어를 id 리스트로 만든 뒤, 이웃한 쌍의 개수(단어 개수로
    가중)와 쌍 → 그 쌍이 있는 단어 번호들을 셉니다. 어휘가 vocab_size가 될 때까지: 가장 많은 쌍을 고르고
    (개수가 같으면 (id, id)가 가장 작은 쌍: HF의 규칙), 새 토큰을 어휘에 넣고, 그 쌍이 있는 단어마다
    merge_word로 합치며 옛 쌍의 개수를 빼고 새 쌍의 개수를 더합니다. 가장 많은 쌍도 max(1, min_frequency)번보다
    적으면 멈춥니다. 가장 많은 쌍은 heapq의 (-개수, 쌍) 힙으로 찾으면 빠릅니다.
    """
    word_counts: Counter[str] = Counter()
    for text in texts:
        for piece in split_specials(text, special_tokens):
            if piece not in special_tokens:
                word_counts.update(pre_tokenize(piece))
    vocab: dict[str, int] = {}
    for token in [*special_tokens, *sorted(BYTE_TO_CHAR.values())]:
        vocab.setdefault(token, len(vocab))
    tokens = list(vocab)  # id → 토큰
    words = [[vocab[c] for c in w] for w in word_counts]
    counts = list(word_counts.values())
    pair_counts: defaultdict[tuple[int, int], int] = defaultdict(int)
    where: defaultdict[tuple[int, int], set[int]] = defaultdict(set)  # 쌍 → 그 쌍이 있(었)던 단어 번호
    for i, word in enumerate(words):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += counts[i]
            where[pair].add(i)
    # 가장 많은 쌍을 매번 전부 훑어 찾으면 느립니다: (-개수, 쌍)의 힙(heap)에서 꺼내고, 꺼낸 개수가 지금 개수와
    # 다르면(그사이 줄었으면) 지금 개수로 다시 넣습니다. 동점(tie) 규칙: 개수가 같으면 id 쌍 (a, b)가 가장 작은 것이
    # 먼저 나옵니다. HF BpeTrainer의 힙과 같은 규칙입니다 (tokenizers/src/models/bpe/trainer.rs의 Merge::cmp).
    heap = [(-c, pair) for pair, c in pair_counts.items()]
    heapq.heapify(heap)
    merges = []
    while len(vocab) < vocab_size and heap:
        count, pair = heapq.heappop(heap)
        if -count != pair_counts[pair]:
            if pair_counts[pair] > 0:
                heapq.heappush(heap, (-pair_counts[pair], pair))
            continue
        if -count < max(1, min_frequency):
            break
        token = tokens[pair[0]] + tokens[pair[1]]
        if token not in vocab:  # 다른 길로 이미 만든 토큰이면 (HF처럼) 그 id를 다시 씁니다
            vocab[token] = len(tokens)
            tokens.append(token)
        new_id = vocab[token]
        merges.append((tokens[pair[0]], tokens[pair[1]]))
        born = set()  # 이번에 새로 생긴 쌍 (new_id가 들어간 쌍)
        for i in where.pop(pair):
            old = words[i]
            words[i] = new = merge_word(old, pair, new_id)
            if len(new) == len(old):  # 앞선 합치기로 이 단어에서는 이미 사라진 쌍입니다
                continue
            for p in zip(old, old[1:]):
                pair_counts[p] -= counts[i]
            for p in zip(new, new[1:]):
                pair_counts[p] += counts[i]
                if new_id in p:
                    where[p].add(i)
                    born.add(p)
        for p in born:
            if pair_counts[p] > 0:
                heapq.heappush(heap, (-pair_counts[p], p))
    return BPETokenizer(vocab, merges, tuple(special_tokens))


def main() -> None:
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    data_dir = os.environ.get("KOLLM_DATA_DIR") or os.path.join(os.path.dirname(repo), "shared", "data")
    with gzip.open(os.path.join(data_dir, "nsmc", "reviews.jsonl.gz"), "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line, _ in zip(f, range(20000))]
    tok = train(texts, vocab_size=1000, special_tokens=["<|endoftext|>"], min_frequency=2)
    print(f"어휘 {len(tok.vocab)}개, 합치기 {len(tok.merges)}번; 처음 다섯: {tok.merges[:5]}")
    text = "배우들 연기 진짜 최고ㅋㅋㅋ 😂<|endoftext|>"
    ids = tok.encode(text)
    print(f"{text!r} → {[tok.tokens[i] for i in ids]} → {ids} → {tok.decode(ids)!r}")


if __name__ == "__main__":
    main()
