"""Motion context: how unusual an object's place and velocity are, next to the prediction error.

The paper scores an object by how badly its middle crop is predicted.  That error comes from a
crop cut at a fixed box, so it cannot see where the object is or which way it goes: a person
walking the wrong way up a one-way path is as predictable as one walking down it (middle-frame
interpolation is symmetric in time).  This optional score adds that context:

* features per object: box centre (x, y) in pixels, and velocity (vx, vy) in pixels per frame,
  measured inside the object's own cube by phase correlation (OpenCV) of each pair of
  consecutive crops (the median of the plausible shifts), scaled from crop to frame pixels
  by the box size;
* a density model of the training objects' features: standardised, then the mean distance
  to the ``k`` nearest training objects (scikit-learn), in units of the training objects'
  own leave-one-out distances above their median (like ``scoring.normalize``).

Enabled with ``scoring.context: {enabled: true, weight: 1.0, k: 10}``; the object score is then
``normalised prediction error + weight * context score``.
"""

from __future__ import annotations

from typing import Mapping

import cv2
import numpy as np

from seqvad.errors import ConfigError

FEATURES = ("centre_x", "centre_y", "velocity_x", "velocity_y")


def _hanning(size: int) -> np.ndarray:
    window = np.hanning(size).astype(np.float32)
    return np.outer(window, window)


def cube_velocities(cubes: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Velocity ``(N, 2)`` in frame pixels per frame of the object in each cube ``(N, T, C, S, S)``.

    ``boxes`` ``(N, 4)`` are the boxes the cubes were cut from (x1, y1, x2, y2).
    """
    n = len(cubes)
    out = np.zeros((n, 2), np.float32)
    if n == 0:
        return out
    size = cubes.shape[-1]
    window = _hanning(size)
    for i in range(n):
        crops = np.asarray(cubes[i], np.float32).mean(axis=1)  # (T, S, S): grey
        shifts = [shift for shift, _ in (cv2.phaseCorrelate(a, b, window) for a, b in zip(crops[:-1], crops[1:]))]
        # a shift beyond half the crop cannot be told from its wrap-around: such values come
        # from flat or degenerate crops (seen: hundreds of pixels). The median ignores a few.
        plausible = [s for s in shifts if abs(s[0]) <= size / 2 and abs(s[1]) <= size / 2]
        if plausible:
            out[i] = np.median(plausible, axis=0)
    widths = np.asarray(boxes[:, 2] - boxes[:, 0], np.float32)
    heights = np.asarray(boxes[:, 3] - boxes[:, 1], np.float32)
    out[:, 0] *= widths / size
    out[:, 1] *= heights / size
    return out


def object_features(cubes: np.ndarray, index: Mapping[str, np.ndarray]) -> np.ndarray:
    """Features ``(N, 4)``: box centre x, y and velocity x, y of every cube of a store."""
    boxes = np.stack([np.asarray(index[k], np.float32) for k in ("x1", "y1", "x2", "y2")], axis=1) \
        if len(cubes) else np.zeros((0, 4), np.float32)
    centres = np.column_stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2])
    return np.hstack([centres, cube_velocities(cubes, boxes)]).astype(np.float32)


class ContextModel:
    """k-nearest-neighbour density of the training objects' place and velocity."""

    def __init__(self, k: int = 10):
        if int(k) < 1:
            raise ConfigError(f"scoring.context.k={k}: needs at least 1 neighbour")
        self.k = int(k)
        self.mean = self.scale = self.train = None
        self.median = 0.0
        self.iqr = 1.0
        self._index = None

    def fit(self, features: np.ndarray) -> "ContextModel":
        features = np.asarray(features, np.float64)
        if len(features) <= self.k:
            raise ConfigError(f"scoring.context: {len(features)} training objects are too few for "
                              f"k={self.k} neighbours")
        self.mean = features.mean(axis=0)
        self.scale = np.where(features.std(axis=0) > 1e-9, features.std(axis=0), 1.0)
        self.train = ((features - self.mean) / self.scale).astype(np.float32)
        # each training object against the others: its nearest neighbour is itself, left out
        own = self._distances(self.train, self.k + 1)[:, 1:].mean(axis=1)
        q1, self.median, q3 = np.percentile(own, [25, 50, 75])
        self.iqr = max(float(q3 - q1), 1e-9)
        return self

    def _distances(self, points: np.ndarray, k: int) -> np.ndarray:
        if self._index is None:
            from sklearn.neighbors import NearestNeighbors

            self._index = NearestNeighbors(n_neighbors=self.k + 1).fit(self.train)
        return self._index.kneighbors(points, n_neighbors=k)[0]

    def score(self, features: np.ndarray) -> np.ndarray:
        """Context score per object, >= 0: 0 up to the typical training distance."""
        if self.train is None:
            raise ConfigError("scoring.context: the context model was never fitted")
        features = np.asarray(features, np.float64)
        if len(features) == 0:
            return np.zeros(0)
        points = ((features - self.mean) / self.scale).astype(np.float32)
        distance = self._distances(points, self.k).mean(axis=1)
        return np.maximum(distance - self.median, 0.0) / self.iqr

    def state_dict(self) -> dict:
        return {"k": self.k, "mean": self.mean, "scale": self.scale, "train": self.train,
                "median": float(self.median), "iqr": float(self.iqr), "features": list(FEATURES)}

    @classmethod
    def from_state(cls, state: Mapping) -> "ContextModel":
        model = cls(k=int(state["k"]))
        model.mean, model.scale = np.asarray(state["mean"]), np.asarray(state["scale"])
        model.train = np.asarray(state["train"], np.float32)
        model.median, model.iqr = float(state["median"]), float(state["iqr"])
        return model
