"""Putting per-object terms on one scale, and the kNN density of latent codes.

The paper scores an object by its prediction error alone (Eq. 11). The same model has more to
say about an object at no extra training (``seqvad.scoring.errors``: ``rec``, ``order``, the
latent code for ``knn``). Every term is put on one scale by its training objects' statistics
(median and inter-quartile range, as ``scoring.normalize``), so the object score is
``sum(weight_t * normalised term_t)``. These terms are optional, and a weight is chosen on the
validation split (results/<dataset>/selection.csv), never on test labels.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from seqvad.errors import ConfigError


class LatentDensity:
    """Mean distance to the ``k`` nearest training codes (codes standardised per dimension).

    A density score in the spirit of AI-VAD / MULDE, on the features this model learned. The
    fitted state (``mean_``, ``scale_``, the standardised training codes ``codes_``, at most
    ``max_codes`` of them) is plain arrays. The search is exact, by matrix products in numpy
    rather than scikit-learn's ``NearestNeighbors``: for the few dozen objects of a frame against
    20,000 codes its per-call overhead made the query 5.8 ms, most of the term's cost."""

    CHUNK = 1024  # queries per matrix product (1024 x 20,000 float32 distances: 80 MB)

    def __init__(self, k: int = 10):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"scoring.knn_k: expected a whole number >= 1, got {k!r}")
        self.k = int(k)

    def fit(self, codes: np.ndarray, max_codes: int = 20000, seed: int = 0) -> "LatentDensity":
        codes = np.asarray(codes, np.float32)
        if len(codes) <= self.k:
            raise ConfigError(f"scoring.terms.knn: {len(codes)} training objects are too few for "
                              f"scoring.knn_k={self.k} neighbours")
        if len(codes) > max_codes:
            rng = np.random.default_rng(seed)
            codes = codes[np.sort(rng.choice(len(codes), max_codes, replace=False))]
        self.mean_ = codes.mean(0)
        self.scale_ = codes.std(0) + 1e-6
        self.codes_ = ((codes - self.mean_) / self.scale_).astype(np.float32)
        self._norms = None  # squared norms of codes_, computed at the first query
        return self

    def score(self, codes: np.ndarray, exclude_self: bool = False) -> np.ndarray:
        """Mean distance to the k nearest training codes; ``exclude_self`` for the training codes
        themselves (their nearest neighbour is their own copy)."""
        if not hasattr(self, "codes_"):
            raise ConfigError("scoring.terms.knn: the latent density was never fitted")
        return self._mean_distance((np.asarray(codes, np.float32) - self.mean_) / self.scale_, exclude_self)

    def training_scores(self) -> np.ndarray:
        """Each training code's score against the others (leave one out): the term's statistics."""
        return self._mean_distance(self.codes_, exclude_self=True)

    def _mean_distance(self, points: np.ndarray, exclude_self: bool) -> np.ndarray:
        """Mean Euclidean distance to the k nearest codes (the nearest dropped: ``exclude_self``)."""
        if len(points) == 0:
            return np.zeros(0)
        import torch

        codes = self.codes_
        take = min(self.k + 1 if exclude_self else self.k, len(codes))
        if getattr(self, "_norms", None) is None:  # reset by fit; from_state builds a new object
            self._norms = np.einsum("ij,ij->i", codes, codes)
        out = np.empty(len(points))
        for start in range(0, len(points), self.CHUNK):
            query = np.asarray(points[start:start + self.CHUNK], np.float32)
            squared = self._norms[None, :] - 2.0 * (query @ codes.T) + np.einsum("ij,ij->i", query, query)[:, None]
            # torch's top-k, sorted ascending: 4x faster than numpy's partition at 20,000 codes
            nearest = torch.topk(torch.from_numpy(squared), take, dim=1, largest=False).values.numpy()
            distances = np.sqrt(np.maximum(nearest, 0.0))
            out[start:start + len(query)] = (distances[:, 1:] if exclude_self else distances).mean(1)
        return out

    def state_dict(self) -> dict:
        return {"k": self.k, "mean": self.mean_, "scale": self.scale_, "codes": self.codes_}

    @classmethod
    def from_state(cls, state: Mapping) -> "LatentDensity":
        density = cls(int(state["k"]))
        density.mean_ = np.asarray(state["mean"], np.float32)
        density.scale_ = np.asarray(state["scale"], np.float32)
        density.codes_ = np.asarray(state["codes"], np.float32)
        return density


def robust_stats(values: np.ndarray) -> dict[str, float]:
    """Median and inter-quartile range of a term on training objects."""
    q1, median, q3 = np.percentile(values, [25, 50, 75]) if len(values) else (0.0, 0.0, 1.0)
    return {"median": float(median), "iqr": float(q3 - q1)}


def normalise(values: np.ndarray, stats: Mapping[str, float] | None) -> np.ndarray:
    """Values in units of the training values' spread above their median, clipped at 0.

    It makes scores and thresholds comparable across models, and puts prediction errors on
    the scale of the context scores they are added to. Clipped at 0 so that 'no object' (0)
    stays the lowest score; the clipping ties everything below the training median, so AUC
    can move a little against raw errors. ``stats`` None: the values as they are.
    """
    if not stats:
        return values
    return np.maximum(values - stats["median"], 0.0) / max(stats["iqr"], 1e-12)


def combine(terms: Mapping[str, np.ndarray], stats: Mapping[str, Mapping[str, float]],
            weights: Mapping[str, float]) -> np.ndarray:
    """``sum(weight_t * (term_t - median_t) / iqr_t)`` over the weighted terms, clipped at 0
    (so that 'no object' stays the lowest frame score)."""
    total = None
    for name, weight in weights.items():
        if weight:
            value = weight * (terms[name] - stats[name]["median"]) / max(stats[name]["iqr"], 1e-12)
            total = value if total is None else total + value
    if total is None:
        raise ConfigError("scoring.terms: every weight is 0")
    return np.maximum(total, 0.0)
