"""Every tokenizer kind, trained on real NSMC reviews, exported as a HF tokenizer and loaded back."""

import json
import os
import subprocess
import sys
import unicodedata

import pytest

from kollm import tokenization as kt
from kollm.curation.korean import normalize
from kollm.tokenization import CHAT_TEMPLATE, KINDS, SPECIAL_TOKENS, jamo, kiwi, spm
from tests.conftest import REPO

# what users type and the curated corpus rarely holds: an emoji, hanja, a compatibility jamo run, Latin
RARE = ["이 영화 🎬 최고 👍👍", "漢字 섞인 리뷰 ㅋㅋㅋㅋ", "OST가 good!! 10점 만점에 10점"]


@pytest.fixture(scope="module")
def texts(nsmc_rows):
    rows = [normalize(r["text"]) for r in nsmc_rows]  # what the curate stage hands the tokenizer
    return {"train": rows[:8000], "test": rows[-1000:]}


@pytest.fixture(scope="module")
def exported(texts, tmp_path_factory):
    """{kind: (the trainer's tokenizer, the same loaded by AutoTokenizer from its saved folder)}."""
    from transformers import AutoTokenizer

    out = {}
    for kind in KINDS:
        tok = kt.train(kind, texts["train"], vocab_size=3000)
        path = tmp_path_factory.mktemp(kind)
        tok.save_pretrained(path)
        assert {"tokenizer.json", "tokenizer_config.json"} <= {p.name for p in path.iterdir()}
        out[kind] = (tok, AutoTokenizer.from_pretrained(path))
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_exported_tokenizer_loads_with_the_same_ids_and_round_trips(kind, exported, texts):
    trained, loaded = exported[kind]
    sample = texts["test"] + RARE
    assert (
        loaded(sample, add_special_tokens=False)["input_ids"] == trained(sample, add_special_tokens=False)["input_ids"]
    )
    assert len(loaded) <= 3000
    undo = jamo.to_syllables if kind == "jamo_bpe" else None
    m = kt.text_measures(loaded, sample, undo)
    assert m["roundtrip_rate_undone" if undo else "roundtrip_rate"] == 1.0  # byte fallback: nothing typed is lost
    assert m["unk_rate"] == 0
    # emoji are not in a 3k vocabulary: they fall back to bytes, except in byte-level BPE, where every
    # token is bytes
    rare = kt.text_measures(loaded, ["🎬👍"])
    if kind == "bpe_bytelevel":
        assert rare["byte_fallback_rate"] == 0
    else:
        # the emoji's 8 UTF-8 bytes, 8 tokens, beside at most a ▁ word mark
        assert rare["byte_fallback_rate"] >= 8 / 9 and m["byte_fallback_rate"] > 0


@pytest.mark.parametrize("kind", KINDS)
def test_special_tokens_and_chat_template(kind, exported):
    _, tok = exported[kind]
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))
    assert (tok.pad_token, tok.eos_token, tok.chat_template) == ("<pad>", "</s>", CHAT_TEMPLATE)
    text = tok.apply_chat_template(
        [{"role": "user", "content": "안녕하세요"}], add_generation_prompt=True, tokenize=False
    )
    assert text == "<|user|>안녕하세요</s><|assistant|>"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert ids[0] == tok.convert_tokens_to_ids("<|user|>") and ids[-1] == tok.convert_tokens_to_ids("<|assistant|>")
    assert tok.eos_token_id in ids
    assert tok.decode(ids, skip_special_tokens=True) in ("안녕하세요", unicodedata.normalize("NFD", "안녕하세요"))


def test_subword_kinds_compress_korean(exported, texts):
    cpt = {k: kt.text_measures(exported[k][1], texts["test"])["chars_per_token"] for k in KINDS}
    assert cpt["char"] < 1.0  # a character each, and ▁ for each word start
    for kind in set(KINDS) - {"char"}:
        assert cpt[kind] > 1.5, kind  # merges Hangul syllables into words


@pytest.mark.parametrize("model_type", ["bpe", "unigram"])
def test_sentencepiece_export_gives_sentencepiece_ids(model_type, texts, data_dir):
    """Ids equal sentencepiece's own on reviews and formal KLUE sentences. Unigram: where they differ,
    both are best-scoring segmentations into the same pieces in another order (an exact tie of the
    Viterbi, seen in runs of punctuation: '....' + '...' or '...' + '....')."""
    from kollm.data import sources

    sp = spm.train_spm(texts["train"], 3000, model_type)
    tok = kt.as_hf(spm.from_bpe(sp) if model_type == "bpe" else spm.from_unigram(sp))
    klue = [r["sentence1"] for r in sources.iter_klue_sts(data_dir)][:500]
    sample = texts["test"] + klue + RARE
    ours, theirs = tok(sample, add_special_tokens=False)["input_ids"], sp.encode(sample)
    differ = [i for i in range(len(sample)) if ours[i] != theirs[i]]
    if model_type == "bpe":
        assert differ == []
    assert len(differ) <= 0.01 * len(sample)
    for i in differ:
        assert sorted(ours[i]) == sorted(theirs[i]), sample[i]
        assert sum(sp.get_score(x) for x in ours[i]) == pytest.approx(sum(sp.get_score(x) for x in theirs[i]))


def test_jamo_tokens_are_jamo_and_to_syllables_is_the_way_back(exported):
    _, tok = exported["jamo_bpe"]
    text = "정말 재밌었던 영화"
    pieces = tok.convert_ids_to_tokens(tok(text, add_special_tokens=False)["input_ids"])
    assert all("가" > c or c > "힣" for p in pieces for c in p)  # no precomposed syllable left
    decoded = tok.decode(tok(text, add_special_tokens=False)["input_ids"])
    assert decoded != text and decoded == unicodedata.normalize("NFD", text)  # what breaks a plain round trip
    assert jamo.to_syllables(decoded) == text


def test_kiwi_pieces_keep_to_morphemes(exported, texts):
    """Pieces of the morpheme-aware BPE rarely cross a Kiwi morpheme boundary; a plain BPE's often do."""
    from kiwipiepy import Kiwi

    sample = texts["test"][:300]
    cuts = [set(kiwi.cut_points(t, toks)) for t, toks in zip(sample, Kiwi(num_workers=1).tokenize(sample))]
    assert kiwi.cut_points("먹었다", Kiwi(num_workers=1).tokenize("먹었다")) == [1, 2]

    def crossing(tok):
        spans = [tok(t, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"] for t in sample]
        total = sum(len(s) for s in spans)
        return sum(any(a < x < b for x in c) for s, c in zip(spans, cuts) for a, b in s) / total

    plain, aware = crossing(exported["bpe_metaspace"][1]), crossing(exported["kiwi_bpe"][1])
    assert aware < 0.03 and plain > 3 * aware, (plain, aware)


def test_the_model_takes_its_vocabulary_from_the_tokenizer(exported):
    from kollm.config import ModelConfig
    from kollm.models import build_model

    for kind in ("char", "spm_unigram"):
        tok = exported[kind][1]
        model = build_model(
            ModelConfig(
                hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64, max_seq_len=32
            ),
            tok,
        )
        assert model.config.vocab_size == len(tok) == model.get_input_embeddings().num_embeddings


def test_a_bad_kind_is_one_line(tmp_path):
    from kollm.config import KollmError, validate
    from recipes import presets

    with pytest.raises(KollmError, match="tokenizer.kind") as err:
        validate(presets.build("ci", ["tokenizer.kind=wordpiece"]))
    assert "\n" not in str(err.value) and "bpe_metaspace" in str(err.value)
    out = subprocess.run(
        [sys.executable, "-m", "recipes.cli", "run", "pipeline", "preset=ci", "tokenizer.kind=wordpiece", "--dryrun"],
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "wordpiece" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_tokenizer_kind_and_size_choose_the_pipelines_tokenizer_and_the_models_vocabulary(nsmc_rows, tmp_path):
    """`kollm stage tokenizer tokenizer.kind=spm_unigram tokenizer.vocab_size=1500` on a curated corpus, then
    `kollm stage pretrain` on it: the saved tokenizer is that kind and size, and the model's vocabulary is its."""
    from recipes import presets
    from stages import base
    from tests.conftest import run_cli, write_manifest

    cfg = presets.build("ci", [f"run.root={tmp_path}"])
    curate = base.stage_dir(cfg, "curate")
    os.makedirs(curate)
    files = {}
    for name, rows in (("corpus", nsmc_rows[:4000]), ("heldout", nsmc_rows[-300:])):
        files[name] = os.path.join(curate, f"{name}.jsonl")
        with open(files[name], "w", encoding="utf-8") as f:
            f.writelines(
                json.dumps({"id": str(r["review_id"]), "text": r["text"]}, ensure_ascii=False) + "\n" for r in rows
            )
    write_manifest(curate, "curate", **files)
    common = ["preset=ci", f"run.root={tmp_path}", "tokenizer.kind=spm_unigram", "tokenizer.vocab_size=1500"]
    proc = run_cli(["stage", "tokenizer", *common])
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = json.load(open(base.manifest_path(cfg, "tokenizer")))
    assert manifest["metrics"]["kind"] == "spm_unigram" and manifest["counts"]["vocab_size"] == 1500
    assert manifest["metrics"]["heldout_roundtrip_rate"] == 1.0
    tok_dir = manifest["outputs"]["tokenizer_dir"]
    assert json.load(open(os.path.join(tok_dir, "tokenizer.json")))["model"]["type"] == "Unigram"
    proc = run_cli(["stage", "pretrain", *common, "pretrain.steps=3", "pretrain.log_every=1", "pretrain.threads=1"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    model_dir = json.load(open(base.manifest_path(cfg, "pretrain")))["outputs"]["model_dir"]
    assert json.load(open(os.path.join(model_dir, "config.json")))["vocab_size"] == 1500

    # another kind of the same size in the same run: pretraining must not resume on the old ids
    common[2] = "tokenizer.kind=bpe_metaspace"
    assert run_cli(["stage", "tokenizer", *common]).returncode == 0
    proc = run_cli(["stage", "pretrain", *common, "pretrain.steps=3", "pretrain.log_every=1", "pretrain.threads=1"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "was made for another tokenizer or corpus" in proc.stdout + proc.stderr
    manifest = json.load(open(base.manifest_path(cfg, "pretrain")))
    assert manifest["resumed_from"] is None
    assert json.load(open(os.path.join(model_dir, "tokenizer.json")))["model"]["type"] == "BPE"
    data = os.path.join(base.stage_dir(cfg, "pretrain"), "data", "train")
    from transformers import AutoTokenizer

    bpe = AutoTokenizer.from_pretrained(model_dir)
    assert json.load(open(data + ".json"))["tokens"] == sum(
        len(bpe(r["text"], add_special_tokens=False)["input_ids"]) + 1 for r in nsmc_rows[:4000]
    )


def test_the_same_corpus_gives_the_same_tokenizer_in_every_process(texts, tmp_path):
    """HF's BPE trainer broke ties in its alphabet cut in hash order, which changes per process: the same reviews
    gave a different vocabulary, so a different model, in every CI run. Three processes, one tokenizer."""
    corpus = tmp_path / "texts.json"
    corpus.write_text(json.dumps(texts["train"][:4000], ensure_ascii=False))
    code = (
        "import json, sys; from kollm import tokenization as kt; "
        "print(kt.train(sys.argv[1], json.load(open(sys.argv[2])), vocab_size=1500).backend_tokenizer.to_str())"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code, "bpe_metaspace", str(corpus)],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        ).stdout
        for _ in range(3)
    }
    assert len(outs) == 1
    assert len(json.loads(outs.pop())["model"]["vocab"]) >= 1400
