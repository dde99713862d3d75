"""Fine-tuning methods on a HF model folder: full fine-tuning, or a HF PEFT adapter.

    model = methods.load(base_dir, head="lm", method="dora", n_labels=2, settings=FinetuneConfig())

One module per method in this package (full, lora, dora, waveft, prompt_tuning, qlora, ia3), each a `Method`
record (method.py): its PEFT config, the settings it reads, its learning rate, what it supports (merging, a
quantised base, NeMo AutoModel). The registry below finds a method's module by its name in `FinetuneMethod`
(kollm/finetune/config.py): adding a method is its file plus its name there.

Every PEFT method targets the architecture's linear layers (`target_modules`), saves in HF-PEFT format
(`adapter_config.json` + `adapter_model.safetensors`) and, where it can (`Method.mergeable`), merges into the base
weights (`merged`) with the same logits.
"""

from __future__ import annotations

import importlib
import typing

from kollm.core.errors import KollmError
from kollm.finetune.config import FinetuneConfig, FinetuneMethod
from kollm.finetune.config import FinetuneHead as Head
from kollm.finetune.methods.method import Method

# the registry: finetune.method's choices, each found as kollm/finetune/methods/<name>.py's METHOD
METHODS: dict[str, Method] = {
    name: importlib.import_module(f"kollm.finetune.methods.{name}").METHOD for name in typing.get_args(FinetuneMethod)
}
MERGEABLE = tuple(name for name, m in METHODS.items() if m.adapter and m.mergeable)

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


def peft_config(model, head: Head, method: FinetuneMethod, s: FinetuneConfig, base_dir: str, init_text: str = ""):
    """The HF PEFT config of `method` for `model` (its registered module builds it)."""
    from peft import TaskType

    build = METHODS[method].peft_config
    if build is None:
        raise KollmError(f"finetune.method={method} trains the weights themselves: it has no PEFT config")
    task_type = TaskType.CAUSAL_LM if head == "lm" else TaskType.SEQ_CLS
    return build(model, task_type, target_modules(model), s, base_dir, init_text)


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
    method: FinetuneMethod,
    n_labels: int,
    settings: FinetuneConfig,
    pad_token_id: int | None = None,
    init_text: str = "",
):
    """The base model, ready to train with `method` (a PeftModel, or the model itself for full)."""
    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training

    torch.manual_seed(settings.seed)  # adapter and head initialisation come from this generator
    m = METHODS[method]
    model = load_base(base_dir, head, n_labels, pad_token_id, quantized=m.quantized_base)
    if not m.adapter:
        return model
    if m.quantized_base:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return get_peft_model(model, peft_config(model, head, method, settings, base_dir, init_text))


def trainable_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameters; QLoRA's packed 4-bit weights count as the values they hold."""
    if hasattr(model, "get_nb_trainable_parameters"):
        return model.get_nb_trainable_parameters()
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total


def merged(model, method: FinetuneMethod):
    """The adapter folded into the base weights (a plain transformers model), or None where it cannot."""
    if not METHODS[method].adapter:
        return model
    if not METHODS[method].mergeable:
        return None
    return model.merge_and_unload()
