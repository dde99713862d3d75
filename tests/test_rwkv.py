"""kollm/models/rwkv.py: RWKV answers a row the same in a padded batch as alone, and is transformers' RWKV otherwise."""

import pytest
import torch
import transformers as tf
from transformers.models.rwkv import modeling_rwkv as hf

from kollm.models import rwkv

CONFIG = dict(
    vocab_size=120,
    hidden_size=32,
    num_hidden_layers=2,
    attention_hidden_size=32,
    intermediate_size=64,
    context_length=64,
)


@pytest.fixture
def models():
    """kollm's RWKV as the auto class builds it, and transformers' own with the same weights."""
    torch.manual_seed(0)
    ours = tf.AutoModelForCausalLM.from_config(tf.RwkvConfig(**CONFIG)).eval()
    theirs = hf.RwkvForCausalLM(tf.RwkvConfig(**CONFIG)).eval()
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def _prompts():
    g = torch.Generator().manual_seed(1)
    return [torch.randint(3, 120, (n,), generator=g) for n in (9, 4, 6)]


def _left_padded(prompts, pad=0):
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :], mask[i, width - len(p) :] = p, 1
    return ids, mask


def test_without_padding_it_is_transformers_rwkv(models):
    ours, theirs = models
    assert type(ours) is rwkv.RwkvForCausalLM
    ids = torch.stack([p[:4] for p in _prompts()])
    with torch.no_grad():
        assert torch.equal(ours(ids).logits, theirs(ids).logits)
    ours.train(), theirs.train()
    assert torch.equal(ours(ids, labels=ids).loss, theirs(ids, labels=ids).loss)


def test_a_left_padded_prompt_ends_in_the_state_it_has_alone(models):
    """The prefill of a padded batch: last-position logits and every state tensor equal each prompt's own;
    transformers' RWKV lets the padding into the state."""
    ours, theirs = models
    prompts = _prompts()
    ids, mask = _left_padded(prompts)
    with torch.no_grad():
        batch = ours(ids, attention_mask=mask, use_cache=True)
        for i, p in enumerate(prompts):
            alone = ours(p[None], use_cache=True)
            assert torch.allclose(batch.logits[i, -1], alone.logits[0, -1], atol=1e-5)
            for s_batch, s_alone in zip(batch.state, alone.state):
                assert torch.allclose(s_batch[i], s_alone[0], atol=1e-5)
        theirs_batch = theirs(ids, attention_mask=mask).logits
        assert not torch.allclose(theirs_batch[1, -1], ours(prompts[1][None]).logits[0, -1], atol=1e-3)


def test_batched_generation_gives_each_row_its_own_answer(models):
    """generate() (GRPO's sampling, the evaluation's answers) over left-padded prompts: each row's greedy tokens
    equal the prompt's alone. transformers' one-token step mixes the rows."""
    ours, theirs = models
    prompts = _prompts()
    ids, mask = _left_padded(prompts)
    kwargs = dict(max_new_tokens=10, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        alone = [ours.generate(p[None], **kwargs)[0, len(p) :].tolist() for p in prompts]
        batched = ours.generate(ids, attention_mask=mask, **kwargs)[:, ids.shape[1] :].tolist()
        assert batched == alone
        assert theirs.generate(ids, attention_mask=mask, **kwargs)[:, ids.shape[1] :].tolist() != alone


def test_saved_folders_stay_plain_transformers_folders(models, tmp_path):
    ours, _ = models
    ours.save_pretrained(tmp_path)
    assert tf.AutoConfig.from_pretrained(tmp_path).architectures == ["RwkvForCausalLM"]
    plain = hf.RwkvForCausalLM.from_pretrained(tmp_path).eval()
    ids = _prompts()[0][None]
    with torch.no_grad():
        assert torch.equal(plain(ids).logits, ours(ids).logits)
    assert type(tf.AutoModelForCausalLM.from_pretrained(tmp_path)) is rwkv.RwkvForCausalLM


def test_the_serving_engine_makes_a_plain_rwkv_batch_correct(models, korean_tokenizer):
    from kollm.generation.engine import BatchGenerator

    _, theirs = models
    BatchGenerator(theirs, korean_tokenizer)
    assert type(theirs) is rwkv.RwkvForCausalLM
    assert all(
        type(b.attention) is rwkv.RwkvSelfAttention and type(b.feed_forward) is rwkv.RwkvFeedForward
        for b in theirs.rwkv.blocks
    )


def test_padded_training_refuses_activation_checkpointing(models):
    ours, _ = models
    ours.gradient_checkpointing_enable()
    ours.train()
    ids, mask = _left_padded(_prompts())
    with pytest.raises(ValueError, match="activation checkpointing"):
        ours(ids, attention_mask=mask, labels=ids)


def test_dynamic_int8_serves_a_freshly_loaded_rwkv(models, tmp_path):
    """The CPU Triton model quantises a model it has just loaded; RWKV halves weights in place on its first
    eval-mode pass, which a quantised layer's read-only weight refused ('function' has no attribute 'div_')."""
    from kollm.quantize.modelopt import dynamic_int8

    ours, _ = models
    ours.train().save_pretrained(tmp_path)
    fresh = tf.AutoModelForCausalLM.from_pretrained(tmp_path)
    reference = tf.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert dynamic_int8(fresh) > 0
    ids = _prompts()[0][None]
    with torch.no_grad():
        quantized, full = fresh(ids).logits, reference(ids).logits
    assert torch.isfinite(quantized).all()
    assert torch.allclose(quantized, full, atol=0.1 * full.abs().max().item())
