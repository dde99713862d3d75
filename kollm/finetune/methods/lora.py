"""LoRA (Hu et al., 2021): each targeted linear layer W gets a trainable low-rank update B·A (rank finetune.lora_r,
scaled by lora_alpha / lora_r); W stays frozen, and B·A folds into it after training."""

from kollm.finetune.methods.method import Method


def peft_config(model, task_type, targets, s, base_dir: str, init_text: str, use_dora: bool = False):
    from peft import LoraConfig

    return LoraConfig(
        r=s.lora_r,
        lora_alpha=s.lora_alpha,
        lora_dropout=s.lora_dropout,
        task_type=task_type,
        target_modules=targets,
        use_dora=use_dora,
    )


METHOD = Method("lora", peft_config, fields=("lora_r", "lora_alpha", "lora_dropout"), automodel={})
