"""kollm: build a small Korean LLM from scratch, end to end, with the NVIDIA NeMo stack."""

__version__ = "0.1.0"
