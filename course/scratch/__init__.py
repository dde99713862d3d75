"""LLM의 부품을 손으로 직접 만든 코드입니다 (the pieces, written by hand). One short file per idea, in learning order:

    autograd      스칼라 자동 미분(autograd): Value, 위상 정렬(topological sort)로 역전파, XOR을 배우는 MLP
    numpy_nn      NumPy로 만든 선형층, softmax, 교차 엔트로피(cross-entropy)의 순전파와 역전파
    bpe           바이트 수준 BPE(byte-level BPE) 학습기, 인코더, 디코더
    attention     scaled dot-product attention, 인과 마스크(causal mask), multi-head, KV 캐시, GQA
    gpt2          GPT-2 모델 (LayerNorm, GELU, 학습되는 위치 임베딩, 묶인 출력층)과 HF 가중치 불러오기
    llama         Llama 모델 (RMSNorm, RoPE, SwiGLU, GQA): `model.impl=scratch`가 학습하는 바로 그 모델
    minigpt       nanoGPT 방식의 문자 단위(character-level) miniGPT 한 파일
    pretrain      사전학습 루프와 샘플링(greedy, temperature, top-k), 저장과 불러오기
    classify      분류 미세조정(classification fine-tuning): LM 헤드를 분류 헤드로 바꾸기
    instruct      지시 미세조정(instruction fine-tuning): 답변 토큰에만 손실을 거는 SFT
    dpo           DPO 손실을 식 그대로
    lora          LoRALinear: 저랭크 어댑터(LoRA)를 손으로

These files are the solutions. `python -m course.exercises make DIR` writes their skeletons (each function whose
docstring has a `힌트:` line gets its body replaced by `raise NotImplementedError(<hint>)`), and
`python -m course.exercises check PIECE --dir DIR` runs the same tests against the learner's file.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType

# the pieces in learning order (course/README.md lists them with their commands and checks)
PIECES = (
    "autograd",
    "numpy_nn",
    "bpe",
    "attention",
    "gpt2",
    "llama",
    "minigpt",
    "pretrain",
    "classify",
    "instruct",
    "dpo",
    "lora",
)

# set by `python -m course.exercises check`: a learner's folder of pieces that the tests load instead of these
EXERCISE_DIR_ENV = "KOLLM_SCRATCH_DIR"


def load(name: str) -> ModuleType:
    """The piece `name`: the learner's file from $KOLLM_SCRATCH_DIR when it is set, else the solution here."""
    if name not in PIECES:
        raise ValueError(f"no piece {name!r}: choose one of {', '.join(PIECES)}")
    folder = os.environ.get(EXERCISE_DIR_ENV)
    if not folder:
        return importlib.import_module(f"course.scratch.{name}")
    path = os.path.join(folder, f"{name}.py")
    module_name = f"course_exercise_{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None or not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path}: no such exercise file (make it with: python -m course.exercises make {folder})"
        )
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(module)
    return module
