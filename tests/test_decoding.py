"""The serving engine's text and batches, without a server: what every Triton answer is made of."""

import pytest
import torch

from kollm.generation.engine import TextStream
from kollm.generation.local import generate_texts
from kollm.generation.sampling import InvalidRequest, SamplingParams, next_tokens
from kollm.models.architectures import ARCHS


def _byte_level_tokenizer(nsmc_rows):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        [r["text"] for r in nsmc_rows[:300]],
        trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False),
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok)


def test_text_stream_never_emits_half_a_hangul_character(nsmc_rows):
    """With a byte-level tokenizer one syllable spans several tokens; streamed text must stay whole."""
    fast = _byte_level_tokenizer(nsmc_rows)
    text = "정말 재밌는 영화였어요 ㅋㅋ 강추합니다"
    ids = fast(text)["input_ids"]
    assert any("\ufffd" in fast.decode([i]) for i in ids)  # token-by-token decoding breaks Hangul
    stream, seen = TextStream(fast, stop=[]), []
    for i in ids:
        stream.push(i)
        seen.append(stream.streamable())
    assert seen[-1] == text
    assert not any("\ufffd" in s for s in seen)
    assert all(b.startswith(a) for a, b in zip(seen, seen[1:]))  # cumulative: text only grows
    spaced = TextStream(fast, stop=[])
    for i in fast(" 정말   ")["input_ids"]:
        spaced.push(i)
    assert spaced.streamable() == "정말"  # no leading or trailing whitespace is ever sent


def test_text_stream_holds_back_a_possible_stop_string(nsmc_rows):
    fast = _byte_level_tokenizer(nsmc_rows)
    stream = TextStream(fast, stop=["ㅋㅋ 강추"])
    for i in fast("재밌어요 ㅋㅋ")["input_ids"]:
        stream.push(i)
    assert stream.streamable() == "재밌어요" and stream.find_stop() is None  # "ㅋㅋ" may start the stop string
    for i in fast(" 강추")["input_ids"]:
        stream.push(i)
    assert stream.find_stop() == ("재밌어요", "ㅋㅋ 강추")


def test_batched_generation_equals_one_request_at_a_time(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    prompts = ["영화 리뷰를 써 주세요.", "안녕하세요", "이 영화 정말 재미없어요. 한 줄 평을 남겨 주세요.", "ㅋㅋ"]
    greedy = SamplingParams(max_tokens=20)
    alone = [generate_texts(model, tok, [p], greedy)[0] for p in prompts]
    together = generate_texts(model, tok, prompts, greedy)  # left-padded, rows leave the batch as they finish
    assert together == alone
    assert all(text and reason in ("stop", "length") for text, reason in together)
    sampled = SamplingParams(max_tokens=20, temperature=1.0, top_k=40, top_p=0.9, seed=5)
    assert generate_texts(model, tok, prompts, sampled) == generate_texts(model, tok, prompts[::-1], sampled)[::-1]


def test_sampler_filters_and_penalties():
    logits = torch.tensor([[0.0, 3.0, 2.0, -1.0]])
    counts = torch.zeros(1, 4)
    g = [torch.Generator().manual_seed(0)]
    assert next_tokens(logits, counts, [SamplingParams(repetition_penalty=1.0)], g) == [1]  # greedy
    top1 = SamplingParams(temperature=5.0, top_k=1, repetition_penalty=1.0)
    assert {next_tokens(logits, counts, [top1], g)[0] for _ in range(20)} == {1}
    nucleus = SamplingParams(temperature=1.0, top_p=0.5, repetition_penalty=1.0)  # token 1 holds 0.67 of the mass
    assert {next_tokens(logits, counts, [nucleus], g)[0] for _ in range(20)} == {1}
    counts[0, 1] = 3  # a token said three times loses to the next best under a frequency penalty
    assert next_tokens(logits, counts, [SamplingParams(frequency_penalty=1.0, repetition_penalty=1.0)], g) == [2]


def test_sampling_params_refuse_out_of_range_values():
    for bad in (
        dict(max_tokens=0),
        dict(max_tokens=513),
        dict(temperature=-0.1),
        dict(top_p=0.0),
        dict(top_p=1.01),
        dict(top_k=-1),
        dict(stop=[""]),
        dict(stop=["x"] * 9),
        dict(temperature=float("nan")),
        dict(min_tokens=30, max_tokens=20),
    ):
        with pytest.raises(InvalidRequest, match="sampling_param_"):
            SamplingParams(**bad).check(max_tokens_limit=512)
    assert SamplingParams(temperature=0.7, top_p=1.0, top_k=0, max_tokens=512).check(512)


def _model(arch: str, tiny_model_dir, korean_tokenizer):
    """The trained tiny Llama, or another registry architecture at its size (seeded random weights: what is
    tested is that batching does not change an answer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kollm.config import ModelConfig
    from kollm.models import architectures

    if arch == "llama":
        return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    m = ModelConfig(
        hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128, max_seq_len=128, arch=arch
    )
    return architectures.build(m, korean_tokenizer).eval(), korean_tokenizer


# every architecture is served by this engine: KV cache (llama, the MoEs), SSM state (mamba, mamba2), both
# (hybrid) or RWKV's five state tensors
@pytest.mark.parametrize("arch", ARCHS)
def test_requests_joining_a_running_batch_get_the_answers_they_get_alone(arch, tiny_model_dir, korean_tokenizer):
    """Continuous batching: rows join between steps (their KV caches left-padded to the batch's length, their
    SSM states stacked) and leave when done; every answer equals the one the request gets on its own."""
    from kollm.generation.engine import BatchGenerator, Job
    from kollm.generation.local import chat_prompt_ids

    model, tok = _model(arch, tiny_model_dir, korean_tokenizer)
    prompts = [
        "영화 리뷰를 써 주세요.",
        "안녕하세요",
        "이 영화 정말 재미없어요. 한 줄 평을 남겨 주세요.",
        "ㅋㅋ",
        "긍정적인 리뷰를 길게 써 주세요. 배우들의 연기가 좋았던 점을 꼭 넣어 주세요.",
    ]
    params = [SamplingParams(max_tokens=n, min_tokens=n) for n in (30, 8, 24, 40, 16)]
    alone = [generate_texts(model, tok, [p], q)[0] for p, q in zip(prompts, params)]
    results, calls, waiting = {}, [0], []

    def job(i):
        def on_text(text, reason, _stop):
            if reason:
                results[i] = (text, reason)

        return Job(chat_prompt_ids(tok, prompts[i])[0].tolist(), params[i], on_text)

    def more(n):  # requests arriving while the batch runs; they wait while it is full (4 rows)
        calls[0] += 1
        waiting.extend({3: [job(2), job(3)], 6: [job(4)]}.get(calls[0], []))
        taken = waiting[:n]
        del waiting[:n]
        return taken

    BatchGenerator(model, tok).generate([job(0), job(1)], more=more, max_batch=4)
    assert [results[i] for i in range(5)] == alone
    assert all(reason == "length" for _, reason in alone)


def test_byte_tokens_are_only_sampled_where_they_spell_valid_utf8(korean_tokenizer, monkeypatch):
    """A model that loves byte-fallback tokens (<0xNN>) would spell U+FFFD at every step; the engine's UTF-8
    guard lets it pick a byte only where it continues or starts a character, so the bytes become Hangul."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from kollm.generation.utf8 import Utf8Guard, after

    tok = korean_tokenizer
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tok),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            intermediate_size=64,
            tie_word_embeddings=False,
        )
    )
    guard = Utf8Guard(tok, len(tok))
    assert int((guard.byte >= 0).sum()) == 256
    with torch.no_grad():  # every byte token ahead of every word: ~95 % of the probability mass on bytes
        model.lm_head.bias = torch.nn.Parameter(torch.where(guard.byte >= 0, 6.0, 0.0))
    sampled = SamplingParams(max_tokens=48, min_tokens=48, temperature=1.0, seed=3, repetition_penalty=1.0)
    prompts = ["영화 리뷰를 써 주세요.", "안녕하세요"]
    answers = [text for text, _ in generate_texts(model, tok, prompts, sampled)]
    assert not any("\ufffd" in a for a in answers), answers
    vocab = tok.get_vocab()
    from_bytes = {c for a in answers for c in a if ord(c) > 0x7F and c not in vocab and "\u2581" + c not in vocab}
    assert len(from_bytes) >= 5, answers  # multi-byte characters the model spelled byte by byte
    with pytest.raises(ValueError):
        after(0x80)  # a continuation byte starts nothing
    monkeypatch.setattr(Utf8Guard, "__init__", lambda self, *a: setattr(self, "active", False))
    try:  # what the guard prevents: U+FFFD, or tokenizers' DecodeStream refusing the bytes (the request fails)
        broken = any("\ufffd" in text for text, _ in generate_texts(model, tok, prompts, sampled))
    except RuntimeError as e:
        broken = "Invalid prefix" in str(e)
    assert broken
