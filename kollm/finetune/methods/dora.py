"""DoRA (Liu et al., 2024): LoRA on the direction of each weight, with its magnitude (the column norms) trained
apart; LoRA's settings."""

from kollm.finetune.methods import lora
from kollm.finetune.methods.method import Method


def peft_config(model, task_type, targets, s, base_dir: str, init_text: str):
    return lora.peft_config(model, task_type, targets, s, base_dir, init_text, use_dora=True)


# AutoModel: DoRA through its PeftConfig's use_dora, on the HF model class (force_hf: AutoModel's own Llama is built
# on the meta device and DoRA's magnitude ||W|| then comes from empty weights: NaN from the first step, on 0.7.0)
METHOD = Method(
    "dora", peft_config, fields=lora.METHOD.fields, automodel={"peft": {"use_dora": True}, "model": {"force_hf": True}}
)
