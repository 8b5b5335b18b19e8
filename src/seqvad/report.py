"""Figures: per-phase anomaly score curves with the ground-truth spans shaded (paper Fig. 4)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def abnormal_spans(labels: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` half-open runs of 1s in a 0/1 vector."""
    padded = np.concatenate([[0], np.asarray(labels, np.int8), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def pick_videos(labels: Sequence[np.ndarray], count: int) -> list[int]:
    """Videos that hold both classes first (the interesting ones), then the rest, in order."""
    mixed = [i for i, y in enumerate(labels) if 0 < y.sum() < len(y)]
    rest = [i for i in range(len(labels)) if i not in mixed]
    return (mixed + rest)[:count]


def score_curves(out_dir: Path, names: Sequence[str], labels: Sequence[np.ndarray],
                 phase_scores: Mapping[str, Sequence[np.ndarray]], count: int = 6,
                 filename: str = "score_curves.png") -> Path:
    """One panel per video, one curve per phase (min-max scaled per video and phase), GT shaded."""
    plt = _pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = pick_videos(labels, count)
    cols = 2 if len(chosen) > 1 else 1
    rows = int(np.ceil(len(chosen) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 2.3 * rows), squeeze=False)
    colours = plt.cm.viridis(np.linspace(0.15, 0.85, max(1, len(phase_scores))))
    for ax, i in zip(axes.ravel(), chosen):
        for start, stop in abnormal_spans(labels[i]):
            ax.axvspan(start, stop - 1, color="tab:red", alpha=0.18, lw=0)
        for colour, (phase, scores) in zip(colours, phase_scores.items()):
            s = np.asarray(scores[i], dtype=float)
            span = s.max() - s.min()
            ax.plot((s - s.min()) / span if span > 0 else s * 0, color=colour, lw=1.3,
                    label=phase.replace("_smoothed", ""))
        ax.set_title(f"video {names[i]}", fontsize=9)
        ax.set_xlim(0, len(labels[i]) - 1)
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("frame", fontsize=8)
        ax.set_ylabel("score (scaled)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(chosen):]:
        ax.axis("off")
    handles, texts = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, texts, loc="upper center", ncol=max(1, len(texts)), fontsize=8, frameon=False)
    fig.text(0.99, 0.005, "shaded: ground-truth anomalous frames", ha="right", fontsize=7, color="tab:red")
    fig.tight_layout(rect=(0, 0.01, 1, 0.95))
    path = out_dir / filename
    tmp = out_dir / (".tmp-" + filename)
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return path
