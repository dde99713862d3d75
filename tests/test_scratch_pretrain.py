"""course/scratch/pretrain.py: the hand-written pretraining loop (schedule, AdamW, clipping) against kollm's training
frame (kollm.pretrain.train_on: torch's AdamW and clip_grad_norm_), and its sampling against greedy decoding."""

import numpy as np
import pytest
import torch

from course import scratch
from kollm.config import ModelConfig, PretrainConfig
from kollm.models import build_model
from kollm.pretrain import frame, torch_backend, train_on

pretrain = scratch.load("pretrain")

SMALL = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64, max_seq_len=64)
STEPS = 20


def _same(cfg: PretrainConfig):
    """The scratch TrainConfig with the frame's numbers (torch_backend.make_optimizer: betas (0.9, 0.95), eps 1e-8)."""
    return pretrain.TrainConfig(
        steps=cfg.steps,
        lr=cfg.lr,
        warmup_steps=cfg.warmup_steps,
        min_lr_ratio=cfg.min_lr_ratio,
        weight_decay=cfg.weight_decay,
        grad_clip=cfg.grad_clip,
        betas=(0.9, 0.95),
        eps=1e-8,
    )


def test_schedule_is_the_frames_warmup_and_cosine():
    """lr_at gives kollm.pretrain.frame.lr_at's learning rate at every step (warmup, cosine, the min_lr floor, and
    past the last step), for several configurations."""
    for steps, warmup, ratio in ((100, 10, 0.1), (20, 5, 0.0), (50, 0, 0.3), (7, 7, 0.1)):
        cfg = PretrainConfig(steps=steps, warmup_steps=warmup, min_lr_ratio=ratio, lr=3e-3)
        ours = [pretrain.lr_at(s, _same(cfg)) for s in range(steps + 5)]
        theirs = [frame.lr_at(s, cfg) for s in range(steps + 5)]
        assert np.allclose(ours, theirs, rtol=1e-12, atol=0), (steps, warmup, ratio)


def test_top_k_never_samples_outside_the_top_k():
    """next_token with top_k=5 (at a high temperature, so the five are all drawn) only ever returns one of the five
    largest logits of its row; temperature 0 is the argmax."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 50, generator=gen)
    top5 = torch.topk(logits, 5, dim=-1).indices
    drawn = torch.cat([pretrain.next_token(logits, temperature=3.0, top_k=5, gen=gen) for _ in range(300)], dim=1)
    for row in range(4):
        assert set(drawn[row].tolist()) == set(top5[row].tolist())
    assert torch.equal(pretrain.next_token(logits, temperature=0.0), logits.argmax(-1, keepdim=True))


@pytest.fixture(scope="module")
def runs(korean_tokenizer, nsmc_rows):
    """The frame and the scratch loop, each from build_model(seed=0), on the same 20 batches (drawn once by the
    frame's get_batch) with the same schedule, AdamW settings and clipping, in fp32 without autocast."""
    eos = korean_tokenizer.eos_token_id
    ids = korean_tokenizer([r["text"] for r in nsmc_rows[:1500]], add_special_tokens=False)["input_ids"]
    tokens = np.array([t for doc in ids for t in [*doc, eos]], dtype=np.uint16)
    cfg = PretrainConfig(
        steps=STEPS, batch_size=8, seq_len=32, lr=5e-3, warmup_steps=5, grad_clip=0.3, precision="fp32"
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    batches = [torch_backend.get_batch(tokens, cfg.batch_size, cfg.seq_len, gen) for _ in range(STEPS)]
    theirs_model, ours_model = (build_model(SMALL, korean_tokenizer, seed=0) for _ in range(2))
    for (n, a), (_, b) in zip(theirs_model.state_dict().items(), ours_model.state_dict().items(), strict=True):
        assert torch.equal(a, b), n
    ours, norms = pretrain.train(ours_model, iter(batches), _same(cfg))
    theirs = train_on(theirs_model, iter(batches), STEPS, cfg)
    return {"tokens": tokens, "cfg": cfg, "batches": batches, "ours": ours, "norms": norms, "theirs": theirs,
            "model": ours_model, "theirs_model": theirs_model}  # fmt: skip


def test_scratch_loop_logs_the_frames_losses(runs):
    """20 steps of the scratch loop (hand-written AdamW, schedule and clipping) log the same losses as kollm's
    training frame (train_on) to 1e-4; the loss falls and clipping was active (the first norms exceed the clip)."""
    ours, theirs = np.array(runs["ours"]), np.array(runs["theirs"])
    assert len(ours) == len(theirs) == STEPS
    assert np.allclose(ours, theirs, atol=1e-4, rtol=0), np.abs(ours - theirs).max()
    assert ours[-1] < ours[0] - 0.5
    assert max(runs["norms"]) > runs["cfg"].grad_clip
    # and the weights both loops end with agree too
    x = runs["batches"][0][0]
    with torch.no_grad():
        diff = (runs["model"](x).logits - runs["theirs_model"](x).logits).abs().max().item()
    assert diff < 1e-3, diff


def test_batches_and_validation_loss(runs):
    """get_batch draws the frame's windows from the same generator state (x, and y shifted by one); evaluate is
    the mean of HF's own loss (labels=, shifted inside the model) over the same fixed windows."""
    tokens, cfg = runs["tokens"], runs["cfg"]
    ours = pretrain.get_batch(tokens, 8, 32, torch.Generator().manual_seed(cfg.seed))
    assert all(torch.equal(a, b) for a, b in zip(ours, runs["batches"][0], strict=True))
    assert torch.equal(ours[0][:, 1:], ours[1][:, :-1])
    model = runs["model"]
    val = pretrain.evaluate(model, tokens, 8, 32, batches=2, seed=3)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        windows = [
            torch.cat([x, y[:, -1:]], dim=1) for x, y in (pretrain.get_batch(tokens, 8, 32, gen) for _ in range(2))
        ]
        hf = [model(input_ids=w, labels=w).loss.item() for w in windows]  # 33 tokens: the same 32 predictions
    assert abs(val - float(np.mean(hf))) < 1e-5, (val, hf)


def test_save_then_load_gives_identical_logits(runs, korean_tokenizer, tmp_path):
    """save() then load() into a differently initialised model of the same shape gives bit-identical logits."""
    model = runs["model"].eval()
    pretrain.save(model, str(tmp_path / "weights.pt"))
    fresh = pretrain.load(build_model(SMALL, korean_tokenizer, seed=1), str(tmp_path / "weights.pt")).eval()
    x = runs["batches"][1][0]
    with torch.no_grad():
        assert torch.equal(model(x).logits, fresh(x).logits)


def test_sampling_at_top_k_1_or_tiny_temperature_is_greedy(runs):
    """generate with top_k=1, with temperature 1e-6, or with temperature 0 gives the greedy tokens: at each step the
    argmax of the model's last logits over the whole sequence so far (computed here); plain sampling differs."""
    model = runs["model"].eval()
    prompt = runs["batches"][2][0][:2, :8]
    greedy = prompt
    with torch.no_grad():
        for _ in range(12):
            greedy = torch.cat([greedy, model(greedy).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    gen = torch.Generator().manual_seed(0)
    for kwargs in ({"temperature": 1.0, "top_k": 1}, {"temperature": 1e-6}, {"temperature": 0.0}):
        assert torch.equal(pretrain.generate(model, prompt, 12, gen=gen, **kwargs), greedy), kwargs
    assert not torch.equal(pretrain.generate(model, prompt, 12, temperature=1.0, gen=gen), greedy)
