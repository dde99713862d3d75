"""NeMo Curator pipelines for Korean text (see README.md)."""
