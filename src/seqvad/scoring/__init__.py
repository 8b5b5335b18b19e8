"""Scoring: a trained model's outputs -> object scores -> frame scores -> metrics (paper Eq. 11-13).

* ``errors``: per-object raw terms in one model pass (the paper's prediction error ``pre``, and
  optionally ``rec``, ``order``, latent codes for ``knn``); the one uint8 -> [-1, 1] mapping;
* ``terms``: putting terms on one scale (median / IQR), the kNN density of latent codes;
* ``scorer``: the fitted :class:`Scorer` (statistics, optional terms, context, threshold),
  saved with the model and used by ``seqvad evaluate``, the API and streaming alike;
* ``frames``: max per frame and median smoothing, batch and streaming;
* ``metrics``: micro / macro AUC, equal error rate, ROC points;
* ``regions``: region- and track-based detection criteria (RBDC, TBDC) against pixel masks.
"""

from seqvad.scoring.errors import TERMS, from_unit_range, object_errors, object_terms, to_unit_range
from seqvad.scoring.frames import StreamingFrames, frame_scores, median_window, smooth
from seqvad.scoring.metrics import (Metrics, equal_error_rate, evaluate_scores, macro_auc, micro_auc,
                                    roc_points)
from seqvad.scoring.scorer import NotFittedError, Scorer
from seqvad.scoring.terms import LatentDensity, combine, normalise, robust_stats

__all__ = ["TERMS", "LatentDensity", "Metrics", "NotFittedError", "Scorer", "StreamingFrames", "combine",
           "equal_error_rate", "evaluate_scores", "frame_scores", "from_unit_range", "macro_auc",
           "median_window", "micro_auc", "normalise", "object_errors", "object_terms", "robust_stats",
           "roc_points", "smooth", "to_unit_range"]
