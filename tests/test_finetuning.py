"""Each fine-tuning method, with each head, on a tiny pretrained Llama and real Korean rows."""

import os

import pytest
import torch

from kollm.config import FinetuneConfig
from kollm.data import metrics, tasks
from kollm.finetune import heads, methods
from kollm.finetune import trainer as train

# merged weights vs adapter on the side: fp32 sums in a different order (observed <= 2e-6)
MERGE_ATOL = 1e-4

ROWS = [
    {"text": "최고의 영화 감동 그 자체", "label": 1},
    {"text": "시간 낭비 최악의 영화", "label": 0},
    {"text": "배우들 연기가 정말 좋았다", "label": 1},
    {"text": "지루하고 뻔한 이야기", "label": 0},
]
METHODS = tuple(methods.METHODS)  # the registry: every finetune.method


def _batch(head, tokenizer, rows=ROWS):
    return heads.collate(head, heads.examples(head, tokenizer, tasks.NSMC, rows, 48), tokenizer.pad_token_id)


def _logits(model, ids, mask):
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits.float()


def _train_steps(model, ids, mask, labels, lr, steps=8):
    opt = torch.optim.AdamW(train.param_groups(model, lr, FinetuneConfig().lr))  # as the trainer groups them
    model.train()
    losses = []
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("head", ["lm", "cls"])
@pytest.mark.parametrize("method", METHODS)
def test_method_trains_saves_loads_and_merges(method, head, tiny_model_dir, korean_tokenizer, tmp_path):
    from peft import PeftModel

    s = FinetuneConfig(lora_r=4, lora_alpha=8, lora_dropout=0.0, waveft_n_frequency=256, prompt_tokens=4)
    init = "다음 영화 리뷰의 감정을 분류하세요." if method == "prompt_tuning" else ""
    model = methods.load(tiny_model_dir, head, method, 2, s, korean_tokenizer.pad_token_id, init)
    trainable, total = methods.trainable_parameters(model)
    assert 0 < trainable <= total
    if method != "full":
        assert trainable / total < 0.5  # an adapter trains a fraction of the weights

    ids, mask, labels = _batch(head, korean_tokenizer)
    lr = train.lr_for(method, FinetuneConfig()) * (5 if method == "full" else 1)
    losses = _train_steps(model, ids, mask, labels, lr)
    assert losses[-1] < losses[0], losses
    trained = _logits(model, ids, mask)
    if method == "full":
        return

    model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()  # HF-PEFT format
    base = methods.load_base(tiny_model_dir, head, 2, korean_tokenizer.pad_token_id, quantized=method == "qlora")
    if head == "cls" and method != "qlora":
        # the fresh score head's weights come from the adapter folder (modules_to_save)
        torch.nn.init.zeros_(base.score.weight)
    reloaded = PeftModel.from_pretrained(base, str(tmp_path / "adapter"))
    torch.testing.assert_close(_logits(reloaded, ids, mask), trained, atol=1e-5, rtol=0)

    if method in methods.MERGEABLE and method != "qlora":
        merged = methods.merged(reloaded, method)
        assert not isinstance(merged, PeftModel)
        torch.testing.assert_close(_logits(merged, ids, mask), trained, atol=MERGE_ATOL, rtol=0)
    if method == "qlora":
        # exported the usual QLoRA way: the adapter merged into the full-precision base
        plain = train.merged_for_export(
            None, method, tiny_model_dir, head, 2, korean_tokenizer.pad_token_id, str(tmp_path / "adapter")
        )
        assert all(p.dtype == torch.float32 for p in plain.parameters())
        # NF4 rounding makes it differ from the trained model, but the adapter moved it towards it
        untrained = methods.load_base(tiny_model_dir, head, 2, korean_tokenizer.pad_token_id)
        assert (_logits(plain, ids, mask) - trained).norm() < (_logits(untrained, ids, mask) - trained).norm()


@pytest.mark.parametrize("method", ["lora", "dora", "waveft"])
def test_unmerge_restores_the_base_logits(method, tiny_model_dir, korean_tokenizer):
    from transformers import AutoModelForCausalLM

    s = FinetuneConfig(lora_r=4, lora_alpha=8, lora_dropout=0.0, waveft_n_frequency=256)
    base_logits = _logits(AutoModelForCausalLM.from_pretrained(tiny_model_dir), *_batch("lm", korean_tokenizer)[:2])
    model = methods.load(tiny_model_dir, "lm", method, 2, s)
    ids, mask, labels = _batch("lm", korean_tokenizer)
    _train_steps(model, ids, mask, labels, 2e-3, steps=3)
    adapted = _logits(model, ids, mask)
    model.merge_adapter()
    torch.testing.assert_close(_logits(model, ids, mask), adapted, atol=MERGE_ATOL, rtol=0)
    model.unmerge_adapter()
    with model.disable_adapter():
        torch.testing.assert_close(_logits(model, ids, mask), base_logits, atol=MERGE_ATOL, rtol=0)


def test_waveft_frequencies_fit_the_smallest_targeted_layer(tiny_model_dir):
    base = methods.load_base(tiny_model_dir, "lm", 2, None)
    smallest = min(
        m.in_features * m.out_features
        for n, m in base.named_modules()
        if isinstance(m, torch.nn.Linear) and n.split(".")[-1] in methods.TARGET_MODULES["llama"]
    )
    model = methods.load(tiny_model_dir, "lm", "waveft", 2, FinetuneConfig(waveft_n_frequency=10**9))
    assert model.peft_config["default"].n_frequency == smallest


def test_lm_head_scores_follow_the_label_words(tiny_model_dir, korean_tokenizer):
    """After training on the answers, the LM head predicts each row's label word."""
    model = methods.load(tiny_model_dir, "lm", "full", 2, FinetuneConfig())
    # 60 steps: at 40 one of the four rows was still wrong in one run in many (CPU float nondeterminism)
    _train_steps(model, *_batch("lm", korean_tokenizer), lr=3e-3, steps=60)
    assert heads.predict("lm", model, korean_tokenizer, tasks.NSMC, ROWS, 48) == [r["label"] for r in ROWS]


def test_lm_examples_put_the_loss_on_the_answer_only(korean_tokenizer):
    ((ids, labels),) = heads.lm_examples(
        korean_tokenizer, tasks.KLUE_NLI, [{"text": "비가 온다.", "text_pair": "날씨가 맑다.", "label": 2}], 64
    )
    answer = [t for t in labels if t != -100]
    assert korean_tokenizer.decode(answer) == "모순</s>"
    assert ids[-len(answer) :] == answer


def test_long_inputs_keep_the_instruction_pair_and_answer_slot(korean_tokenizer):
    row = {"text": "이 영화는 정말 " * 200, "text_pair": "가설 문장입니다.", "label": 0}
    ids = heads.prompt_ids(korean_tokenizer, tasks.KLUE_NLI, row, max_len=64)
    assert len(ids) <= 60
    text = korean_tokenizer.decode(ids)
    assert "가설 문장입니다." in text and text.endswith("<|assistant|>") and "함의, 중립, 모순" in text


def test_finetune_task_writes_the_method_table_row(tiny_model_dir, korean_tokenizer, tmp_path):
    rows = ROWS * 4
    s = FinetuneConfig(method="dora", batch_size=4, max_len=48, lora_r=4, lora_alpha=8)
    row = train.finetune_task(tiny_model_dir, tasks.NSMC, rows, ROWS, s, str(tmp_path / "dora"))
    for key in ("trainable_params", "trainable_pct", "accuracy", "macro_f1", "train_s", "peak_mem_mb", "adapter_mb"):
        assert row[key] is not None and row[key] >= 0, key
    assert 0 < row["trainable_pct"] < 10 and row["peak_mem_mb"] > 50
    assert os.path.isfile(os.path.join(row["adapter_dir"], "adapter_model.safetensors"))
    assert os.path.isfile(os.path.join(row["model_dir"], "model.safetensors"))  # merged, a plain HF folder
    s.method = "prompt_tuning"
    pt = train.finetune_task(tiny_model_dir, tasks.NSMC, rows, ROWS, s, str(tmp_path / "pt"))
    assert pt["model_dir"] is None and pt["adapter_dir"]  # soft prompts cannot merge: base + adapter


def test_ia3_is_one_file_and_one_name_and_trains_on_nsmc(tiny_model_dir, korean_tokenizer, nsmc_rows, tmp_path):
    """IA3 was added as kollm/finetune/methods/ia3.py plus "ia3" in FinetuneMethod, nothing else: the registry finds
    it, the run trains only its rescaling vectors (keys, values, down_proj's input) on real NSMC reviews, saves the
    adapter in HF-PEFT format and merges it into a plain HF folder."""
    import glob

    from transformers import AutoConfig

    assert methods.METHODS["ia3"].name == "ia3" and "ia3" in methods.MERGEABLE
    registered = {os.path.basename(p)[:-3] for p in glob.glob(os.path.join(os.path.dirname(methods.__file__), "*.py"))}
    assert set(methods.METHODS) == registered - {"__init__", "method"}  # one module per method, each registered
    rows = tasks.rows_from(tasks.NSMC, nsmc_rows, seed=0, per_class=200)  # real reviews, balanced
    by_label = [[r for r in rows if r["label"] == k] for k in (0, 1)]
    train_rows, val_rows = by_label[0][:150] + by_label[1][:150], by_label[0][150:] + by_label[1][150:]
    s = FinetuneConfig(method="ia3", head="lm", batch_size=16, max_len=48, epochs=1)  # its own default ia3_lr
    row = train.finetune_task(tiny_model_dir, tasks.NSMC, train_rows, val_rows, s, str(tmp_path / "ia3"))
    c = AutoConfig.from_pretrained(tiny_model_dir)
    head_dim = c.hidden_size // c.num_attention_heads
    vectors = c.num_hidden_layers * (2 * c.num_key_value_heads * head_dim + c.intermediate_size)
    assert row["trainable_params"] == vectors  # one scale per key, value and MLP channel: nothing else trains
    assert row["loss_last"] < row["loss_first"], row
    assert row["test_examples"] == 100 and 0 <= row["accuracy"] <= 1
    assert os.path.isfile(os.path.join(row["adapter_dir"], "adapter_model.safetensors"))
    assert os.path.isfile(os.path.join(row["model_dir"], "model.safetensors"))  # merged: a plain HF folder


def test_metrics_on_hand_checked_cases():
    pred, gold = [0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0]
    assert metrics.accuracy(pred, gold) == pytest.approx(4 / 6)
    # class 0: TP 1, FP 1, FN 1 -> 0.5; class 1: TP 2, FP 0, FN 1 -> 0.8; class 2: TP 1, FP 1, FN 0 -> 2/3
    assert metrics.f1(pred, gold, 1) == pytest.approx(0.8)
    assert metrics.macro_f1(pred, gold, 3) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert metrics.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert metrics.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # ranks with a tie: x -> 1, 2.5, 2.5, 4; y monotone -> Pearson of ranks
    assert metrics.spearman([1, 5, 5, 9], [1, 2, 3, 4]) == pytest.approx(
        metrics.pearson([1, 2.5, 2.5, 4], [1, 2, 3, 4])
    )
    assert metrics.spearman([1, 2, 3, 4], [1, 4, 9, 16]) == pytest.approx(1.0)


def test_tasks_read_rows_and_refuse_bad_ones():
    from kollm.core.errors import KollmError

    nli = tasks.rows_from(tasks.KLUE_NLI, [{"premise": "a", "hypothesis": "b", "gold_label": "neutral"}])
    assert nli == [{"text": "a", "text_pair": "b", "label": 1}]
    with pytest.raises(KollmError, match="lacks the column 'hate'"):
        tasks.rows_from(tasks.HATE, [{"text": "댓글"}])
    with pytest.raises(KollmError, match="unknown label"):
        tasks.rows_from(tasks.HATE, [{"text": "댓글", "hate": "spam"}])
    nsmc = tasks.rows_from(
        tasks.NSMC,
        [
            {"text": "좋다", "rating": 10},
            {"text": "별로", "rating": 2},
            {"text": "글쎄", "rating": 6},
            {"text": "최고", "rating": 9},
        ],
    )
    assert sorted(r["label"] for r in nsmc) == [0, 1]  # balanced, 5-8 excluded


def test_few_shot_prompts_put_solved_examples_before_the_question(korean_tokenizer):
    from kollm.evaluate import prompting

    shots = prompting.shots(ROWS * 3, 4, 2, seed=0)
    assert sorted(r["label"] for r in shots) == [0, 0, 1, 1]  # balanced over the labels
    text = prompting.renderer(korean_tokenizer, tasks.NSMC, shots)({"text": "새 리뷰", "label": 0})
    assert text.count("<|user|>") == 5 and text.count("<|assistant|>") == 5 and text.endswith("<|assistant|>")
    assert text.index("새 리뷰") > max(text.index(r["text"]) for r in shots)
    for r in shots:  # each example is followed by its own answer
        after = text[text.index(r["text"]) :]
        assert after.split("<|assistant|>", 1)[1].startswith(tasks.NSMC.labels[r["label"]])


def test_length_grouped_batches_see_every_example_once_with_little_padding():
    import random

    from kollm.finetune.trainer import length_grouped_batches

    rng = random.Random(0)
    examples = [([1] * rng.randint(3, 90), i) for i in range(1000)]
    batches = length_grouped_batches(examples, 32, random.Random(1), window=8)
    assert sorted(y for b in batches for _, y in b) == list(range(1000))
    assert len(batches) == -(-1000 // 32)

    def padded(bs):
        return sum(len(b) * max(len(x) for x, _ in b) for b in bs)

    plain = [examples[i : i + 32] for i in range(0, 1000, 32)]
    assert padded(batches) < 0.7 * padded(plain)  # the point of grouping: far fewer pad tokens
    # a different epoch (rng state) gives different batches: not the same order every pass
    assert batches != length_grouped_batches(examples, 32, random.Random(2), window=8)
