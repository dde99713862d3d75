"""Sequence-classification heads for the registry architectures transformers has none for (Mamba-2, Mamba,
Nemotron-H, RWKV), registered with `AutoModelForSequenceClassification`.

The finetune stage's `cls` head, the align stage's reward model and the classifiers that judge or reward
alignment all load `AutoModelForSequenceClassification.from_pretrained(dir)`. For Llama, Qwen3-MoE and
DeepSeek-V3 transformers ships the class; for the state-space models and RWKV (on kollm/models/rwkv.py's batch-correct
backbone, which honours the padding mask) this file adds one with the same
shape as theirs: the backbone under the causal LM's attribute name (so a pretrained causal-LM folder
loads into it, its `lm_head` left out), a bias-free linear `score` over the hidden state of each row's
last real token, cross-entropy (or MSE for one label, as HF), `SequenceClassifierOutputWithPast`.
Importing this module registers them: load classifiers with

    from kollm.models.seq_classification import AutoModelForSequenceClassification  # transformers' own, registered
"""

from __future__ import annotations

import torch
import transformers as tf
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutputWithPast


def last_token_index(input_ids, attention_mask, pad_token_id) -> torch.Tensor:
    """Per row, the position of the last real token, for right or left padding (HF's rule for Llama)."""
    real = (
        attention_mask.bool()
        if attention_mask is not None
        else (input_ids != pad_token_id if pad_token_id is not None else torch.ones_like(input_ids, dtype=torch.bool))
    )
    positions = torch.arange(real.shape[-1], device=real.device)
    return (positions * real).argmax(-1)


def _head_class(name: str, pretrained: type, backbone: type, attr: str) -> type:
    def __init__(self, config):
        pretrained.__init__(self, config)
        self.num_labels = config.num_labels
        setattr(self, attr, backbone(config))
        self.score = nn.Linear(config.hidden_size, config.num_labels, bias=False)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, labels=None, **kwargs):
        kwargs.pop("use_cache", None), kwargs.pop("position_ids", None)  # no KV cache, no positions here
        hidden = getattr(self, attr)(
            input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask, use_cache=False
        ).last_hidden_state
        if input_ids is None and attention_mask is None:
            last = torch.full(hidden.shape[:1], hidden.shape[1] - 1, device=hidden.device)
        else:
            last = last_token_index(input_ids, attention_mask, self.config.pad_token_id)
        # the SSM blocks return fp32 states even in a bf16 model (the quantize stage measures one)
        logits = self.score(
            hidden[torch.arange(hidden.shape[0], device=hidden.device), last].to(self.score.weight.dtype)
        )
        loss = None
        if labels is not None:
            if self.num_labels == 1:
                loss = nn.functional.mse_loss(logits.squeeze(-1).float(), labels.float())
            else:
                loss = nn.functional.cross_entropy(logits.float(), labels.view(-1))
        return SequenceClassifierOutputWithPast(loss=loss, logits=logits)

    return type(name, (pretrained,), {"__init__": __init__, "forward": forward})


def _registry() -> dict:
    from transformers.models.mamba import modeling_mamba as mamba
    from transformers.models.mamba2 import modeling_mamba2 as mamba2
    from transformers.models.nemotron_h import modeling_nemotron_h as nemotron_h
    from transformers.models.rwkv import modeling_rwkv as rwkv

    from kollm.models import rwkv as kollm_rwkv

    return {
        tf.Mamba2Config: _head_class(
            "Mamba2ForSequenceClassification", mamba2.Mamba2PreTrainedModel, mamba2.Mamba2Model, "backbone"
        ),
        tf.MambaConfig: _head_class(
            "MambaForSequenceClassification", mamba.MambaPreTrainedModel, mamba.MambaModel, "backbone"
        ),
        tf.NemotronHConfig: _head_class(
            "NemotronHForSequenceClassification",
            nemotron_h.NemotronHPreTrainedModel,
            nemotron_h.NemotronHModel,
            "model",
        ),
        tf.RwkvConfig: _head_class(
            "RwkvForSequenceClassification", rwkv.RwkvPreTrainedModel, kollm_rwkv.RwkvModel, "rwkv"
        ),
    }


CLASSES: dict = {}


def register() -> None:
    """Once per process: the heads above become what AutoModelForSequenceClassification builds."""
    if CLASSES:
        return
    for config_class, model_class in _registry().items():
        if config_class not in tf.AutoModelForSequenceClassification._model_mapping:
            # exist_ok: without it transformers skips (silently) a custom class for one of its own configs
            tf.AutoModelForSequenceClassification.register(config_class, model_class, exist_ok=True)
        CLASSES[config_class.model_type] = model_class


register()
AutoModelForSequenceClassification = tf.AutoModelForSequenceClassification
