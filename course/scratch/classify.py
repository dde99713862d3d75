"""분류 미세조정(classification fine-tuning)을 손으로 합니다: 사전학습된(pretrained) 언어 모델에서 LM 헤드(어휘 전체에
대한 다음 토큰 로짓을 내는 층)를 떼고, 그 자리에 클래스 수만큼의 로짓을 내는 작은 분류 헤드(class head)를 붙입니다.
그리고 마지막 블록(들)과 마지막 정규화, 새 헤드만 학습하고 나머지는 얼립니다(freeze).

    토큰 -> 임베딩 -> 블록 1 ... 블록 N-1   얼림 (requires_grad=False): 사전학습에서 배운 것을 그대로 씁니다
         -> 블록 N -> 마지막 RMSNorm         학습
         -> 평균 풀링(mean pooling)          패딩이 아닌 토큰들의 은닉 상태(hidden state) 평균: 문장 하나에 벡터 하나
         -> 분류 헤드 nn.Linear(d, 클래스 수) 새로 붙여 학습 (LM 헤드 d -> 어휘 크기 는 버립니다)

얼리면 학습할 파라미터가 적어 빠르고, 적은 데이터에서도 사전학습한 표현을 망가뜨리지 않습니다. 모델은
course/scratch/llama.py 의 GPT 입니다 (kollm 이 사전학습해 내보낸 HF Llama 폴더를 llama.from_pretrained 로 읽습니다).

    lm = llama.from_pretrained(model_dir)
    model = Classifier(lm.model, num_classes=2)           # lm.model: 임베딩 + 블록들 + 마지막 정규화 (LM 헤드 없이)
    freeze_all_but_last(model, n_blocks=1)
    ... train_step(model, optimizer, input_ids, attention_mask, labels) 를 여러 번 ...
    accuracy(model, batches)

tests/test_scratch_classify.py 가 kollm 의 torch 사전학습 루프로 사전학습한 모델을 이 GPT 에 불러와 (HF 와 같은 로짓인지
확인하고) NSMC 영화 리뷰 감성 분류를 학습합니다: 영화(movie_id)가 겹치지 않는 시험 분할(test split)에서 정확도 0.70 이상,
학습 시간 60초 이내.

    python -m course.scratch.classify --model DIR --train nsmc_train.jsonl --test nsmc_test.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

import torch
import torch.nn.functional as F
from torch import nn


class Classifier(nn.Module):
    """사전학습한 디코더(임베딩 + 블록들 + 마지막 정규화) 위에 분류 헤드를 얹은 모델. backbone 은 input_ids 를 받아
    .last_hidden_state [B, T, d] 를 돌려주는 모듈이면 됩니다 (llama.GPT 의 .model)."""

    def __init__(self, backbone: nn.Module, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.cfg.hidden_size, num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, T] 토큰 (오른쪽이 패딩) -> [B, num_classes] 로짓.

        패딩이 오른쪽에 있고 어텐션이 인과적(causal)이므로 진짜 토큰은 패딩을 보지 못합니다: attention_mask 는
        풀링에서만 씁니다.
        """
        hidden = self.backbone(input_ids).last_hidden_state
        return self.head(mean_pool(hidden, attention_mask))


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, T, d] 은닉 상태에서 패딩이 아닌 토큰(attention_mask 가 1 인 자리)만의 평균 -> [B, d].

    힌트: mask = attention_mask[..., None] 을 hidden 의 dtype 으로 바꿔 곱한 뒤 T 축으로 더하고, 각 줄의 진짜 토큰 수
    mask.sum(1) (0 이 되지 않게 clamp(min=1)) 로 나눕니다.
    """
    mask = attention_mask[..., None].to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


def freeze_all_but_last(model: Classifier, n_blocks: int = 1) -> int:
    """마지막 n_blocks 개 블록, 마지막 정규화(backbone.norm), 분류 헤드만 학습하고 나머지(임베딩, 앞 블록들)는
    얼립니다. 학습할 파라미터의 원소 수를 돌려줍니다.

    힌트: 먼저 model.parameters() 를 모두 requires_grad_(False) 로 얼리고, backbone.layers[-n_blocks:] 의 블록들과
    backbone.norm, head 의 파라미터만 다시 requires_grad_(True) 로 풉니다.
    """
    for p in model.parameters():
        p.requires_grad_(False)
    for module in [*model.backbone.layers[-n_blocks:], model.backbone.norm, model.head]:
        for p in module.parameters():
            p.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def train_step(model: Classifier, optimizer, input_ids, attention_mask, labels) -> float:
    """분류 학습 한 단계: 로짓, 교차 엔트로피(cross-entropy) 손실, 역전파, 옵티마이저 한 걸음. 손실 값을 돌려줍니다.

    힌트: loss = F.cross_entropy(model(input_ids, attention_mask), labels) 로 두고 optimizer.zero_grad(),
    loss.backward(), optimizer.step() 을 차례로 부릅니다 (얼린 파라미터는 기울기가 없어 움직이지 않습니다).
    """
    loss = F.cross_entropy(model(input_ids, attention_mask), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


@torch.no_grad()
def accuracy(model: Classifier, batches) -> float:
    """(input_ids, attention_mask, labels) 배치들에서 가장 큰 로짓의 클래스가 정답인 비율.

    힌트: model.eval() 로 두고, 배치마다 model(input_ids, attention_mask).argmax(-1) == labels 인 개수를 더해
    전체 개수로 나눕니다 (끝나면 model.train() 으로 되돌립니다).
    """
    was_training = model.training
    model.eval()
    correct = total = 0
    for input_ids, attention_mask, labels in batches:
        correct += (model(input_ids, attention_mask).argmax(-1) == labels).sum().item()
        total += len(labels)
    model.train(was_training)
    return correct / max(1, total)


def collate(rows: list[list[int]], labels: list[int], pad_id: int):
    """토큰 id 줄들을 가장 긴 줄에 맞춰 오른쪽으로 채운 (input_ids, attention_mask, labels) 텐서."""
    T = max(1, max(len(r) for r in rows))
    input_ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), T), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[i, : len(row)] = 1
    return input_ids, attention_mask, torch.tensor(labels, dtype=torch.long)


def batches(rows: list[list[int]], labels: list[int], pad_id: int, batch_size: int = 256):
    """평가용: 순서대로 batch_size 씩 자른 배치들."""
    for s in range(0, len(rows), batch_size):
        yield collate(rows[s : s + batch_size], labels[s : s + batch_size], pad_id)


def fine_tune(
    model: Classifier,
    rows: list[list[int]],
    labels: list[int],
    pad_id: int,
    steps: int,
    batch_size: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
) -> dict:
    """학습할 수 있는(requires_grad) 파라미터만 AdamW 로 steps 번: 매번 무작위로 batch_size 개를 뽑습니다.
    {"seconds": 걸린 시간, "losses": 단계별 손실} 을 돌려줍니다."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    rng = random.Random(seed)
    model.train()
    losses = []
    start = time.perf_counter()
    for _ in range(steps):
        picked = [rng.randrange(len(rows)) for _ in range(batch_size)]
        batch = collate([rows[i] for i in picked], [labels[i] for i in picked], pad_id)
        losses.append(train_step(model, optimizer, *batch))
    return {"seconds": time.perf_counter() - start, "losses": losses}


def read_nsmc(path: str) -> tuple[list[str], list[int]]:
    """kollm 데이터 단계의 nsmc_*.jsonl: 평점 1-4 는 부정(0), 9-10 은 긍정(1), 5-8 은 뺍니다 (NSMC 의 규칙)."""
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            rating = int(row["rating"])
            if rating <= 4 or rating >= 9:
                texts.append(row["text"])
                labels.append(int(rating >= 9))
    return texts, labels


def main(argv: list[str] | None = None) -> None:
    from course.scratch import llama

    parser = argparse.ArgumentParser(description="사전학습한 Llama 로 NSMC 감성 분류를 미세조정합니다 (마지막 블록만)")
    parser.add_argument(
        "--model", required=True, help="kollm 이 내보낸 HF Llama 폴더 (config.json, safetensors, tokenizer.json)"
    )
    parser.add_argument("--train", required=True, help="nsmc_train.jsonl (kollm 데이터 단계의 출력)")
    parser.add_argument("--test", required=True, help="nsmc_test.jsonl")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--blocks", type=int, default=1, help="학습할 마지막 블록 수")
    parser.add_argument("--max-len", type=int, default=24)
    args = parser.parse_args(argv)

    # 토크나이저는 모델 폴더의 tokenizer.json 을 HF tokenizers 로 읽습니다 (BPE 를 손으로 만드는 건 bpe.py 의 몫입니다)
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    pad_id = tokenizer.token_to_id("<pad>") or 0

    def encode(texts):
        return [e.ids[: args.max_len] for e in tokenizer.encode_batch(texts, add_special_tokens=False)]

    torch.manual_seed(0)
    model = Classifier(llama.from_pretrained(args.model).model, num_classes=2)
    trainable = freeze_all_but_last(model, args.blocks)
    total = sum(p.numel() for p in model.parameters())
    print(f"학습하는 파라미터 {trainable:,}개 / 전체 {total:,}개 ({trainable / total:.1%})")
    train_texts, train_labels = read_nsmc(args.train)
    test_texts, test_labels = read_nsmc(args.test)
    test_rows = encode(test_texts)
    print(f"학습 전 정확도 {accuracy(model, batches(test_rows, test_labels, pad_id)):.3f}")
    result = fine_tune(model, encode(train_texts), train_labels, pad_id, args.steps)
    print(
        f"{args.steps}단계 {result['seconds']:.1f}초, 마지막 100단계 평균 손실 {sum(result['losses'][-100:]) / 100:.3f}"
    )
    print(f"시험 분할 정확도 {accuracy(model, batches(test_rows, test_labels, pad_id)):.3f} ({len(test_rows)}개 리뷰)")


if __name__ == "__main__":
    main()
