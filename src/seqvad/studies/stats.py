"""Intervals and paired comparisons for runs that differ only in what they compare.

A test video is the resampling unit (its frames are not independent) and so is a seed (the
model's own randomness): :func:`bootstrap_mean_auc` resamples videos for a fixed set of seeds,
:func:`paired_comparison` resamples videos and seeds together, the same draw for both arms
(arm A and arm B of seed k share the seed, the data order and the initial weights).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import rankdata

DRAWS = 2000
LEVEL = 95


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve as the Mann-Whitney statistic (ties share their mean rank): equal
    to sklearn's ``roc_auc_score`` and about 10x faster on a few thousand frames, which matters
    for thousands of bootstrap draws."""
    labels = np.asarray(labels).astype(bool)
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if not positives or not negatives:
        raise ValueError("AUC needs both normal and abnormal frames")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def video_members(videos: Sequence[str]) -> list[np.ndarray]:
    """Row indices of each video, in order of first appearance."""
    videos = np.asarray(videos)
    names = list(dict.fromkeys(videos.tolist()))
    return [np.flatnonzero(videos == name) for name in names]


def _interval(values: Sequence[float]) -> tuple[float, float]:
    low, high = np.percentile(values, [(100 - LEVEL) / 2, 100 - (100 - LEVEL) / 2])
    return float(low), float(high)


def bootstrap_mean_auc(videos: Sequence[str], labels: np.ndarray, per_seed: Sequence[np.ndarray],
                       draws: int = DRAWS, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of the seeds' mean micro AUC, resampling whole videos."""
    members = video_members(videos)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws):
        picked = np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])
        y = labels[picked]
        if 0 < y.sum() < len(y):  # a draw of only normal (or only abnormal) videos has no AUC
            values.append(np.mean([auc(y, scores[picked]) for scores in per_seed]))
    return _interval(values)


def verdict(low: float, high: float) -> str:
    """The claim "A beats B" from the interval of A - B."""
    if low > 0:
        return "held"
    if high < 0:
        return "not held (the opposite holds)"
    return "not resolved at this noise"


def paired_comparison(videos: Sequence[str], labels: np.ndarray, arm_a: Sequence[np.ndarray],
                      arm_b: Sequence[np.ndarray], draws: int = DRAWS, seed: int = 0) -> dict:
    """Arm A minus arm B in micro AUC, seed by seed (``arm_a[k]`` and ``arm_b[k]`` are the frame
    scores of the same seed): the per-seed differences, their mean, and a 95 % interval of the
    mean difference resampling videos and seeds together (paired: one draw serves both arms)."""
    if len(arm_a) != len(arm_b) or not len(arm_a):
        raise ValueError(f"paired comparison needs the same seeds in both arms, got {len(arm_a)} and {len(arm_b)}")
    labels = np.asarray(labels)
    per_seed = [auc(labels, a) - auc(labels, b) for a, b in zip(arm_a, arm_b)]
    members = video_members(videos)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws):
        picked = np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])
        seeds = rng.integers(0, len(arm_a), len(arm_a))
        y = labels[picked]
        if 0 < y.sum() < len(y):
            values.append(np.mean([auc(y, arm_a[k][picked]) - auc(y, arm_b[k][picked])
                                   for k in seeds]))
    low, high = _interval(values)
    return {"difference_per_seed": [float(d) for d in per_seed], "difference_mean": float(np.mean(per_seed)),
            "wins": int(sum(d > 0 for d in per_seed)), "seeds": len(per_seed),
            f"ci{LEVEL}": [low, high], "verdict": verdict(low, high)}


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0
