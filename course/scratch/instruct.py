"""지시 미세조정(instruction fine-tuning, SFT)을 손으로 합니다: 질문(prompt)과 답(answer)을 이어 붙인 한 줄을 모델에
넣고, 손실(loss)은 답 토큰에만 겁니다. 질문 토큰과 패딩(padding) 자리의 라벨(label)은 -100 으로 두어
cross_entropy 가 건너뛰게(ignore_index) 합니다. 그래서 모델은 질문을 외우지 않고, 질문을 보고 답하는 법만 배웁니다.

    입력 (input_ids):  질문 토큰 ......  답 토큰 ......  </s>  <pad> <pad>
    라벨 (labels):     -100 .........   답 토큰 ......  </s>  -100  -100

데이터는 한국어 챗봇 Q/A 입니다 (../shared/data/chatbot/ChatbotData.csv.gz: 일상의 질문과 짧고 친절한 답).

    pairs = read_chatbot(path)                                        # [(질문, 답), ...]
    examples = [build_example(tokenizer, *prompt_and_answer(q, a)) for q, a in pairs]
    batch = collate(examples, tokenizer.pad_token_id)                 # input_ids, labels, attention_mask
    loss = sft_step(model, optimizer, batch)                          # 답 토큰에만 건 손실로 한 단계

tokenizer 는 encode(text) -> list[int] 와 eos_token, pad_token_id 만 있으면 됩니다 (HF 토크나이저도, 아래의
CharTokenizer 도). model 은 model(input_ids).logits 를 돌려주면 됩니다 (course/scratch/llama.py 의 GPT 도, HF 의
LlamaForCausalLM 도).

tests/test_scratch_instruct.py 가 TRL SFTTrainer (prompt-completion 데이터, completion_only_loss=True) 와 비교합니다:
같은 질문/답에서 만든 input_ids 와 labels 가 같고, 같은 배치의 손실이 1e-5 안에서 같습니다.

    python -m course.scratch.instruct      작은 Llama 를 챗봇 데이터로 SFT 하고, 질문 하나에 답하게 해 봅니다
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import os
import random

import torch
import torch.nn.functional as F

IGNORE = -100  # cross_entropy 의 ignore_index: 이 라벨 자리는 손실에 들어가지 않습니다
PROMPT = "질문: {question}\n답변:"  # 질문을 감싸는 틀(template); 답은 " " + 답 으로 이어 붙습니다


def default_data_path() -> str:
    """저장소 옆의 ../shared/data (또는 $KOLLM_DATA_DIR) 에 있는 챗봇 Q/A 파일."""
    root = os.environ.get("KOLLM_DATA_DIR") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))), "shared", "data"
    )
    return os.path.join(root, "chatbot", "ChatbotData.csv.gz")


def read_chatbot(path: str, limit: int = 0) -> list[tuple[str, str]]:
    """ChatbotData.csv.gz 의 (질문, 답) 쌍 (열: Q, A, label). limit 이 0 이 아니면 앞에서 limit 개만."""
    with gzip.open(path, "rb") as f:
        rows = csv.DictReader(io.TextIOWrapper(f, encoding="utf-8"))
        pairs = [(r["Q"].strip(), r["A"].strip()) for r in rows if r["Q"].strip() and r["A"].strip()]
    return pairs[:limit] if limit else pairs


def prompt_and_answer(question: str, answer: str) -> tuple[str, str]:
    """틀에 넣은 질문(prompt)과, 그 뒤에 이어 붙일 답(completion: 앞에 공백 하나)."""
    return PROMPT.format(question=question), " " + answer


def build_example(tokenizer, prompt: str, answer: str) -> dict[str, list[int]]:
    """질문+답+</s> 한 줄의 input_ids 와, 질문 자리를 -100 으로 가린 labels.

    질문만 따로 토큰화한 것이 질문+답을 함께 토큰화한 것의 앞부분과 늘 같지는 않습니다 (경계의 글자가 한 토큰으로
    합쳐질 수 있습니다). 그래서 둘이 처음 달라지는 곳부터를 답으로 봅니다 (TRL 도 이렇게 합니다).

    힌트: full = tokenizer.encode(prompt + answer + tokenizer.eos_token), p = tokenizer.encode(prompt) 로 두고,
    full 과 p 가 앞에서부터 같은 토큰 수 n 을 셉니다. labels = [-100] * n + full[n:] 입니다.
    """
    full = tokenizer.encode(prompt + answer + tokenizer.eos_token)
    prompt_ids = tokenizer.encode(prompt)
    n = 0
    while n < min(len(full), len(prompt_ids)) and full[n] == prompt_ids[n]:
        n += 1
    return {"input_ids": full, "labels": [IGNORE] * n + full[n:]}


def collate(examples: list[dict[str, list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """예제들을 가장 긴 것에 맞춰 오른쪽으로 채운(right padding) 배치: input_ids (pad_id 로),
    labels (-100 으로: 패딩에는 손실이 없습니다), attention_mask (진짜 토큰 1, 패딩 0).

    힌트: T = 가장 긴 input_ids 의 길이. input_ids 는 pad_id, labels 는 -100, attention_mask 는 0 으로 채운
    [B, T] 텐서를 만들고, 각 예제를 앞쪽 len(ids) 칸에 복사합니다 (attention_mask 는 그 칸만 1).
    """
    T = max(len(e["input_ids"]) for e in examples)
    input_ids = torch.full((len(examples), T), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), T), IGNORE, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), T), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        input_ids[i, :n] = torch.tensor(e["input_ids"])
        labels[i, :n] = torch.tensor(e["labels"])
        attention_mask[i, :n] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


def masked_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """다음 토큰 예측의 평균 교차 엔트로피(cross-entropy)를, 라벨이 -100 이 아닌 자리(답 토큰)에서만 냅니다.

    힌트: 위치 t 의 로짓이 토큰 t+1 을 맞힙니다: logits[:, :-1] 과 labels[:, 1:] 을 나란히 펴서
    F.cross_entropy(..., ignore_index=-100) 에 넣습니다 (로짓은 .float() 로; 평균은 답 토큰 수로 나눈 것).
    """
    return F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1), ignore_index=IGNORE
    )


def sft_step(model, optimizer, batch: dict[str, torch.Tensor]) -> float:
    """SFT 한 단계: 순전파, 답 토큰에만 건 손실, 역전파, 옵티마이저 한 걸음. 손실 값을 돌려줍니다.

    패딩은 오른쪽에만 있고 어텐션은 인과적(causal)이라, 진짜 토큰은 뒤의 패딩을 보지 못합니다: attention_mask
    없이 input_ids 만 넣어도 진짜 토큰 자리의 로짓은 같습니다 (패딩 자리의 로짓은 라벨이 -100 이라 버려집니다).
    """
    logits = model(batch["input_ids"]).logits
    loss = masked_loss(logits, batch["labels"])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


class CharTokenizer:
    """글자 하나가 토큰 하나인 아주 작은 토크나이저 (예제 실행용): 0 은 <pad>, 1 은 </s>."""

    eos_token = "</s>"
    pad_token_id = 0
    eos_token_id = 1

    def __init__(self, texts):
        chars = sorted({c for t in texts for c in t})
        self.itos = ["<pad>", self.eos_token, *chars]
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        ids, i = [], 0
        while i < len(text):
            if text.startswith(self.eos_token, i):
                ids.append(self.eos_token_id)
                i += len(self.eos_token)
            else:
                ids.append(self.stoi[text[i]])
                i += 1
        return ids

    def decode(self, ids) -> str:
        return "".join(self.itos[i] for i in ids if i > self.eos_token_id)


def small_llama(vocab_size: int) -> torch.nn.Module:
    """The demos' model (this file's SFT and dpo.py's DPO): a 2-layer scratch Llama over the character vocabulary."""
    from course.scratch import llama

    cfg = llama.GPTConfig(
        vocab_size=vocab_size,
        hidden_size=128,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=256,
        max_seq_len=128,
    )
    return llama.GPT(cfg)


def main(argv: list[str] | None = None) -> None:

    parser = argparse.ArgumentParser(description="작은 Llama 를 챗봇 Q/A 로 SFT 합니다 (답 토큰에만 손실)")
    parser.add_argument("--data", default=default_data_path())
    parser.add_argument("--pairs", type=int, default=64, help="학습에 쓸 (질문, 답) 쌍의 수")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    pairs = read_chatbot(args.data)
    pairs = random.Random(0).sample(pairs, args.pairs)
    tokenizer = CharTokenizer([PROMPT, *(q + " " + a for q, a in pairs)])
    examples = [build_example(tokenizer, *prompt_and_answer(q, a)) for q, a in pairs]
    model = small_llama(len(tokenizer))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    shown = examples[0]
    print("입력:", tokenizer.decode(shown["input_ids"]).replace("\n", "\\n"))
    print("손실을 거는 자리:", tokenizer.decode([t for t in shown["labels"] if t != IGNORE]))
    rng = random.Random(0)
    for step in range(args.steps + 1):
        loss = sft_step(model, optimizer, collate(rng.sample(examples, args.batch_size), tokenizer.pad_token_id))
        if step % 50 == 0:
            print(f"단계 {step}: 답 토큰의 손실 {loss:.3f}")
    model.eval()
    question, answer = pairs[0]
    prompt = tokenizer.encode(prompt_and_answer(question, answer)[0])
    out = model.generate(torch.tensor([prompt]), max_new_tokens=40, eos_token_id=tokenizer.eos_token_id)
    print(f"질문: {question}\n정답: {answer}\n모델: {tokenizer.decode(out[0, len(prompt) :].tolist()).strip()}")


if __name__ == "__main__":
    main()
