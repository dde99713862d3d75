"""Prompt tuning (Lester et al., 2021): finetune.prompt_tokens trainable embeddings put before every input, started
from the task's Korean instruction; the model's own weights never change, so nothing merges."""

from kollm.finetune.methods.method import Method


def peft_config(model, task_type, targets, s, base_dir: str, init_text: str):
    from peft import PromptTuningConfig, PromptTuningInit

    # initialised from the task's instruction: a soft prompt that starts as a real Korean prompt
    init = (
        dict(
            prompt_tuning_init=PromptTuningInit.TEXT,
            prompt_tuning_init_text=init_text,
            tokenizer_name_or_path=base_dir,
        )
        if init_text
        else {}
    )
    return PromptTuningConfig(task_type=task_type, num_virtual_tokens=s.prompt_tokens, **init)


METHOD = Method(
    "prompt_tuning",
    peft_config,
    fields=("prompt_tokens",),
    lr="prompt_lr",  # soft prompts need a much larger step
    mergeable=False,
    init_from_instruction=True,
)
