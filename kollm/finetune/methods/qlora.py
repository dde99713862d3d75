"""QLoRA (Dettmers et al., 2023): LoRA on a base whose weights are stored in 4-bit NF4 (bitsandbytes); exported the
usual way, the adapter merged into the full-precision base."""

from kollm.finetune.methods import lora
from kollm.finetune.methods.method import Method

METHOD = Method("qlora", lora.peft_config, fields=lora.METHOD.fields, quantized_base=True)
