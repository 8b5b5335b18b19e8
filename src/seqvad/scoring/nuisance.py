"""Scores normalised by what is not anomalous: an object's height, and the number of objects in a frame.

Both are measured on the training objects only (``Scorer.fit``), never on the scored split:

* ``height``: an object's score depends on its size in the frame. People near the camera are cut
  from large boxes and far ones from small boxes, and both are resized to the same crop. The score
  is put in units of the training objects of a similar height: (score - median) / IQR within the
  training height decile the object falls in (:class:`HeightNorm`).
* ``count``: a frame's score is the maximum over its objects, and the maximum of more normal
  objects is larger, so crowded frames score higher for no reason. The training frames' maximum
  as a non-decreasing function of the object count (scikit-learn's isotonic regression) is
  subtracted from each frame's maximum (:class:`CountNorm`).

Their fitted state is plain arrays, so a model file that carries them loads without pickle.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from seqvad.errors import ConfigError

NUISANCES = ("height", "count")
HEIGHT_BINS = 10


def check_nuisances(names) -> tuple[str, ...]:
    names = [names] if isinstance(names, str) else list(names or [])
    unknown = [str(n) for n in names if n not in NUISANCES]
    if unknown:
        raise ConfigError(f"scoring.normalize_by: unknown {', '.join(unknown)} (known: {', '.join(NUISANCES)})")
    return tuple(n for n in NUISANCES if n in names)


def box_heights(index: Mapping[str, np.ndarray] | None) -> np.ndarray:
    if index is None or "y1" not in index or "y2" not in index:
        raise ConfigError("scoring.normalize_by: height needs the objects' boxes (y1, y2)")
    return np.asarray(index["y2"], np.float64) - np.asarray(index["y1"], np.float64)


class HeightNorm:
    """(score - median) / IQR of the training objects in the same height decile."""

    def fit(self, values: np.ndarray, heights: np.ndarray) -> "HeightNorm":
        values, heights = np.asarray(values, np.float64), np.asarray(heights, np.float64)
        if len(values) < HEIGHT_BINS:
            raise ConfigError(f"scoring.normalize_by: height needs >= {HEIGHT_BINS} training objects")
        self.edges_ = np.percentile(heights, np.linspace(0, 100, HEIGHT_BINS + 1)[1:-1])
        bins = np.digitize(heights, self.edges_)
        quartiles = np.array([np.percentile(values[bins == b], [25, 50, 75]) if (bins == b).any()
                              else np.percentile(values, [25, 50, 75]) for b in range(HEIGHT_BINS)])
        self.median_ = quartiles[:, 1]
        self.iqr_ = np.maximum(quartiles[:, 2] - quartiles[:, 0], 1e-12)
        return self

    def __call__(self, values: np.ndarray, heights: np.ndarray) -> np.ndarray:
        bins = np.digitize(np.asarray(heights, np.float64), self.edges_)
        return (np.asarray(values, np.float64) - self.median_[bins]) / self.iqr_[bins]

    def lowest(self, lowest_value: float) -> float:
        """The lowest normalised score a value >= ``lowest_value`` can get."""
        return float(np.min((lowest_value - self.median_) / self.iqr_))

    def state_dict(self) -> dict:
        return {"edges": self.edges_, "median": self.median_, "iqr": self.iqr_}

    @classmethod
    def from_state(cls, state: Mapping) -> "HeightNorm":
        norm = cls()
        norm.edges_, norm.median_, norm.iqr_ = (np.asarray(state[k], np.float64) for k in ("edges", "median", "iqr"))
        return norm


class CountNorm:
    """The training frames' expected maximum score at each object count (non-decreasing)."""

    def fit(self, frame_max: np.ndarray, counts: np.ndarray) -> "CountNorm":
        from sklearn.isotonic import IsotonicRegression

        counts, frame_max = np.asarray(counts), np.asarray(frame_max, np.float64)
        seen = counts > 0
        if not seen.any():
            raise ConfigError("scoring.normalize_by: count needs training frames with objects")
        fitted = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(counts[seen], frame_max[seen])
        self.counts_ = np.asarray(fitted.X_thresholds_, np.float64)
        self.expected_ = np.asarray(fitted.y_thresholds_, np.float64)
        return self

    def expected(self, counts) -> np.ndarray:
        """Expected maximum at ``counts`` objects: the isotonic fit's own piecewise-linear
        prediction, clipped at the counts seen in training."""
        return np.interp(np.asarray(counts, np.float64), self.counts_, self.expected_)

    def state_dict(self) -> dict:
        return {"counts": self.counts_, "expected": self.expected_}

    @classmethod
    def from_state(cls, state: Mapping) -> "CountNorm":
        norm = cls()
        norm.counts_, norm.expected_ = (np.asarray(state[k], np.float64) for k in ("counts", "expected"))
        return norm
