"""course/scratch/gpt2.py against HF transformers' GPT2LMHeadModel: a tiny random GPT-2 built from a GPT2Config (no hub),
saved with save_pretrained and loaded with from_hf_folder, gives HF's logits (fp32, 1e-4) and HF's greedy tokens."""

import pytest
import torch
import torch.nn.functional as F

from course import scratch

gpt2 = scratch.load("gpt2")

TOLERANCE = 1e-4  # max |logit difference| in fp32


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A tiny GPT-2 with every parameter random (layer norms and biases too, so a misplaced weight shows), saved."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=211, n_positions=48, n_embd=32, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name != "lm_head.weight":  # tied to wte
                norm_weight = ".ln_" in name and name.endswith("weight")
                p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.2) + (1.0 if norm_weight else 0.0))
    path = tmp_path_factory.mktemp("gpt2")
    model.save_pretrained(path, safe_serialization=True)
    return str(path), model


def test_layer_norm_and_gelu_equal_torchs():
    """The hand-written LayerNorm equals nn.LayerNorm and gelu equals F.gelu(approximate="tanh") (HF's gelu_new)."""
    x = torch.randn(3, 5, 16, dtype=torch.float64)
    mine = gpt2.LayerNorm(16).double()
    ref = torch.nn.LayerNorm(16, eps=1e-5).double()
    with torch.no_grad():
        mine.weight.normal_(), mine.bias.normal_()
        ref.weight.copy_(mine.weight), ref.bias.copy_(mine.bias)
        assert (mine(x) - ref(x)).abs().max().item() < 1e-10
    assert (gpt2.gelu(x) - F.gelu(x, approximate="tanh")).abs().max().item() < 1e-12


def test_loaded_hf_folder_gives_hfs_logits(hf_folder):
    """from_hf_folder (Conv1D weights transposed, c_attn split into q, k, v, the tied head): the same logits as
    HF's GPT2LMHeadModel on a batch of random tokens, up to the last position."""
    path, hf = hf_folder
    mine = gpt2.from_hf_folder(path)
    assert mine.lm_head.weight is mine.wte.weight  # the tied head
    ids = torch.randint(0, 211, (2, 48), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (mine(ids) - hf(input_ids=ids).logits).abs().max().item()
    assert diff < TOLERANCE, diff


def test_greedy_tokens_match_hfs_generate(hf_folder):
    """Greedy decoding with the KV cache gives the tokens HF's generate(do_sample=False) gives, and the cached logits
    equal a full forward pass."""
    path, hf = hf_folder
    mine = gpt2.from_hf_folder(path)
    for seed in range(3):
        prompt = torch.randint(1, 211, (1, 5), generator=torch.Generator().manual_seed(seed))
        want = hf.generate(prompt, max_new_tokens=20, do_sample=False, eos_token_id=None, pad_token_id=0)
        got = mine.generate(prompt, max_new_tokens=20)
        assert got.tolist() == want.tolist()
    with torch.no_grad():
        caches = mine.new_caches()
        stepped = torch.cat([mine(got[:, :5], caches)] + [mine(got[:, t : t + 1], caches) for t in range(5, 25)], 1)
        assert (stepped - mine(got)).abs().max().item() < TOLERANCE


def test_dropout_is_on_in_train_mode_only(hf_folder):
    """Dropout (embeddings, attention, residual): train mode gives different logits each call, eval the same."""
    mine = gpt2.from_hf_folder(hf_folder[0])
    ids = torch.arange(1, 17).view(1, 16)
    with torch.no_grad():
        a = mine(ids)
        assert torch.equal(a, mine(ids))
        mine.train()
        b, c = mine(ids), mine(ids)
    assert not torch.allclose(b, c) and not torch.allclose(a, b)


def test_a_config_it_does_not_implement_is_refused(hf_folder, tmp_path):
    """A GPT-2 config with another activation is refused with the reason, not loaded into wrong numbers."""
    import json
    import shutil

    shutil.copytree(hf_folder[0], tmp_path, dirs_exist_ok=True)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "activation_function": "relu"}))
    with pytest.raises(ValueError, match="tanh GELU"):
        gpt2.from_hf_folder(str(tmp_path))
