"""Per-object anomaly terms beyond the paper's prediction error, from the trained model itself.

The paper scores an object by its prediction error alone (Eq. 11). The same model has more to
say about an object, at no extra training:

* ``rec``: the reconstruction error of its forward snippet (Eq. 4's loss, per object);
* ``order``: how strongly the order classifier doubts that its own snippet is in order
  (minus the in-order logit of Eq. 6);
* ``knn``: how far its latent code lies from the training objects' codes: mean distance to the
  ``k`` nearest training codes (scikit-learn), the code being the encoder output of the forward
  and backward snippets, averaged and pooled to 2x2 cells (a density score in the spirit of
  AI-VAD / MULDE, on the features this model learned).

Every term is put on one scale by its training objects' statistics (median and inter-quartile
range, as ``scoring.normalize``), so the object score is ``sum(weight_t * normalised term_t)``.
These terms are optional and validated: a term is on by default only if it raised the
validation AUC (results/<dataset>/selection.csv).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from seqvad.errors import ConfigError

TERMS = ("pre", "rec", "order", "knn")


def _to_float(chunk: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(np.array(chunk)).to(device).float().div_(127.5).sub_(1.0)


def object_terms(model, cubes: np.ndarray, names: tuple[str, ...] = TERMS, batch_size: int = 1024,
                 device: str = "cpu") -> dict[str, np.ndarray]:
    """Raw per-object terms of ``cubes`` (N, 2T+1, C, S, S) uint8; ``knn`` gives the codes
    (N, D) to score with :class:`LatentDensity`."""
    from seqvad.tasks import backward_snippet, forward_snippet, target_frame

    unknown = [n for n in names if n not in TERMS]
    if unknown:
        raise ConfigError(f"scoring.terms: unknown term(s) {', '.join(unknown)} (known: {', '.join(TERMS)})")
    model.eval()
    out: dict[str, list[np.ndarray]] = {name: [] for name in names}
    with torch.inference_mode():
        for start in range(0, len(cubes), batch_size):
            batch = _to_float(cubes[start:start + batch_size], device)
            forward, backward = forward_snippet(batch), backward_snippet(batch)
            codes = model.encode(torch.cat([forward, backward]))
            fwd_code, bwd_code = codes[: len(batch)], codes[len(batch):]
            if "pre" in names:
                prediction = model.predict_from_codes(fwd_code, bwd_code)
                out["pre"].append((prediction - target_frame(batch)).pow(2).flatten(1).mean(1).double().cpu().numpy())
            if "rec" in names:
                rebuilt = model.reconstruct_code(fwd_code)
                out["rec"].append((rebuilt - forward).pow(2).flatten(1).mean(1).double().cpu().numpy())
            if "order" in names:
                out["order"].append((-model.classify(model.project_code(fwd_code))).double().cpu().numpy())
            if "knn" in names:
                pooled = F.adaptive_avg_pool2d((fwd_code + bwd_code) / 2, 2).flatten(1)
                out["knn"].append(pooled.float().cpu().numpy())
    return {name: np.concatenate(values) if values else np.zeros(0) for name, values in out.items()}


class LatentDensity:
    """Mean distance to the ``k`` nearest training codes (codes standardised per dimension)."""

    def __init__(self, k: int = 10):
        if not isinstance(k, int) or k < 1:
            raise ConfigError(f"scoring.knn_k: expected a whole number >= 1, got {k!r}")
        self.k = k

    def fit(self, codes: np.ndarray, max_codes: int = 20000, seed: int = 0) -> "LatentDensity":
        from sklearn.neighbors import NearestNeighbors

        rng = np.random.default_rng(seed)
        if len(codes) > max_codes:
            codes = codes[np.sort(rng.choice(len(codes), max_codes, replace=False))]
        self.mean_ = codes.mean(0)
        self.scale_ = codes.std(0) + 1e-6
        self.index_ = NearestNeighbors(n_neighbors=min(self.k + 1, len(codes))).fit((codes - self.mean_) / self.scale_)
        return self

    def score(self, codes: np.ndarray, exclude_self: bool = False) -> np.ndarray:
        """Mean distance to the k nearest training codes; ``exclude_self`` for the training codes
        themselves (their nearest neighbour is their own copy)."""
        distances, _ = self.index_.kneighbors((codes - self.mean_) / self.scale_)
        distances = distances[:, 1:] if exclude_self else distances[:, : self.k]
        return distances.mean(1)


def robust_stats(values: np.ndarray) -> dict[str, float]:
    q1, median, q3 = np.percentile(values, [25, 50, 75]) if len(values) else (0.0, 0.0, 1.0)
    return {"median": float(median), "iqr": float(max(q3 - q1, 1e-12))}


def combine(terms: Mapping[str, np.ndarray], stats: Mapping[str, Mapping[str, float]],
            weights: Mapping[str, float]) -> np.ndarray:
    """``sum(weight_t * (term_t - median_t) / iqr_t)`` over the weighted terms, clipped at 0
    (so that 'no object' stays the lowest frame score)."""
    total = None
    for name, weight in weights.items():
        if weight:
            value = weight * (terms[name] - stats[name]["median"]) / stats[name]["iqr"]
            total = value if total is None else total + value
    if total is None:
        raise ConfigError("scoring.terms: every weight is 0")
    return np.maximum(total, 0.0)
