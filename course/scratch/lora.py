"""LoRA(Low-Rank Adaptation)를 손으로 만듭니다: 얼려 둔(frozen) 선형층 W 옆에 작은 두 행렬 A (r×in)와 B (out×r)를
붙여, W 대신 W + (alpha/r)·B·A를 배우는 것과 같은 효과를 냅니다. 학습하는 파라미터는 r·(in + out)개뿐입니다.

    y = base(x) + dropout(x) @ Aᵀ @ Bᵀ · (alpha / r)

B를 0으로 시작하므로 처음에는 원래 모델과 출력이 똑같고, 학습이 끝나면 merge()로 B·A를 W에 더해 보통의
nn.Linear 하나로 되돌릴 수 있습니다 (추론 때 추가 비용이 없습니다).

    model = add_lora(model, ["q_proj", "v_proj"], r=8, alpha=16)   # 이름이 맞는 선형층을 LoRALinear로 감쌉니다
    ... 학습: A와 B만 requires_grad=True ...
    model = merge_lora(model)                                       # 다시 보통의 nn.Linear로

tests/test_scratch_lora.py가 같은 A, B를 넣은 HF PEFT의 LoRA 층과 출력, 기울기, 합친(merge) 가중치를 비교합니다.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LoRALinear(nn.Module):
    """nn.Linear 하나에 LoRA 어댑터(adapter)를 붙인 층입니다. base의 파라미터는 얼리고(requires_grad=False), A는
    nn.Linear처럼(PEFT와 같이 kaiming_uniform) 무작위로, B는 0으로 초기화합니다."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.r = r
        self.alpha = alpha
        self.scaling = alpha / r
        like = {"dtype": base.weight.dtype, "device": base.weight.device}
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, **like))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, **like))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """base(x)에 저랭크(low-rank) 보정을 더합니다.

        힌트: self.base(x) + self.dropout(x) @ self.lora_A.T @ self.lora_B.T * self.scaling (dropout은 LoRA 쪽
        입력에만 걸고, base 쪽은 그대로 둡니다).
        """
        return self.base(x) + self.dropout(x) @ self.lora_A.T @ self.lora_B.T * self.scaling

    @torch.no_grad()
    def merge(self) -> nn.Linear:
        """어댑터를 가중치에 합친 보통의 nn.Linear (새 층; base는 바꾸지 않습니다).

        힌트: 같은 모양의 nn.Linear를 만들고 weight에 base.weight + scaling · (lora_B @ lora_A)를, bias에 base의
        bias를 복사합니다 (bias가 없으면 bias=False).
        """
        base = self.base
        merged = nn.Linear(
            base.in_features,
            base.out_features,
            bias=base.bias is not None,
            dtype=base.weight.dtype,
            device=base.weight.device,
        )
        merged.weight.copy_(base.weight + self.scaling * (self.lora_B @ self.lora_A))
        if base.bias is not None:
            merged.bias.copy_(base.bias)
        return merged


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    """model 안의 `name` (예: "model.layers.0.self_attn.q_proj") 자리의 모듈을 new로 바꿉니다."""
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def add_lora(model: nn.Module, target_modules: list[str], r: int, alpha: float, dropout: float = 0.0) -> nn.Module:
    """이름의 마지막 부분이 target_modules에 있는 nn.Linear를 모두 LoRALinear로 감쌉니다 (PEFT의 target_modules와
    같은 규칙). 모델의 다른 파라미터는 모두 얼리므로, 학습되는 것은 LoRA의 A와 B뿐입니다. 모델을 그 자리에서
    바꾸고 돌려줍니다."""
    for p in model.parameters():
        p.requires_grad_(False)
    targets = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name.rpartition(".")[2] in target_modules
    ]
    if not targets:
        raise ValueError(f"no nn.Linear named {target_modules} in the model")
    for name in targets:
        _replace(model, name, LoRALinear(model.get_submodule(name), r, alpha, dropout))
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """모든 LoRALinear를 merge()한 보통의 nn.Linear로 바꿉니다 (그 자리에서 바꾸고 돌려줍니다)."""
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRALinear):
            _replace(model, name, module.merge())
    return model


def trainable_parameters(model: nn.Module) -> dict[str, int]:
    """학습되는(requires_grad) 파라미터의 이름과 원소 수."""
    return {name: p.numel() for name, p in model.named_parameters() if p.requires_grad}


def main() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 64))
    total = sum(p.numel() for p in model.parameters())
    add_lora(model, ["0", "2"], r=4, alpha=8)
    lora = sum(trainable_parameters(model).values())
    print(f"전체 파라미터 {total:,}개 중 학습하는 LoRA 파라미터 {lora:,}개 ({lora / total:.1%})")
    x = torch.randn(8, 64)
    target = torch.randn(8, 64)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for step in range(101):
        loss = nn.functional.mse_loss(model(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            print(f"단계 {step}: 손실 {loss.item():.4f}")
    before = model(x)
    merge_lora(model)
    print(f"merge 뒤 출력 차이: {(model(x) - before).abs().max().item():.2e} (같은 함수입니다)")


if __name__ == "__main__":
    main()
