"""The architecture registry (model.arch): every architecture builds at one non-embedding budget, trains in
kollm's torch loop on real reviews, and generates with a cache that agrees with the full forward pass."""

from dataclasses import replace

import pytest
import torch

from kollm.config import ModelConfig, PretrainConfig
from kollm.core.errors import KollmError
from kollm.models import architectures, build_model, parameter_count
from kollm.pretrain import indexed_data
from kollm.pretrain import torch_backend as pretrain
from tests.conftest import write_corpus

SMALL = ModelConfig(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=176, max_seq_len=64)
# HF takes the Mamba expansion as an integer: one step of it is ~+-25% of the budget at this size; expert widths
# step by 8 (grouped matmul strides), ~+-7% here, < 1.5% at the ci and tiny sizes
WITHIN = {"mamba2": 0.3, "mamba": 0.3, "hybrid": 0.3, "moe": 0.1, "mla_moe": 0.1}


@pytest.fixture(scope="module")
def tokens(korean_tokenizer, nsmc_rows, tmp_path_factory):
    folder = tmp_path_factory.mktemp("arch_tokens")
    write_corpus(nsmc_rows[:3000], folder / "corpus.jsonl")
    korean_tokenizer.save_pretrained(folder / "tok")
    indexed_data.build_indexed_dataset(
        str(folder / "corpus.jsonl"), str(folder / "tok"), str(folder / "data"), workers=1, progress=False
    )
    return indexed_data.load_tokens(str(folder / "data"))


@pytest.mark.parametrize("arch", architectures.ARCHS)
def test_each_architecture_matches_the_budget_trains_and_generates_with_a_consistent_cache(
    arch, korean_tokenizer, tokens, tmp_path
):
    m = replace(SMALL, arch=arch)
    row = architectures.describe(m, korean_tokenizer)
    budget = row["budget_non_embedding_params"]
    assert abs(row["non_embedding_params"] - budget) <= WITHIN.get(arch, 0.05) * budget, row
    model = build_model(m, korean_tokenizer, seed=0)
    assert architectures.counts(model) == {k: row[k] for k in ("params", "non_embedding_params")}
    assert parameter_count(m, len(korean_tokenizer)) == row["params"]
    if arch in architectures.ACTIVE_EXPERTS:
        assert row["active_non_embedding_params"] < row["non_embedding_params"]
    # kollm's pretraining loop (fused LM-head loss; the MoE's balancing loss), on real reviews
    result = pretrain.train_loop(
        model,
        tokens,
        PretrainConfig(
            steps=25, batch_size=8, seq_len=32, lr=5e-3, warmup_steps=3, checkpoint_every=25, log_every=5, threads=1
        ),
        str(tmp_path),
        1.0,
    )
    losses = [h["loss"] for h in result["history"]]
    assert losses[-1] < losses[0] - 0.5, losses
    # greedy generation with the architecture's cache (KV, SSM state, or both) = argmax of full forward passes
    model.eval()
    prompt = korean_tokenizer("이 영화 정말", return_tensors="pt", add_special_tokens=False).input_ids
    cached = model.generate(prompt, max_new_tokens=8, do_sample=False, pad_token_id=korean_tokenizer.pad_token_id)
    ids = prompt
    with torch.no_grad():
        for _ in range(8):
            nxt = model(input_ids=ids, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, nxt], dim=1)
    assert cached[0, : ids.shape[1]].tolist() == ids[0, : cached.shape[1]].tolist()


def test_an_unknown_architecture_is_one_line():
    from kollm import config
    from recipes import presets

    with pytest.raises(KollmError, match="model.arch"):
        config.validate(presets.build("ci", ["model.arch=transformer"]))
    with pytest.raises(KollmError, match="pretrain.backend=torch"):
        config.validate(config.apply_overrides(presets.llama_125m_1gpu(), ["model.arch=mamba2"]))


def test_the_moe_trains_with_its_balancing_loss_and_samples_a_padded_batch(korean_tokenizer):
    """Qwen3-MoE: kollm's loss adds the load-balancing term (coefficient 0.01) that HF's own forward adds; generating
    a left-padded batch with a mask, as TRL's GRPO samples, works (with router logits on in the config it fails
    inside HF's aux-loss code)."""
    tok = korean_tokenizer
    model = build_model(replace(SMALL, arch="moe"), tok, seed=0)
    ids = tok(["이 영화 정말 재밌었어요 배우들 연기가 최고"], return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        logits = model(input_ids=ids[:, :-1]).logits
        plain = torch.nn.functional.cross_entropy(logits[0].float(), ids[0, 1:])
        for chunk in (0, 4):
            total = pretrain.CausalLMLoss(model, chunk)(ids[:, :-1], ids[:, 1:])
            assert 0.005 < float(total - plain) < 0.1, (chunk, float(total), float(plain))  # 0.01 x balance (~1-4)
    batch = tok(
        ["이 영화", "정말 재밌는 영화였어요 ㅋㅋ"],
        padding=True,
        padding_side="left",
        return_tensors="pt",
        add_special_tokens=False,
    )
    out = model.generate(**batch, max_new_tokens=4, do_sample=True, pad_token_id=tok.pad_token_id)
    assert out.shape == (2, batch.input_ids.shape[1] + 4)


@pytest.mark.parametrize("arch", ["mamba2", "mamba", "hybrid", "rwkv"])
def test_the_recurrent_models_load_as_sequence_classifiers_from_their_pretrained_folder(
    arch, korean_tokenizer, tmp_path
):
    """kollm/models/seq_classification.py: AutoModelForSequenceClassification loads a pretrained Mamba-2, Mamba,
    Nemotron-H or RWKV folder (the backbone's weights, a fresh score head) and scores each row at its last real token
    in a padded batch, as transformers' Llama head does; a train step moves the loss; save and load round-trip."""
    from kollm.models.seq_classification import AutoModelForSequenceClassification

    torch.manual_seed(0)
    lm = build_model(replace(SMALL, arch=arch), korean_tokenizer, seed=0).eval()
    lm.save_pretrained(tmp_path / "lm")
    cls = AutoModelForSequenceClassification.from_pretrained(tmp_path / "lm", num_labels=2)
    cls.config.pad_token_id = korean_tokenizer.pad_token_id
    assert type(cls).__name__.endswith("ForSequenceClassification")
    texts = ["이 영화 정말 재밌어요 배우들 연기도 최고", "별로"]
    batch = korean_tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    assert batch.attention_mask[1].sum() < batch.attention_mask.shape[1]  # the second row is padded
    with torch.no_grad():
        hidden = lm(**batch, output_hidden_states=True).hidden_states[-1]
        last = batch.attention_mask.sum(-1) - 1 if korean_tokenizer.padding_side == "right" else torch.full((2,), -1)
        expected = cls.score(hidden[torch.arange(2), last])
        assert torch.allclose(cls(**batch).logits, expected, atol=1e-5)
    cls.train()
    optimizer = torch.optim.AdamW(cls.parameters(), lr=1e-2)
    labels = torch.tensor([1, 0])
    losses = []
    for _ in range(5):
        loss = cls(**batch, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    cls.eval().save_pretrained(tmp_path / "cls")
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path / "cls")
    with torch.no_grad():
        assert torch.equal(again(**batch).logits, cls(**batch).logits)


@pytest.mark.parametrize("arch", architectures.ARCHS)
def test_rows_are_packed_for_sft_exactly_where_packing_keeps_them_apart(arch, korean_tokenizer):
    """Padding-free SFT runs a batch's rows as one sequence with restarting position ids (as TRL's collator does,
    without a cache). kollm packs the model types in PACKABLE_MODEL_TYPES: for those a row's logits packed behind
    another must equal its logits alone; for the others (state carried across rows) they must not."""
    model = build_model(replace(SMALL, arch=arch), korean_tokenizer, seed=0).eval()
    first, second = korean_tokenizer(
        ["정말 재밌게 봤습니다 배우들 연기도 좋고", "별로였어요 다시는 안 봄"], add_special_tokens=False
    ).input_ids
    packed = torch.tensor([first + second])
    positions = torch.tensor([list(range(len(first))) + list(range(len(second)))])
    with torch.no_grad():
        alone = model(input_ids=torch.tensor([second]), use_cache=False).logits
        behind = model(input_ids=packed, position_ids=positions, use_cache=False).logits[:, len(first) :]
    kept_apart = torch.allclose(alone, behind, atol=1e-4)
    assert kept_apart == (model.config.model_type in architectures.PACKABLE_MODEL_TYPES), (
        arch,
        (alone - behind).abs().max(),
    )


def test_the_registry_is_every_arch_and_says_what_each_is():
    """model.arch's choices and the registry agree; each entry's model_type is its config's (what decides packing);
    only the Llama has no width knob, and only RWKV needs a setup (kollm's batch-correct class)."""
    import typing

    from kollm.models.config import Arch

    assert set(architectures.ARCHITECTURES) == set(typing.get_args(Arch))
    m = ModelConfig(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128, max_seq_len=64)
    for name, a in architectures.ARCHITECTURES.items():
        assert a.config(m, 300, 1 if a.knob == "expand" else 64).model_type == a.model_type, name
    assert [n for n, a in architectures.ARCHITECTURES.items() if not a.knob] == ["llama"]
    assert [n for n, a in architectures.ARCHITECTURES.items() if a.setup] == ["rwkv"]
    assert set(architectures.PACKABLE_MODEL_TYPES) == {"llama", "qwen3_moe", "deepseek_v3"}
