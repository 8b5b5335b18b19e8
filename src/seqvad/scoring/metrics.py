"""Frame-level metrics (scikit-learn): micro AUC over all frames of all videos joined (the
headline), macro AUC (mean over videos holding both classes), equal error rate, ROC points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


@dataclass
class Metrics:
    micro_auc: float
    macro_auc: float
    eer: float
    videos_in_macro: int

    def as_dict(self) -> dict:
        return {"micro_auc": self.micro_auc, "macro_auc": self.macro_auc, "eer": self.eer,
                "videos_in_macro": self.videos_in_macro}


def micro_auc(labels: Sequence[np.ndarray], scores: Sequence[np.ndarray]) -> float:
    """AUC over all frames of all videos joined (NaN when only one class is present)."""
    y, s = np.concatenate(labels), np.concatenate(scores)
    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")


def macro_auc(labels: Sequence[np.ndarray], scores: Sequence[np.ndarray]) -> tuple[float, int]:
    """Mean AUC over the videos that hold both classes, and how many those are."""
    aucs = [roc_auc_score(y, s) for y, s in zip(labels, scores) if 0 < np.sum(y) < len(y)]
    return (float(np.mean(aucs)) if aucs else float("nan")), len(aucs)


def equal_error_rate(labels: Sequence[np.ndarray], scores: Sequence[np.ndarray]) -> float:
    """The error rate where false positives and false negatives are equally frequent."""
    y, s = np.concatenate(labels), np.concatenate(scores)
    if not 0 < y.sum() < len(y):
        return float("nan")
    fpr, tpr, _ = roc_curve(y, s)
    fnr = 1 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2)


def roc_points(labels: Sequence[np.ndarray], scores: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    fpr, tpr, _ = roc_curve(np.concatenate(labels), np.concatenate(scores))
    return fpr, tpr


def evaluate_scores(labels: Sequence[np.ndarray], scores: Sequence[np.ndarray]) -> Metrics:
    macro, count = macro_auc(labels, scores)
    return Metrics(micro_auc(labels, scores), macro, equal_error_rate(labels, scores), count)
