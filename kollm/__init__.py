"""kollm: build a small Korean LLM from scratch, end to end, with the NVIDIA NeMo stack.

The library, one package per layer (docs/architecture.md has the import rule; each package's
`__init__` is its public API):

    kollm.core           errors, files, dotted overrides, lazy package APIs
    kollm.data           datasets and splits, tasks, Korean prompts, metrics
    kollm.tokenization   Korean tokenizers trained from scratch
    kollm.models         the Llama, the other architectures, the GPT written from scratch
    kollm.generation     batched generation: what serves, evaluates and judges
    kollm.curation       Korean quality filters, PII, MinHash, toxicity     (stage curate)
    kollm.pretrain       the training frame and its torch and megatron backends (stage pretrain)
    kollm.finetune       classification fine-tuning with PEFT methods      (stage finetune)
    kollm.align          SFT, DPO, reward model, GRPO                      (stage align)
    kollm.evaluate       baselines, perplexity, lm-evaluation-harness      (stage evaluate)
    kollm.quantize       ModelOpt PTQ, dynamic int8                        (stage quantize)
    kollm.export         the HF model folder and its card                  (stage export)
    kollm.serve          Triton, the request contract, clients, chats      (stage serve)
    kollm.config         PipelineConfig: every package's config section
"""

__version__ = "0.1.0"
