"""The megatron backend: megatron-core `GPTModel` for kollm's Llama architecture.

model.py   TransformerConfig + layer spec (Transformer Engine on GPUs, local modules otherwise)
convert.py megatron <-> HF Llama weights (QKV per query group, fused SwiGLU, padded vocab)
train.py   the training loop: TP/PP/CP/DP, distributed checkpoints, logging
export.py  distributed checkpoint -> HF model folder (one process, resharded to TP=1)

megatron-core is used directly (not Megatron-Bridge): Bridge 0.3.1 imports Transformer Engine
unconditionally, which does not install on CPU machines, and kollm's own weight conversion is
checked end to end by comparing logits.
"""
