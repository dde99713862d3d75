"""Serving helpers: incremental generation (what the Triton model runs), the tritonserver process, clients.

The Triton model itself and its repository writer are in triton_model_repo/ (a layer above).
"""
