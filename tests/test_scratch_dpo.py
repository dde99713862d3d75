"""The hand-written DPO loss (course/scratch/dpo.py) against TRL's DPOTrainer: on the same batch with the same policy and
reference model, the same sequence log-probs, the same sigmoid loss and the same gradient w.r.t. every policy parameter
(1e-5), and the same rewards TRL logs."""

import os
import random

import pytest
import torch

from course import scratch
from tests.conftest import tiny_random_llama

dpo = scratch.load("dpo")

BETA = 0.1


@pytest.fixture(scope="module")
def preference_rows(data_dir):
    """Real chatbot Q/A as preference pairs: the row's own answer over another row's answer."""
    instruct = dpo.instruct  # the piece dpo builds on: it reads the file and fills the prompt template
    path = os.path.join(data_dir, "chatbot", "ChatbotData.csv.gz")
    if not os.path.isfile(path):
        pytest.skip(f"{path}: the bundled chatbot Q/A is not here")
    qa = random.Random(1).sample(instruct.read_chatbot(path), 6)
    return [
        {"prompt": instruct.prompt_and_answer(q, c)[0], "chosen": " " + c, "rejected": " " + r}
        for q, c, r in dpo.preference_pairs(qa, seed=0)
    ]


def test_sequence_logps_and_loss_by_hand(korean_tokenizer):
    """sequence_logps sums log p(next token) over the answer tokens only (a hand loop over one row), and dpo_loss is
    -log sigmoid(beta * ((pc - rc) - (pr - rr))) with rewards beta * (policy - reference)."""
    model = tiny_random_llama(len(korean_tokenizer), seed=0).eval()
    ids = torch.tensor([[5, 17, 42, 7, 99, 3, 0, 0]])
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 0, 0]])
    got = dpo.sequence_logps(model, ids, mask)
    with torch.no_grad():
        logp = model(ids).logits[0].float().log_softmax(-1)
    expected = sum(logp[t - 1, ids[0, t]] for t in (3, 4, 5))
    assert got.shape == (1,) and abs(got.item() - expected.item()) < 1e-5

    pc, pr, rc, rr = (torch.tensor([v]) for v in (-3.0, -5.0, -4.0, -4.5))
    loss, chosen, rejected = dpo.dpo_loss(pc, pr, rc, rr, BETA)
    margin = BETA * ((-3.0 + 4.0) - (-5.0 + 4.5))
    assert abs(loss.item() - torch.nn.functional.softplus(torch.tensor(-margin)).item()) < 1e-7
    assert abs(chosen.item() - BETA * 1.0) < 1e-7 and abs(rejected.item() - BETA * -0.5) < 1e-7


def test_dpo_loss_and_gradient_equal_trl(korean_tokenizer, preference_rows, tmp_path):
    """TRL's DPOTrainer (sigmoid loss, beta 0.1, an explicit reference model that differs from the policy): its
    collated batch equals the hand-built one, and on it the hand-written loss and its gradient w.r.t. every policy
    parameter equal DPOTrainer.compute_loss's (the loss its training step backpropagates) within 1e-5; the rewards
    equal the ones TRL logs."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    policy = tiny_random_llama(len(korean_tokenizer), seed=0)
    reference = tiny_random_llama(len(korean_tokenizer), seed=1)  # a different model: log-ratios are not all zero
    trainer = DPOTrainer(
        model=policy,
        ref_model=reference,
        processing_class=korean_tokenizer,
        train_dataset=Dataset.from_list(preference_rows),
        args=DPOConfig(
            output_dir=str(tmp_path),
            beta=BETA,
            loss_type=["sigmoid"],
            bf16=False,
            use_cpu=True,
            report_to=[],
            dataset_num_proc=None,
        ),
    )
    prepared = trainer.train_dataset
    assert prepared["prompt"] == [r["prompt"] for r in preference_rows]
    batch = trainer.data_collator([prepared[i] for i in range(len(preference_rows))])

    pairs = [dpo.build_pair(korean_tokenizer, r["prompt"], r["chosen"], r["rejected"]) for r in preference_rows]
    mine = dpo.collate_pairs(pairs, korean_tokenizer.pad_token_id)
    for key in ("input_ids", "attention_mask", "completion_mask"):
        assert torch.equal(mine[key], batch[key]), key

    model = trainer.model
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    model.zero_grad()
    theirs = trainer.compute_loss(model, dict(batch))
    theirs.backward()
    their_grads = [p.grad.clone() for p in params]
    logged = {k: v[-1] for k, v in trainer._metrics["train"].items()}

    model.zero_grad()
    ours, chosen_rewards, rejected_rewards = dpo.batch_loss(model, trainer.ref_model, batch, BETA)
    ours.backward()
    assert abs(ours.item() - theirs.item()) < 1e-5, (ours.item(), theirs.item())
    assert abs(ours.item() - torch.log(torch.tensor(2.0)).item()) > 1e-3  # policy != reference
    for p, g in zip(params, their_grads):
        torch.testing.assert_close(p.grad, g, atol=1e-5, rtol=1e-4)
    assert sum(g.abs().sum() for g in their_grads) > 0
    assert abs(chosen_rewards.mean().item() - logged["rewards/chosen"]) < 1e-5
    assert abs(rejected_rewards.mean().item() - logged["rewards/rejected"]) < 1e-5
    assert abs((chosen_rewards > rejected_rewards).float().mean().item() - logged["rewards/accuracies"]) < 1e-6


def test_dpo_steps_raise_the_chosen_reward_margin(korean_tokenizer, preference_rows):
    """dpo_step with a frozen copy as the reference: the loss starts at log 2 (policy == reference) and a few steps on
    the same pairs push the chosen answers' reward above the rejected ones'."""
    import copy

    policy = tiny_random_llama(len(korean_tokenizer), seed=2).train()
    reference = copy.deepcopy(policy).eval().requires_grad_(False)
    pairs = [dpo.build_pair(korean_tokenizer, r["prompt"], r["chosen"], r["rejected"]) for r in preference_rows]
    batch = dpo.collate_pairs(pairs, korean_tokenizer.pad_token_id)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-2)
    first, *_ = dpo.dpo_step(policy, reference, optimizer, batch, BETA)
    assert abs(first - torch.log(torch.tensor(2.0)).item()) < 1e-5
    for _ in range(5):
        loss, chosen, rejected = dpo.dpo_step(policy, reference, optimizer, batch, BETA)
    assert loss < first and (chosen - rejected).mean() > 0
