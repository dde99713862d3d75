"""Figures for reports and data cards, drawn off-screen (no display on servers and CI)."""

from __future__ import annotations


def pyplot():
    """matplotlib.pyplot on the Agg backend (PNG files only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def use_korean_font() -> str:
    """Hangul in figures: NanumGothic (OFL) from the pinned koreanize-matplotlib wheel, read as a font file
    (importing that package runs distutils, gone in Python 3.12). Returns the family name."""
    import importlib.util
    import os

    from matplotlib import font_manager, rcParams

    spec = importlib.util.find_spec("koreanize_matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("no Korean font: pip install koreanize-matplotlib==0.1.1 (requirements/train.txt)")
    path = os.path.join(spec.submodule_search_locations[0], "fonts", "NanumGothic.ttf")
    font_manager.fontManager.addfont(path)
    family = font_manager.FontProperties(fname=path).get_name()
    rcParams["font.family"] = family
    rcParams["axes.unicode_minus"] = False  # NanumGothic has no U+2212 minus
    return family
