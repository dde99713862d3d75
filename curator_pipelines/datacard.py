"""The curation report: per-stage summary table, score histograms (PNG, summed over shards), examples of each removal reason."""

from __future__ import annotations

import glob
import json
import os

import numpy as np

from kollm.core.io import atomic_open
from kollm.core.plotting import pyplot

EXAMPLES = 3


def _histograms(out_dir: str) -> dict[str, dict]:
    total: dict[str, dict] = {}
    for path in sorted(glob.glob(os.path.join(out_dir, "work", "scores", "*.json"))):
        with open(path, encoding="utf-8") as f:
            for name, h in json.load(f).items():
                if name not in total:
                    total[name] = {"edges": h["edges"], "counts": np.zeros(len(h["counts"]), dtype=np.int64)}
                total[name]["counts"] += np.array(h["counts"], dtype=np.int64)
    return total


def _rows(out_dir: str, sub: str):
    for path in sorted(glob.glob(os.path.join(out_dir, sub, "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            yield from map(json.loads, f)


def _removed_example(row: dict) -> tuple[str, str]:
    dup = f"  (duplicate of {row['duplicate_of']})" if "duplicate_of" in row else ""
    return f"{row['stage']}: {row['reason']}", row["text"][:80] + dup


def _quarantine_example(row: dict) -> tuple[str, str]:
    return (
        f"quarantine: {row['error'].split(':')[0]}",
        f"{os.path.basename(row['file'])}:{row['line']}: {row['raw'][:60]!r}",
    )


def _examples(out_dir: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for sub, example in (("removed", _removed_example), ("quarantine", _quarantine_example)):
        for row in _rows(out_dir, sub):
            key, text = example(row)
            if len(found.setdefault(key, [])) < EXAMPLES:
                found[key].append(text)
    return found


def summary_markdown(summary: dict) -> str:
    lines = ["| stage | in | kept | removed | reason |", "|---|---:|---:|---:|---|"]
    for row in summary["stages"]:
        lines.append(f"| {row['stage']} | {row['in']:,} | {row['kept']:,} | {row['removed']:,} | {row['reason']} |")
    lines.append(
        f"\n{summary['lines_in']:,} lines in = {summary['kept']:,} kept + {summary['removed']:,} removed"
        f" + {summary['quarantined']:,} quarantined.\n"
    )
    return "\n".join(lines)


def write_datacard(out_dir: str, summary: dict, thresholds: dict | None = None) -> str:
    plt = pyplot()
    hists = _histograms(out_dir)
    lines = [
        "# Data card: Korean curation",
        "",
        summary_markdown(summary),
        "## Score histograms",
        "",
        "Each score over the documents that reached its filter (the red line is the threshold).",
        "",
    ]
    for name, h in hists.items():
        edges, counts = np.array(h["edges"]), h["counts"]
        fig, ax = plt.subplots(figsize=(6, 2.6))
        ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#4c72b0")
        for t in (thresholds or {}).get(name, []):
            ax.axvline(t, color="red")
        ax.set_yscale("log")
        ax.set_title(f"{name} ({counts.sum():,} docs)")
        fig.tight_layout()
        png = f"hist_{name}.png"
        fig.savefig(os.path.join(out_dir, png), dpi=80)
        plt.close(fig)
        lines.append(f"![{name}]({png})")
    lines += ["", "## Examples of each removal reason", ""]
    for key, texts in _examples(out_dir).items():
        lines.append(f"- **{key}**")
        lines += [f"  - `{t}`" for t in texts]
    path = os.path.join(out_dir, "datacard.md")
    with atomic_open(path) as f:
        f.write("\n".join(lines) + "\n")
    return path
