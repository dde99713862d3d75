"""IA3 (Liu et al., 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than In-Context
Learning"): no new matrices at all, one trainable vector per targeted layer that rescales its activations (keys,
values, and the MLP's inner activations before down_proj), started at 1. Far fewer parameters than LoRA; it folds
into the weights like LoRA does.

This file and the name "ia3" in FinetuneMethod (kollm/finetune/config.py) are all it took to add the method: the
registry (kollm/finetune/methods/__init__.py) finds this module by that name. Measuring it on the laptop base added
one setting, its own learning rate `finetune.ia3_lr` (at the adapters' 2e-3 it stayed at chance)."""

from kollm.finetune.methods.method import Method


def peft_config(model, task_type, targets, s, base_dir: str, init_text: str):
    from peft import IA3Config
    from peft.utils import (
        TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as FEEDFORWARD,
    )
    from peft.utils import (
        TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as TARGETS,
    )

    model_type = getattr(model.config, "model_type", "")
    if model_type in TARGETS:  # peft's own choice (Llama: k_proj, v_proj, and down_proj's input)
        return IA3Config(
            task_type=task_type, target_modules=TARGETS[model_type], feedforward_modules=FEEDFORWARD[model_type]
        )
    # an architecture peft has no table for: rescale the outputs of the layers kollm targets
    return IA3Config(task_type=task_type, target_modules=targets, feedforward_modules=[])


METHOD = Method("ia3", peft_config, lr="ia3_lr")  # scaling vectors need a larger step than adapters
