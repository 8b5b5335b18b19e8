"""Object errors -> frame scores -> smoothing -> metrics (paper Eq. 11-13).

* per object: the error of the bidirectional prediction of its middle crop (MSE by default);
* per frame: the maximum over its objects, 0 when it has none (Eq. 12-13);
* per video: a median filter along time (window 17) for temporal consistency;
* metrics (scikit-learn): micro AUC over all test frames joined (the headline), macro AUC
  (mean over videos holding both classes), equal error rate, ROC points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.ndimage import median_filter
from sklearn.metrics import roc_auc_score, roc_curve

from seqvad.errors import ConfigError


def object_errors(model, cubes: np.ndarray, kind: str = "mse", batch_size: int = 1024,
                  device: str = "cpu") -> np.ndarray:
    """Prediction error of every cube ``(N, 9, C, S, S)`` uint8 -> float64 ``(N,)``."""
    import torch

    from seqvad.tasks import prediction_error

    if kind not in ("mse", "psnr"):
        raise ConfigError(f"scoring.error={kind!r}: choose mse or psnr")
    model.eval()
    out = np.empty(len(cubes), dtype=np.float64)
    with torch.inference_mode():
        for start in range(0, len(cubes), batch_size):
            # np.array copies: the cache is a read-only memory map that torch must not alias
            chunk = torch.from_numpy(np.array(cubes[start:start + batch_size])).to(device)
            chunk = chunk.float().div_(127.5).sub_(1.0)
            out[start:start + len(chunk)] = prediction_error(model, chunk, kind=kind).double().cpu().numpy()
    return out


def frame_scores(errors: np.ndarray, video_ids: np.ndarray, frames: np.ndarray,
                 frame_counts: Sequence[int]) -> list[np.ndarray]:
    """Max object error per frame (Eq. 12), 0 for frames without objects (Eq. 13).

    ``video_ids[i]`` and ``frames[i]`` locate object ``i``; returns one array per video.
    Errors that can be negative (minus PSNR) give empty frames the lowest error seen
    instead of 0, so that 'no object' still means 'least anomalous'.
    """
    errors = np.asarray(errors, dtype=np.float64)
    offsets = np.concatenate([[0], np.cumsum(frame_counts)]).astype(np.int64)
    empty = min(0.0, float(errors.min())) if len(errors) else 0.0
    flat = np.full(offsets[-1], -np.inf)
    if len(errors):
        np.maximum.at(flat, offsets[np.asarray(video_ids, np.int64)] + np.asarray(frames, np.int64), errors)
    flat[np.isneginf(flat)] = empty
    return [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def smooth(scores: Sequence[np.ndarray], window: int = 17) -> list[np.ndarray]:
    """Median filter along each video; at the edges the first/last score is repeated."""
    if window <= 1:
        return [np.asarray(s, dtype=np.float64) for s in scores]
    if window % 2 == 0:
        raise ConfigError(f"scoring.median_window={window}: the median window must be odd")
    return [median_filter(np.asarray(s, dtype=np.float64), size=window, mode="nearest") for s in scores]


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
