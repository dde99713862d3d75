"""Figures for reports and data cards, drawn off-screen (no display on servers and CI)."""

from __future__ import annotations


def pyplot():
    """matplotlib.pyplot on the Agg backend (PNG files only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
