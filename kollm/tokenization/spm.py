"""SentencePiece BPE and unigram, trained by `sentencepiece` and rebuilt as a `tokenizers.Tokenizer`
that gives the same ids (tests/test_tokenizer.py checks it on real Korean text).

Why not transformers' converter: with transformers 5.23, converting a unigram model changed the ids of
49 % of KLUE-STS sentences (platform-facts). Here the model is rebuilt from the pieces and scores:
unigram keeps SentencePiece's scores (the same Viterbi), and BPE gets one merge per way to split each
piece into two pieces, ranked by the piece's score (SentencePiece merges the best-scoring pair first).
Normalisation is `identity` with spaces kept: the default `nmt_nfkc` rewrote 17 of 1,038 KLUE
sentences ("…" -> "...", NBSP, double spaces).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from kollm.tokenization.hf_bpe import SPACE, byte_fallback_decoder
from kollm.tokenization.special import BOS, EOS, PAD, ROLE_TOKENS, SPECIAL_TOKENS, UNK


def train_spm(texts: Iterable[str], vocab_size: int, model_type: str):
    """A `sentencepiece.SentencePieceProcessor` trained in memory; ids 0..6 are kollm's special tokens."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=(t for t in texts if t),
        model_writer=model,
        model_type=model_type,
        vocab_size=vocab_size,
        byte_fallback=True,
        character_coverage=0.9995,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        max_sentence_length=1 << 16,
        pad_id=0,
        unk_id=1,
        bos_id=2,
        eos_id=3,
        pad_piece=PAD,
        unk_piece=UNK,
        bos_piece=BOS,
        eos_piece=EOS,
        user_defined_symbols=ROLE_TOKENS,
        num_threads=os.cpu_count() or 1,
        minloglevel=2,
        train_extremely_large_corpus=False,
    )
    return spm.SentencePieceProcessor(model_proto=model.getvalue())


def _frame(model) -> Tokenizer:
    tok = Tokenizer(model)
    tok.normalizer = normalizers.Sequence([])  # identity, as trained
    # add_dummy_prefix + split_by_whitespace: every word starts with ▁, no piece crosses a word start
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="always", split=True)
    tok.decoder = byte_fallback_decoder()
    tok.add_special_tokens(SPECIAL_TOKENS)
    return tok


def _pieces(sp) -> list[tuple[str, float]]:
    return [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]


def from_unigram(sp) -> Tokenizer:
    return _frame(models.Unigram(_pieces(sp), unk_id=sp.unk_id(), byte_fallback=True))


def from_bpe(sp) -> Tokenizer:
    pieces = _pieces(sp)
    vocab = {p: i for i, (p, _) in enumerate(pieces)}
    normal = [
        i
        for i in range(len(pieces))
        if not (sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i) or sp.is_unused(i))
        and pieces[i][0] not in ROLE_TOKENS
    ]
    merges = []
    for i in sorted(normal, key=lambda i: -pieces[i][1]):  # best score first = merged first
        p = pieces[i][0]
        merges += [(p[:k], p[k:]) for k in range(1, len(p)) if p[:k] in vocab and p[k:] in vocab]
    return _frame(models.BPE(vocab=vocab, merges=merges, unk_token=UNK, byte_fallback=True))


def train_unigram(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> Tokenizer:
    return from_unigram(train_spm(texts, vocab_size, "unigram"))


def train_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> Tokenizer:
    return from_bpe(train_spm(texts, vocab_size, "bpe"))
