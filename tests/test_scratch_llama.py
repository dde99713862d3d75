"""The Llama written from scratch (course/scratch/llama.py, behind model.impl=scratch) computes what HF transformers'
LlamaForCausalLM computes, from the same checkpoint folder: a local HF Llama folder built from a LlamaConfig, and the
pretrained kollm model (tiny_model_dir: kollm's exported model is a HF Llama folder)."""

import json

import pytest
import torch

from course import scratch

llama = scratch.load("llama")

TOLERANCE = 1e-4  # max |logit difference| in fp32 (sdpa vs HF's eager attention may sum in another order)


def _hf_llama(tmp_path, tie: bool):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=300,
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=tie,
        rope_parameters={"rope_type": "default", "rope_theta": 50000.0},
    )
    model = LlamaForCausalLM(cfg).eval()
    model.save_pretrained(tmp_path, safe_serialization=True)
    return model


@pytest.mark.parametrize("tie", [True, False])
def test_same_weights_give_hf_llamas_logits(tmp_path, tie):
    """Loading open weights: a local HF Llama folder (GQA, tied or untied head) gives HF's logits (fp32, 1e-4)."""
    hf = _hf_llama(tmp_path, tie)
    mine = llama.from_pretrained(str(tmp_path))
    ids = torch.randint(0, 300, (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (mine(ids).logits - hf(input_ids=ids).logits).abs().max().item()
    assert diff < TOLERANCE


def test_a_saved_kollm_checkpoint_loads_and_generates_hfs_greedy_korean(tiny_model_dir):
    """Loading the pretrained kollm model (a Llama kollm pretrained on NSMC reviews, exported as a HF folder): HF's
    logits (1e-4) and HF's greedy Korean continuations."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    hf = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    mine = llama.from_pretrained(tiny_model_dir)
    for prompt in ["이 영화 정말", "배우들 연기가", "스토리는 별로지만"]:
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
        want = hf.generate(ids, max_new_tokens=20, do_sample=False, eos_token_id=None, pad_token_id=tok.pad_token_id)
        got = mine.generate(ids, max_new_tokens=20)
        with torch.no_grad():
            assert (mine(got).logits - hf(input_ids=got).logits).abs().max().item() < TOLERANCE
        assert got.tolist() == want.tolist()
        assert got.shape[1] == ids.shape[1] + 20


def test_the_kv_cache_gives_the_full_forward_passs_logits(tmp_path):
    """A prompt, then one token at a time through the KV cache: the logits of the whole sequence at once."""
    _hf_llama(tmp_path, tie=True)
    model = llama.from_pretrained(str(tmp_path))
    ids = torch.randint(0, 300, (1, 24), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(ids).logits
        cache = llama.KVCache(model.config.num_layers)
        parts = [model(ids[:, :10], cache=cache).logits]  # a prompt, then one token at a time
        parts += [model(ids[:, t : t + 1], cache=cache).logits for t in range(10, 24)]
    assert cache.length == 24
    assert (torch.cat(parts, dim=1) - full).abs().max().item() < TOLERANCE


def test_what_it_saves_hf_loads(tmp_path):
    """save_pretrained writes a folder HF's AutoModelForCausalLM loads, with the same logits."""
    from transformers import AutoModelForCausalLM

    model = llama.GPT(
        llama.GPTConfig(
            vocab_size=200,
            hidden_size=32,
            num_layers=2,
            num_heads=4,
            num_kv_heads=1,
            intermediate_size=64,
            max_seq_len=64,
        )
    )
    model.save_pretrained(str(tmp_path))
    hf = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = torch.arange(30).view(1, 30)
    with torch.no_grad():
        assert (model(ids).logits - hf(input_ids=ids).logits).abs().max().item() < TOLERANCE


def test_the_loss_is_next_token_cross_entropy_as_hf_computes_it(tmp_path):
    """labels=ids: the shifted next-token cross-entropy HF computes (1e-5)."""
    hf = _hf_llama(tmp_path, tie=True)
    model = llama.from_pretrained(str(tmp_path))
    ids = torch.randint(0, 300, (2, 16), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert abs(model(ids, labels=ids).loss.item() - hf(input_ids=ids, labels=ids).loss.item()) < 1e-5


def test_sampling_respects_top_k_and_top_p():
    """temperature 0 is argmax; top-k and top-p keep only the tokens they should."""
    logits = torch.tensor([[4.0, 3.0, 2.0, -1.0, -2.0]])
    gen = torch.Generator().manual_seed(0)
    draws = {llama.sample(logits, 1.0, 2, 1.0, gen).item() for _ in range(200)}
    assert draws == {0, 1}  # only the two most likely
    # probabilities ~ .66 .24 .09 ...: top_p 0.5 keeps only the first, 0.8 the first two
    assert {llama.sample(logits, 1.0, 0, 0.5, gen).item() for _ in range(100)} == {0}
    assert {llama.sample(logits, 1.0, 0, 0.8, gen).item() for _ in range(300)} == {0, 1}
    assert llama.sample(logits, 0.0, 0, 1.0).item() == 0


def test_attention_maps_are_causal_distributions(tmp_path):
    """output_attentions: per layer and head a causal distribution, and the explicit path gives sdpa's logits."""
    _hf_llama(tmp_path, tie=True)
    model = llama.from_pretrained(str(tmp_path))
    ids = torch.arange(12).view(1, 12)
    with torch.no_grad():
        out = model(ids, output_attentions=True)
        plain = model(ids).logits
    assert len(out.attentions) == 3 and out.attentions[0].shape == (1, 4, 12, 12)
    weights = out.attentions[1][0]
    assert torch.allclose(weights.sum(-1), torch.ones(4, 12), atol=1e-5)
    assert weights.triu(diagonal=1).abs().max().item() == 0  # no token looks ahead
    assert (out.logits - plain).abs().max().item() < TOLERANCE  # the explicit path computes what sdpa does


@pytest.mark.parametrize(
    "change,message",
    [
        ({"model_type": "mamba"}, "Llama architecture only"),
        ({"attention_bias": True}, "no biases"),
        ({"rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5}}, "only plain RoPE"),
    ],
)
def test_a_checkpoint_it_cannot_run_is_refused_with_the_reason(tmp_path, change, message):
    """A config this file does not implement is refused with the reason, not run into wrong numbers."""
    _hf_llama(tmp_path, tie=True)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, **change}))
    with pytest.raises(ValueError, match=message):
        llama.from_pretrained(str(tmp_path))


def test_a_pickle_checkpoint_is_not_read(tmp_path):
    """Only safetensors are read: a pytorch_model.bin (a pickle) is refused."""
    _hf_llama(tmp_path, tie=True)
    (tmp_path / "model.safetensors").rename(tmp_path / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="pickle"):
        llama.from_pretrained(str(tmp_path))


def test_looking_inside_draws_hangul_and_the_last_lens_layer_is_the_models_prediction(tiny_model_dir, tmp_path):
    """kollm.models.inside on the loaded kollm model: attention maps drawn with Hangul, and the logit lens's last
    layer is the model's own prediction."""
    from transformers import AutoTokenizer

    from kollm.models import inside

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = llama.from_pretrained(tiny_model_dir)
    text = "이 영화 정말 재미있어요"
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "error", message=".*[Gg]lyph"
        )  # matplotlib warns "Glyph ... missing from font" when Hangul cannot be drawn
        weights = inside.attention_maps(model, tok, text, str(tmp_path / "attention.png"))
        lens = inside.logit_lens(model, tok, text, str(tmp_path / "lens.png"))
    n = len(tok(text, add_special_tokens=False).input_ids)
    assert weights.shape == (2, 2, n, n) and (tmp_path / "attention.png").stat().st_size > 10_000
    assert len(lens["p_next"]) == 3 and len(lens["p_next"][0]) == n - 1  # the embeddings + 2 layers
    ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        final = model(ids).logits[0, :-1].softmax(-1).gather(-1, ids[0, 1:, None])[:, 0]
    assert torch.allclose(torch.tensor(lens["p_next"][-1]), final, atol=1e-5)
    with pytest.raises(ValueError, match="at least two"):
        inside.logit_lens(model, tok, "이", str(tmp_path / "x.png"))
