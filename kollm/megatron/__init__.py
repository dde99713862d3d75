"""The megatron backend: megatron-core `GPTModel` for kollm's Llama architecture.

model.py   TransformerConfig + layer spec (Transformer Engine on GPUs, local modules otherwise)
convert.py megatron <-> HF Llama weights (QKV per query group, fused SwiGLU, padded vocab)
train.py   the training loop: TP/PP/CP/DP, distributed checkpoints, logging
export.py  distributed checkpoint -> HF model folder (one process, resharded to TP=1)
bridge.py  the same model as a Megatron-Bridge provider, for AutoBridge on GPU hosts
"""
