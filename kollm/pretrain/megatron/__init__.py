"""The megatron backend: megatron-core `GPTModel` for kollm's Llama architecture.

gpt_model.py  TransformerConfig + layer spec (Transformer Engine on GPUs, local modules otherwise)
convert.py    megatron <-> HF Llama weights (QKV per query group, fused SwiGLU, padded vocab)
backend.py    the training loop: TP/PP/CP/DP, distributed checkpoints, logging
to_hf.py      distributed checkpoint -> HF model folder (one process, resharded to TP=1)

megatron-core is used directly (not Megatron-Bridge): Bridge 0.3.1, the last release for Python
3.11, requires transformers<5 and Transformer Engine (kollm's HF stack is transformers 5; TE does
not build on CPUs); Bridge >= 0.4 needs Python 3.12 (the NGC containers'), kollm's CPU setup is 3.11.
kollm's own weight conversion is checked end to end by comparing logits.
"""
