"""LoRA by hand (course/scratch/lora.py) computes what HF PEFT's LoRA computes: with the same A and B in a tiny
transformers Llama, the same logits and gradients, the same merged weights as merge_and_unload, and only A and B
train."""

import copy

import pytest
import torch

from course import scratch

lora = scratch.load("lora")

TARGETS = ["q_proj", "v_proj", "down_proj"]
R, ALPHA = 4, 8.0
TOLERANCE = 1e-6  # fp32; both sides compute lora_B(lora_A(x)) * scaling in the same order


def _tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    return LlamaForCausalLM(cfg).eval()


def _mine_and_peft(dropout: float = 0.0):
    """The same tiny Llama twice: once wrapped by lora.add_lora, once by peft.get_peft_model, with the same random
    (nonzero) A and B copied into PEFT's lora_A / lora_B."""
    from peft import LoraConfig, get_peft_model

    base = _tiny_llama()
    mine = lora.add_lora(copy.deepcopy(base), TARGETS, r=R, alpha=ALPHA, dropout=dropout)
    config = LoraConfig(r=R, lora_alpha=ALPHA, target_modules=TARGETS, lora_dropout=dropout)
    theirs = get_peft_model(copy.deepcopy(base), config)
    wrapped = {name: m for name, m in mine.named_modules() if isinstance(m, lora.LoRALinear)}
    g = torch.Generator().manual_seed(1)
    for name, m in wrapped.items():
        with torch.no_grad():
            m.lora_A.copy_(torch.randn(m.lora_A.shape, generator=g) * 0.1)
            m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=g) * 0.1)
        peft_layer = theirs.base_model.model.get_submodule(name)
        with torch.no_grad():
            peft_layer.lora_A["default"].weight.copy_(m.lora_A)
            peft_layer.lora_B["default"].weight.copy_(m.lora_B)
    assert len(wrapped) == 2 * len(TARGETS)  # each target in each of the 2 layers
    return base, mine, theirs, wrapped


IDS = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(2))


def test_same_a_and_b_give_pefts_logits_and_gradients():
    """With the same A and B, the LoRA model's logits equal the PEFT model's (1e-6), and so do the gradients of A and
    B for the same loss."""
    _, mine, theirs, wrapped = _mine_and_peft()
    out, want = mine(input_ids=IDS).logits, theirs(input_ids=IDS).logits
    assert (out - want).abs().max().item() < TOLERANCE
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(3))
    (out * weights).sum().backward()
    (want * weights).sum().backward()
    for name, m in wrapped.items():
        peft_layer = theirs.base_model.model.get_submodule(name)
        for mine_p, peft_p in [
            (m.lora_A, peft_layer.lora_A["default"].weight),
            (m.lora_B, peft_layer.lora_B["default"].weight),
        ]:
            assert torch.allclose(mine_p.grad, peft_p.grad, rtol=1e-5, atol=1e-6), name


def test_merged_weights_equal_pefts_merge_and_unload():
    """merge_lora gives plain nn.Linear layers whose weights equal PEFT's merge_and_unload (every tensor of the
    state dict, 1e-6), and the merged model computes the adapted model's logits."""
    _, mine, theirs, _ = _mine_and_peft()
    with torch.no_grad():
        adapted = mine(input_ids=IDS).logits
    merged, peft_merged = lora.merge_lora(mine), theirs.merge_and_unload()
    assert not any(isinstance(m, lora.LoRALinear) for m in merged.modules())
    assert type(merged.model.layers[0].self_attn.q_proj) is torch.nn.Linear
    ours, want = merged.state_dict(), peft_merged.state_dict()
    assert ours.keys() == want.keys()
    for key in want:
        assert (ours[key] - want[key]).abs().max().item() < TOLERANCE, key
    with torch.no_grad():
        assert (merged(input_ids=IDS).logits - adapted).abs().max().item() < 1e-5


def test_only_a_and_b_train_and_a_fresh_adapter_changes_nothing():
    """After add_lora only the LoRA A and B of the targeted layers require grad (as many numbers as PEFT trains), B
    starts at zero, so the fresh adapter's logits are the base model's; a LoRALinear alone freezes its base layer and
    has A of shape (r, in) and B of shape (out, r)."""
    from peft import LoraConfig, get_peft_model

    base = _tiny_llama()
    mine = lora.add_lora(copy.deepcopy(base), TARGETS, r=R, alpha=ALPHA)
    trainable = [name for name, p in mine.named_parameters() if p.requires_grad]
    assert trainable and all(name.endswith(("lora_A", "lora_B")) for name in trainable)
    assert {name.rsplit(".", 2)[-2] for name in trainable} == set(TARGETS)
    peft_model = get_peft_model(copy.deepcopy(base), LoraConfig(r=R, lora_alpha=ALPHA, target_modules=TARGETS))
    assert sum(p.numel() for p in mine.parameters() if p.requires_grad) == peft_model.get_nb_trainable_parameters()[0]
    for m in mine.modules():
        if isinstance(m, lora.LoRALinear):
            assert m.lora_B.abs().sum().item() == 0 and m.lora_A.abs().sum().item() > 0
            assert m.scaling == pytest.approx(ALPHA / R)
    with torch.no_grad():
        assert torch.equal(mine(input_ids=IDS).logits, base(input_ids=IDS).logits)
    alone = lora.LoRALinear(torch.nn.Linear(6, 5), r=2, alpha=4.0)  # a LoRALinear freezes its own base layer
    assert [name for name, p in alone.named_parameters() if p.requires_grad] == ["lora_A", "lora_B"]
    assert alone.lora_A.shape == (2, 6) and alone.lora_B.shape == (5, 2)


def test_dropout_falls_on_the_adapters_input_as_in_peft():
    """With lora_dropout 0.3 in training mode and the same random seed, the logits equal PEFT's (dropout masks the
    adapter's input only, never the base layer's), and they differ from the eval-mode logits."""
    _, mine, theirs, _ = _mine_and_peft(dropout=0.3)
    mine.train()
    theirs.train()
    torch.manual_seed(7)
    out = mine(input_ids=IDS).logits
    torch.manual_seed(7)
    want = theirs(input_ids=IDS).logits
    assert (out - want).abs().max().item() < TOLERANCE
    mine.eval()
    with torch.no_grad():
        assert (mine(input_ids=IDS).logits - out).abs().max().item() > 1e-3
