"""Alignment (stage `align`): data from real labels (data.py); TRL on CPU; NeMo-RL configs for GPUs (aligner/)."""
