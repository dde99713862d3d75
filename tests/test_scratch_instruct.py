"""The hand-written instruction fine-tuning (course/scratch/instruct.py) against TRL's SFTTrainer: the same prompt/answer
rows give the same input_ids and labels (prompt and padding at -100), and the masked loss equals TRL's completion-only
SFT loss on the same batch."""

import os
import random

import pytest
import torch

from course import scratch
from tests.conftest import tiny_random_llama

instruct = scratch.load("instruct")


@pytest.fixture(scope="module")
def chatbot_pairs(data_dir):
    path = os.path.join(data_dir, "chatbot", "ChatbotData.csv.gz")
    if not os.path.isfile(path):
        pytest.skip(f"{path}: the bundled chatbot Q/A is not here")
    return random.Random(0).sample(instruct.read_chatbot(path), 8)


def test_the_labels_hide_the_prompt_and_the_padding(korean_tokenizer, chatbot_pairs):
    """On real chatbot rows: the labels are -100 exactly on the prompt tokens and the padding, and the answer tokens
    (ending in </s>) are the rest of the row, as decoded by the HF tokenizer."""
    examples = [instruct.build_example(korean_tokenizer, *instruct.prompt_and_answer(q, a)) for q, a in chatbot_pairs]
    batch = instruct.collate(examples, korean_tokenizer.pad_token_id)
    for (question, answer), row, labels, mask in zip(
        chatbot_pairs, batch["input_ids"], batch["labels"], batch["attention_mask"]
    ):
        kept = labels[labels != -100].tolist()
        assert korean_tokenizer.decode(kept, skip_special_tokens=True).strip() == answer
        assert kept[-1] == korean_tokenizer.eos_token_id
        n = int(mask.sum())
        prompt_len = n - len(kept)
        assert (labels[:prompt_len] == -100).all() and (labels[n:] == -100).all()
        assert (row[n:] == korean_tokenizer.pad_token_id).all()
        assert question in korean_tokenizer.decode(row[:prompt_len].tolist())


def test_masked_loss_equals_trl_completion_only_sft_loss(korean_tokenizer, chatbot_pairs, tmp_path):
    """TRL's SFTTrainer on prompt/completion rows with completion_only_loss=True: its collated batch holds the same
    input_ids, labels and attention_mask as the hand-built one, and the hand-written masked loss on that batch equals
    SFTTrainer.compute_loss (the loss its training step backpropagates) within 1e-5."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    examples = [instruct.build_example(korean_tokenizer, *instruct.prompt_and_answer(q, a)) for q, a in chatbot_pairs]
    mine = instruct.collate(examples, korean_tokenizer.pad_token_id)

    rows = [dict(zip(("prompt", "completion"), instruct.prompt_and_answer(q, a))) for q, a in chatbot_pairs]
    trainer = SFTTrainer(
        model=tiny_random_llama(len(korean_tokenizer), seed=0),
        processing_class=korean_tokenizer,
        train_dataset=Dataset.from_list(rows),
        args=SFTConfig(
            output_dir=str(tmp_path),
            completion_only_loss=True,
            bf16=False,
            use_cpu=True,
            report_to=[],
            dataset_num_proc=None,
        ),
    )
    prepared = trainer.train_dataset
    assert prepared["prompt"] == [r["prompt"] for r in rows]  # TRL kept the order: row i is pair i
    batch = trainer.data_collator([prepared[i] for i in range(len(rows))])
    for key in ("input_ids", "labels", "attention_mask"):
        assert torch.equal(mine[key], batch[key]), key

    with torch.no_grad():
        theirs = trainer.compute_loss(trainer.model, dict(batch))
        ours = instruct.masked_loss(trainer.model(input_ids=batch["input_ids"]).logits, batch["labels"])
    assert abs(ours.item() - theirs.item()) < 1e-5, (ours.item(), theirs.item())
    # and not a loss over every token: the prompt tokens are out of it
    with torch.no_grad():
        everything = trainer.model(input_ids=batch["input_ids"], labels=batch["input_ids"]).loss
    assert abs(everything.item() - theirs.item()) > 1e-3


def test_one_sft_step_lowers_the_answer_loss(korean_tokenizer, chatbot_pairs):
    """sft_step takes one optimiser step on the masked loss: repeated on the same batch, the answer loss falls."""
    model = tiny_random_llama(len(korean_tokenizer), seed=1).train()
    examples = [instruct.build_example(korean_tokenizer, *instruct.prompt_and_answer(q, a)) for q, a in chatbot_pairs]
    batch = instruct.collate(examples, korean_tokenizer.pad_token_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = [instruct.sft_step(model, optimizer, batch) for _ in range(5)]
    assert losses[-1] < losses[0] - 0.1, losses
