"""Fine-tuning on Korean classification tasks (stage `finetune`).

    finetune_task(cfg, task, model_dir, out)   one run: train, measure (time, peak memory), score, save;
                                               returns the method-table row
    peft_config, load, merged                  what trains: full fine-tuning or a HF PEFT adapter
    predict, examples                          how a model answers: label-word log-probs (lm) or a head (cls)

Modules: heads (how a model answers), methods (what trains: LoRA, DoRA, WaveFT, prompt tuning, QLoRA),
trainer (the run), automodel / automodel_cpu (the same run through NeMo AutoModel, in its own environment);
config (`finetune.*`). The tasks themselves are kollm.data's.
"""

from kollm.core.lazy import public_api
from kollm.finetune.config import FinetuneConfig as FinetuneConfig

__getattr__, __dir__ = public_api(
    __name__,
    {
        "trainer": "finetune_task fit score merged_for_export",
        "methods": "peft_config load load_base merged trainable_parameters MERGEABLE METHODS Method",
        "heads": "predict examples label_logprobs class_logits",
    },
    eager=("FinetuneConfig",),
)
