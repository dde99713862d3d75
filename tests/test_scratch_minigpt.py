"""course/scratch/minigpt.py: the char-level miniGPT's attention against torch's, its held-out loss against a
character unigram model, sampling with top_k=1 against greedy decoding, and the attention picture."""

import collections
import math

import pytest
import torch
import torch.nn.functional as F

from course import scratch

minigpt = scratch.load("minigpt")

STEPS = 150


def test_attention_equals_torch_scaled_dot_product_attention():
    """The hand-written causal multi-head attention gives torch's F.scaled_dot_product_attention(is_causal=True) on
    the same q/k/v projections (1e-6), and the weights it keeps for the picture are causal rows summing to one."""
    torch.manual_seed(0)
    cfg = minigpt.Config(vocab_size=10, block_size=16, n_layer=1, n_head=4, n_embd=32)
    attn = minigpt.CausalSelfAttention(cfg).eval()
    x = torch.randn(3, 12, 32)
    with torch.no_grad():
        ours = attn(x)
        q, k, v = (t.view(3, 12, 4, 8).transpose(1, 2) for t in attn.c_attn(x).split(32, dim=2))
        ref = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(3, 12, 32)
        ref = attn.c_proj(ref)
    assert torch.allclose(ours, ref, atol=1e-6), (ours - ref).abs().max()
    assert attn.att.shape == (3, 4, 12, 12)
    assert torch.allclose(attn.att.sum(-1), torch.ones(3, 4, 12), atol=1e-6)
    assert attn.att.triu(diagonal=1).abs().max() == 0  # no query sees a later character


@pytest.fixture(scope="module")
def trained(data_dir):
    """A 2-layer miniGPT trained for STEPS steps on real NSMC reviews (the piece's own batches and train step)."""
    torch.manual_seed(0)
    train_text, val_text = minigpt.load_reviews(data_dir, 20000)
    vocab = minigpt.Vocab(train_text)
    cfg = minigpt.Config(vocab_size=len(vocab.chars), block_size=32, n_layer=2, n_head=4, n_embd=64)
    model = minigpt.MiniGPT(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    train = vocab.encode(train_text)
    losses = [
        minigpt.train_step(model, optimizer, *minigpt.get_batch(train, cfg.block_size, 32, gen)) for _ in range(STEPS)
    ]
    return model.eval(), vocab, train_text, val_text, losses


def test_heldout_loss_falls_below_a_character_unigram_model(trained):
    """After a short training, the mean next-character loss on held-out reviews (movies the training text never
    saw) is well below what a character unigram model reaches on the same characters: frequencies counted from the
    training text, add-one smoothing over the vocabulary. Both are computed here, outside the piece."""
    model, vocab, train_text, val_text, losses = trained
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
    n = model.cfg.block_size + 1
    ids = vocab.encode(val_text)
    windows = ids[: min(len(ids) // n, 200) * n].view(-1, n)
    with torch.no_grad():
        logits = model(windows[:, :-1])
    targets = windows[:, 1:].reshape(-1)
    model_loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets).item()
    counts = collections.Counter(train_text)
    total = len(train_text) + len(vocab.chars)
    unigram = -sum(math.log((counts[vocab.chars[t]] + 1) / total) for t in targets.tolist()) / len(targets)
    assert len(targets) > 5000
    assert abs(minigpt.unigram_loss(vocab.encode(train_text), targets, len(vocab.chars)) - unigram) < 1e-6
    assert model_loss < unigram - 0.2, (model_loss, unigram)


def test_sampling_with_top_k_1_is_greedy(trained):
    """generate(temperature=1, top_k=1) picks, at each step, the argmax of the model's last logits: the same
    characters as a greedy loop written here."""
    model, vocab, _, val_text, _ = trained
    prompt = vocab.encode(val_text[:40])[None]
    greedy = prompt
    with torch.no_grad():
        for _ in range(30):
            nxt = model(greedy[:, -model.cfg.block_size :])[:, -1].argmax(-1, keepdim=True)
            greedy = torch.cat([greedy, nxt], dim=1)
    sampled = minigpt.generate(model, prompt, 30, temperature=1.0, top_k=1, gen=torch.Generator().manual_seed(1))
    assert torch.equal(sampled, greedy), (vocab.decode(sampled[0].tolist()), vocab.decode(greedy[0].tolist()))
    other = minigpt.generate(model, prompt, 30, temperature=1.0, top_k=None, gen=torch.Generator().manual_seed(1))
    assert other.shape == greedy.shape and not torch.equal(other, greedy)  # plain sampling does differ


def test_attention_picture_is_written(trained, tmp_path):
    """The attention map of one head over a Korean review is saved as a PNG."""
    model, vocab, _, val_text, _ = trained
    text = next(r for r in val_text.split("\n") if len(r) >= 15)[:32]
    path = minigpt.save_attention_picture(model, vocab, text, str(tmp_path / "attention.png"), layer=-1, head=1)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert model.blocks[-1].attn.att.shape == (1, 4, len(text), len(text))
