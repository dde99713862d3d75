"""Full fine-tuning: every weight trains (at finetune.full_lr); the model itself is the result."""

from kollm.finetune.methods.method import Method

METHOD = Method("full", peft_config=None, lr="full_lr")
