"""Korean curation building blocks: plain functions (text in, score or text out).

`curator_pipelines/` wraps them as NeMo Curator stages; they are kept free of Curator so
they can be unit-tested and reused (datatrove comparison, serving-time safety checks).
"""
