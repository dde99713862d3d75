"""Fine-tuning methods on a HF model folder: full fine-tuning, or a HF PEFT adapter.

    model = methods.load(base_dir, head="lm", method="dora", n_labels=2, settings=FinetuneConfig())

Every PEFT method targets the architecture's linear layers (`target_modules`), saves in HF-PEFT
format (`adapter_config.json` + `adapter_model.safetensors`) and, except prompt tuning, merges
into the base weights (`merged`) with the same logits.
"""

from __future__ import annotations

from kollm.core.errors import KollmError
from kollm.finetune.config import FinetuneConfig
from kollm.finetune.config import FinetuneHead as Head
from kollm.finetune.config import FinetuneMethod as Method

MERGEABLE = ("lora", "dora", "waveft", "qlora")

# Linear layers a PEFT adapter wraps, per HF model_type. peft refuses out_proj/conv1d on the Mamba
# family (tuners_utils), so those adapt in_proj only.
TARGET_MODULES: dict[str, list[str]] = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen3": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "mamba": ["in_proj", "x_proj"],
    "mamba2": ["in_proj"],
    "rwkv": ["key", "value", "receptance", "output"],
}


def target_modules(model) -> list[str] | str:
    model_type = getattr(model.config, "model_type", "")
    if model_type in TARGET_MODULES:
        return TARGET_MODULES[model_type]
    return "all-linear"  # peft's own rule for architectures kollm has no list for


def _linear_sizes(model, targets) -> list[int]:
    import torch

    names = targets if isinstance(targets, list) else None
    return [
        m.in_features * m.out_features
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and (names is None or n.split(".")[-1] in names)
    ]


def peft_config(model, head: Head, method: Method, s: FinetuneConfig, base_dir: str, init_text: str = ""):
    from peft import LoraConfig, PromptTuningConfig, PromptTuningInit, TaskType, WaveFTConfig

    task_type = TaskType.CAUSAL_LM if head == "lm" else TaskType.SEQ_CLS
    targets = target_modules(model)
    if method in ("lora", "dora", "qlora"):
        return LoraConfig(
            r=s.lora_r,
            lora_alpha=s.lora_alpha,
            lora_dropout=s.lora_dropout,
            task_type=task_type,
            target_modules=targets,
            use_dora=method == "dora",
        )
    if method == "waveft":
        smallest = min(_linear_sizes(model, targets) or [s.waveft_n_frequency])
        return WaveFTConfig(
            n_frequency=min(s.waveft_n_frequency, smallest),
            task_type=task_type,
            target_modules=targets,
            random_loc_seed=s.seed,
        )
    if method == "prompt_tuning":
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
    raise KollmError(f"no PEFT config for method {method!r}")


def load_base(base_dir: str, head: Head, n_labels: int, pad_token_id: int | None, quantized: bool = False):
    """The model to fine-tune: the causal LM, or it with a fresh classification head."""
    from transformers import AutoModelForCausalLM

    from kollm.models.seq_classification import AutoModelForSequenceClassification

    kwargs = {}
    if quantized:  # QLoRA: NF4 weights (bitsandbytes' CPU library here, CUDA on GPUs)
        import torch
        from transformers import BitsAndBytesConfig

        kwargs = {
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32
            ),
            "device_map": "cpu" if not torch.cuda.is_available() else None,
        }
    if head == "lm":
        return AutoModelForCausalLM.from_pretrained(base_dir, **kwargs)
    model = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=n_labels, **kwargs)
    model.config.pad_token_id = pad_token_id  # the head reads the last non-pad token
    return model


def load(
    base_dir: str,
    head: Head,
    method: Method,
    n_labels: int,
    settings: FinetuneConfig,
    pad_token_id: int | None = None,
    init_text: str = "",
):
    """The base model, ready to train with `method` (a PeftModel, or the model itself for full)."""
    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training

    torch.manual_seed(settings.seed)  # adapter and head initialisation come from this generator
    model = load_base(base_dir, head, n_labels, pad_token_id, quantized=method == "qlora")
    if method == "full":
        return model
    if method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return get_peft_model(model, peft_config(model, head, method, settings, base_dir, init_text))


def trainable_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameters; QLoRA's packed 4-bit weights count as the values they hold."""
    if hasattr(model, "get_nb_trainable_parameters"):
        return model.get_nb_trainable_parameters()
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total


def merged(model, method: Method):
    """The adapter folded into the base weights (a plain transformers model), or None where it cannot."""
    if method == "full":
        return model
    if method not in MERGEABLE:
        return None
    return model.merge_and_unload()
