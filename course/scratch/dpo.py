"""DPO(Direct Preference Optimization) 손실을 식 그대로 씁니다. 같은 질문(prompt) x 에 대한 두 답 가운데 사람이 고른
답(chosen) y_w 와 고르지 않은 답(rejected) y_l 이 있을 때, 보상 모델(reward model) 없이 정책(policy) π_θ 를 바로
학습합니다. 학습을 시작할 때의 모델을 얼려 둔 기준 모델(reference) π_ref 로 둡니다.

    log π(y|x)  = Σ_t log π(y_t | x, y_<t)            답 토큰만 더한 시퀀스 로그 확률(sequence log-prob)
    r(x, y)     = β · (log π_θ(y|x) − log π_ref(y|x))   암묵적 보상(implicit reward)
    loss        = −log σ(r(x, y_w) − r(x, y_l))         (배치 평균)

β 가 작을수록 기준 모델에서 멀리 가도 되고, 클수록 가까이 붙어 있게 됩니다. 손실을 줄이면 고른 답의 보상은
오르고 고르지 않은 답의 보상은 내려갑니다.

배치는 TRL 과 같은 모양입니다: input_ids 의 앞 절반은 질문+고른 답, 뒤 절반은 같은 순서의 질문+고르지 않은 답이고,
completion_mask 는 답 토큰 자리만 1 입니다.

    batch = collate_pairs([build_pair(tokenizer, prompt, chosen, rejected), ...], tokenizer.pad_token_id)
    loss, chosen_rewards, rejected_rewards = dpo_step(policy, reference, optimizer, batch, beta=0.1)

tests/test_scratch_dpo.py 가 같은 배치, 같은 기준 모델에서 TRL DPOTrainer 의 손실과, 정책 파라미터에 대한 그 기울기
(gradient)가 1e-5 안에서 같은지, 보상이 TRL 이 기록한 것과 같은지 확인합니다.

    python -m course.scratch.dpo      작은 Llama 를 챗봇 데이터의 선호 쌍으로 DPO 합니다 (진짜 답 > 다른 질문의 답)
"""

from __future__ import annotations

import argparse
import copy
import random

import torch
import torch.nn.functional as F

from course.scratch import instruct


def sequence_logps(model, input_ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """각 줄의 답 토큰 로그 확률의 합 log π(y|x), [B].

    힌트: logp = log_softmax(model(input_ids).logits[:, :-1].float(), -1) 에서 다음 토큰 input_ids[:, 1:] 의
    값을 gather 로 꺼내고, completion_mask[:, 1:] 을 곱해 답 토큰 자리만 남긴 뒤 시퀀스 축으로 더합니다.
    """
    logits = model(input_ids).logits[:, :-1].float()
    per_token = torch.log_softmax(logits, dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    return (per_token * completion_mask[:, 1:]).sum(-1)


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DPO 손실 (배치 평균) 과 고른 답, 고르지 않은 답의 암묵적 보상 [B] 두 개 (보상은 기울기를 끊어서).

    힌트: chosen_rewards = β · (policy_chosen − ref_chosen), rejected_rewards 도 같게 두고,
    loss = −F.logsigmoid(chosen_rewards − rejected_rewards).mean() 입니다. 보상은 .detach() 해서 돌려줍니다.
    """
    chosen_rewards = beta * (policy_chosen - ref_chosen)
    rejected_rewards = beta * (policy_rejected - ref_rejected)
    loss = -F.logsigmoid(chosen_rewards - rejected_rewards).mean()
    return loss, chosen_rewards.detach(), rejected_rewards.detach()


def build_pair(tokenizer, prompt: str, chosen: str, rejected: str) -> dict[str, list[int]]:
    """한 선호 쌍의 토큰: 질문, 고른 답+</s>, 고르지 않은 답+</s>. 질문은 질문+답을 함께 토큰화한 것과 (두 답 모두와)
    앞에서부터 같은 부분까지입니다 (instruct.build_example 과 같은 까닭; TRL 도 이렇게 나눕니다)."""
    prompt_ids = tokenizer.encode(prompt)
    chosen_full = tokenizer.encode(prompt + chosen + tokenizer.eos_token)
    rejected_full = tokenizer.encode(prompt + rejected + tokenizer.eos_token)

    def common(a: list[int], b: list[int]) -> int:
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return n

    n = min(common(prompt_ids, chosen_full), common(prompt_ids, rejected_full))
    return {"prompt_ids": prompt_ids[:n], "chosen_ids": chosen_full[n:], "rejected_ids": rejected_full[n:]}


def collate_pairs(pairs: list[dict[str, list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """[질문+고른 답 ×B, 질문+고르지 않은 답 ×B] 를 오른쪽으로 채운 배치: input_ids, attention_mask, completion_mask."""
    rows = [p["prompt_ids"] + p["chosen_ids"] for p in pairs] + [p["prompt_ids"] + p["rejected_ids"] for p in pairs]
    answer_lengths = [len(p["chosen_ids"]) for p in pairs] + [len(p["rejected_ids"]) for p in pairs]
    T = max(map(len, rows))
    input_ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), T), dtype=torch.long)
    completion_mask = torch.zeros((len(rows), T), dtype=torch.long)
    for i, (row, n_answer) in enumerate(zip(rows, answer_lengths)):
        input_ids[i, : len(row)] = torch.tensor(row)
        attention_mask[i, : len(row)] = 1
        completion_mask[i, len(row) - n_answer : len(row)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "completion_mask": completion_mask}


def batch_loss(policy, reference, batch: dict[str, torch.Tensor], beta: float):
    """한 배치의 DPO 손실과 보상: 정책은 기울기를 받고, 기준 모델은 torch.no_grad() 로 계산만 합니다."""
    policy_logps = sequence_logps(policy, batch["input_ids"], batch["completion_mask"])
    with torch.no_grad():
        ref_logps = sequence_logps(reference, batch["input_ids"], batch["completion_mask"])
    policy_chosen, policy_rejected = policy_logps.chunk(2)  # 앞 절반이 고른 답, 뒤 절반이 고르지 않은 답
    ref_chosen, ref_rejected = ref_logps.chunk(2)
    return dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)


def dpo_step(policy, reference, optimizer, batch: dict[str, torch.Tensor], beta: float = 0.1):
    """DPO 한 단계: 손실, 역전파, 옵티마이저 한 걸음. (손실 값, 고른 답의 보상, 고르지 않은 답의 보상)."""
    loss, chosen_rewards, rejected_rewards = batch_loss(policy, reference, batch, beta)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item(), chosen_rewards, rejected_rewards


def preference_pairs(qa: list[tuple[str, str]], seed: int = 0) -> list[tuple[str, str, str]]:
    """(질문, 고른 답, 고르지 않은 답): 고른 답은 그 질문의 진짜 답, 고르지 않은 답은 다른 질문의 답입니다."""
    rng = random.Random(seed)
    out = []
    for question, answer in qa:
        other = answer
        while other == answer:
            other = rng.choice(qa)[1]
        out.append((question, answer, other))
    return out


def main(argv: list[str] | None = None) -> None:

    parser = argparse.ArgumentParser(description="작은 Llama 를 챗봇 선호 쌍으로 DPO 합니다")
    parser.add_argument("--data", default=instruct.default_data_path())
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--sft-steps", type=int, default=100, help="DPO 전에 고른 답으로 하는 SFT 단계 수")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--beta", type=float, default=0.1)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    qa = random.Random(0).sample(instruct.read_chatbot(args.data), args.pairs)
    tokenizer = instruct.CharTokenizer([instruct.PROMPT, *(q + " " + a for q, a in qa)])
    triples = [(*instruct.prompt_and_answer(q, c), " " + r) for q, c, r in preference_pairs(qa)]
    policy = instruct.small_llama(len(tokenizer))
    # 보통은 SFT 를 마친 모델에서 DPO 를 시작합니다: 고른 답으로 잠깐 SFT 합니다
    sft = [instruct.build_example(tokenizer, p, c) for p, c, _ in triples]
    optimizer = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    rng = random.Random(0)
    for _ in range(args.sft_steps):
        instruct.sft_step(policy, optimizer, instruct.collate(rng.sample(sft, 16), tokenizer.pad_token_id))
    reference = copy.deepcopy(policy).eval().requires_grad_(False)  # 기준 모델: 여기서 얼립니다
    pairs = [build_pair(tokenizer, p, c, r) for p, c, r in triples]
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    for step in range(args.steps + 1):
        loss, chosen, rejected = dpo_step(
            policy, reference, optimizer, collate_pairs(rng.sample(pairs, 16), tokenizer.pad_token_id), args.beta
        )
        if step % 25 == 0:
            accuracy = (chosen > rejected).float().mean().item()
            margin = (chosen - rejected).mean().item()
            print(
                f"단계 {step}: DPO 손실 {loss:.3f}, 보상 차이(margin) {margin:+.3f}, 고른 답의 보상이 더 큰 비율 {accuracy:.2f}"
            )


if __name__ == "__main__":
    main()
