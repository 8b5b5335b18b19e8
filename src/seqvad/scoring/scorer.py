"""The fitted Scorer: how a trained model's outputs become object scores, frame scores and alarms.

One component holds every scoring choice and what was fitted for it on the training objects
(normalisation and threshold kept with the model, as anomalib's post-processor; ``fit`` then
score, fitted attributes ending in ``_`` and a fitted-check, as PyOD's ``BaseDetector``):

* ``stats_``: median and inter-quartile range of each term on training objects (subsampled to
  about ``max_cubes``), used when ``scoring.normalize``, context or extra terms ask for them;
* ``context_``: the motion-context model (:mod:`seqvad.context`) when ``scoring.context.enabled``;
* ``density_``: the kNN density of latent codes (:class:`~seqvad.scoring.terms.LatentDensity`)
  when ``scoring.terms.knn`` is weighted;
* ``height_``, ``count_``, ``empty_``: the nuisance normalisations of ``scoring.normalize_by``
  (:mod:`seqvad.scoring.nuisance`) and the score of a frame without objects under them;
* ``threshold_``: the ``scoring.threshold_quantile`` quantile of the training frame scores.

The object score (``combine``):

* defaults: the raw prediction error (the paper's Eq. 11);
* ``scoring.normalize``, or context on: the prediction error normalised by ``stats_['pre']``
  (clipped at 0), plus ``context.weight`` times the context score;
* any nonzero weight in ``scoring.terms`` besides ``pre``: every weighted term normalised by its
  statistics and summed (:func:`~seqvad.scoring.terms.combine`), plus the context score.

:meth:`state_dict` holds only tensors, numbers, strings, lists and dicts, so a model file that
carries it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from seqvad.config import ENGINES
from seqvad.errors import ConfigError, DataError
from seqvad.scoring import errors as _errors
from seqvad.scoring import frames as _frames
from seqvad.scoring.nuisance import CountNorm, HeightNorm, box_heights, check_nuisances
from seqvad.scoring.terms import LatentDensity, combine, normalise, robust_stats

STATE_VERSION = 1


class NotFittedError(DataError):
    """The Scorer is asked for something its ``fit`` has not computed."""


def scoring_section(scoring: Mapping | None) -> dict:
    """``scoring`` over its defaults, the nested ``context`` and ``terms`` key by key."""
    from seqvad.config import DEFAULTS

    defaults = DEFAULTS["scoring"]
    given = dict(scoring or {})
    out = {**defaults, **given}
    out["context"] = {**defaults["context"], **(given.get("context") or {})}
    out["events"] = {**defaults["events"], **(given.get("events") or {})}
    terms = given.get("terms") or {}
    if not isinstance(terms, Mapping):
        raise ConfigError(f"scoring.terms: expected a mapping term -> weight, got {terms!r}")
    _errors.check_terms(list(terms))
    out["terms"] = {**defaults["terms"], **terms}
    return out


def _weights(terms: Mapping) -> dict[str, float]:
    weights = {}
    for name, weight in terms.items():
        try:
            weights[name] = float(weight)
        except (TypeError, ValueError):
            raise ConfigError(f"scoring.terms.{name}: expected a number, got {weight!r}") from None
        if not np.isfinite(weights[name]) or weights[name] < 0:
            raise ConfigError(f"scoring.terms.{name}: expected a weight >= 0, got {weight!r}")
    if not any(weights.values()):
        raise ConfigError("scoring.terms: every weight is 0")
    return weights


class Scorer:
    """Object, frame and alarm scoring of a trained model, fitted on its training objects."""

    def __init__(self, scoring: Mapping | None = None, device: str = "cpu"):
        self.config = scoring_section(scoring)
        cfg = self.config
        self.device = device
        self.error = str(cfg["error"])
        if self.error not in _errors.ERROR_KINDS:
            raise ConfigError(f"scoring.error={self.error!r}: choose mse or psnr")
        self.engine = str(cfg["engine"])
        if self.engine not in ENGINES:
            raise ConfigError(f"scoring.engine={self.engine!r}: choose one of {', '.join(ENGINES)}")
        self._fast: tuple | None = None  # (weak reference to the model, its compact.Engine)
        self.weights = _weights(cfg["terms"])
        self.combined = any(w for name, w in self.weights.items() if name != "pre")
        self.normalize = bool(cfg["normalize"])
        context = cfg["context"]
        self.context = {"enabled": bool(context.get("enabled")), "weight": float(context.get("weight", 1.0)),
                        "k": int(context.get("k", 10))}
        self.knn_k = cfg["knn_k"]
        self.normalize_by = check_nuisances(cfg["normalize_by"])
        if self.normalize_by and self.error != "mse":
            raise ConfigError("scoring.normalize_by needs scoring.error: mse (scores >= 0 give frames "
                              "without objects a fixed lowest score)")
        if self.weights.get("knn"):
            LatentDensity(self.knn_k)  # checks k
        self.window = _frames.median_window(cfg)
        self.quantile = float(cfg["threshold_quantile"])
        self.stats_: dict[str, dict[str, float]] = {}
        self.context_ = None
        self.density_: LatentDensity | None = None
        self.height_: HeightNorm | None = None
        self.count_: CountNorm | None = None
        self.empty_: float | None = None
        self.threshold_: float | None = None

    # -- what the config asks ---------------------------------------------------------------
    @property
    def raw(self) -> bool:
        """The object score is the paper's raw prediction error (Eq. 11)."""
        return not (self.combined or self.normalize or self.context["enabled"])

    @property
    def paper_score(self) -> bool:
        """Objects and frames are scored as the paper does: raw prediction error, max per frame."""
        return self.raw and not self.normalize_by

    @property
    def needs_stats(self) -> bool:
        """Terms are normalised when asked, and always when anything is added to them."""
        return not self.raw

    @property
    def weighted_terms(self) -> tuple[str, ...]:
        return tuple(name for name, weight in self.weights.items() if weight) if self.combined else ("pre",)

    @property
    def term_names(self) -> tuple[str, ...]:
        """The terms computed per object: the weighted ones, and always ``pre`` (for comparison)."""
        return ("pre",) + tuple(name for name in self.weighted_terms if name != "pre")

    def check_fitted(self, *what: str) -> None:
        """NotFittedError naming what is missing (``stats:<term>``, ``context``, ``density``, ``threshold``)."""
        missing = []
        for item in what:
            if item.startswith("stats:"):
                missing += [item] if item[6:] not in self.stats_ else []
            elif getattr(self, item + "_") is None:
                missing.append(item)
        if missing:
            raise NotFittedError(f"this Scorer is not fitted ({', '.join(missing)} missing): "
                                 "call fit(model, train_cubes, train_index) first")

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, model, cubes: np.ndarray, index: Mapping[str, np.ndarray],
            frame_counts: Sequence[int] | None = None, threshold: bool = True) -> "Scorer":
        """Everything the config asks, from the training objects ``cubes`` and their ``index``
        (``video``, ``frame``, ``x1``, ``y1``, ``x2``, ``y2``). The statistics of ``pre`` are
        always kept (they let a saved model be rescored normalised); ``threshold`` False skips
        the threshold (a pass over all training cubes)."""
        self.fit_context(cubes, index)
        self.fit_terms(model, cubes)
        self.fit_nuisance(model, cubes, index, frame_counts)
        if threshold:
            self.fit_threshold(model, cubes, index, frame_counts)
        return self

    def fit_context(self, cubes: np.ndarray, index: Mapping[str, np.ndarray]) -> "Scorer":
        """The motion-context model of the training objects (it does not depend on the model)."""
        if self.context["enabled"]:
            from seqvad.context import ContextModel, object_features

            self.context_ = ContextModel(k=self.context["k"]).fit(object_features(cubes, index))
        return self

    def fit_terms(self, model, cubes: np.ndarray, max_cubes: int = 20000) -> "Scorer":
        """Median / IQR of each weighted term (and ``pre``) on every ``len // max_cubes``-th
        training cube, and the kNN density of their latent codes when ``knn`` is weighted."""
        step = max(1, len(cubes) // max_cubes)
        values = self.raw_terms(model, cubes[::step])
        if "knn" in values:
            self.density_ = LatentDensity(self.knn_k).fit(values["knn"])
            values["knn"] = self.density_.training_scores()  # each code against the others
        self.stats_ = {name: robust_stats(value) for name, value in values.items()}
        return self

    def fit_nuisance(self, model, cubes: np.ndarray, index: Mapping[str, np.ndarray],
                     frame_counts: Sequence[int] | None = None, values: np.ndarray | None = None) -> "Scorer":
        """The ``scoring.normalize_by`` normalisations, from every training object's score (a pass
        over all training cubes, unless their scores before normalisation are given as ``values``;
        nothing when ``normalize_by`` is empty)."""
        if not self.normalize_by:
            return self
        self.height_ = self.count_ = None
        if values is None:
            values = self.combine(self.terms(model, cubes), self.context_scores(cubes, index))
        lowest = 0.0  # squared errors, and the clipped sums of terms, are >= 0
        if "height" in self.normalize_by:
            heights = box_heights(index)
            self.height_ = HeightNorm().fit(values, heights)
            values, lowest = self.height_(values, heights), self.height_.lowest(lowest)
        if "count" in self.normalize_by:
            raw, _ = self.frame_scores(values, index, frame_counts, normalised=False)
            counts = _frames.object_counts(index, [len(r) for r in raw])  # frame_counts may be None
            self.count_ = CountNorm().fit(np.concatenate(raw), counts)
            lowest -= float(self.count_.expected_.max())
        self.empty_ = lowest - 1.0  # below any frame with objects, the same in batch and stream
        return self

    def fit_threshold(self, model, cubes: np.ndarray, index: Mapping[str, np.ndarray],
                      frame_counts: Sequence[int] | None = None, quantile: float | None = None) -> "Scorer":
        """The ``quantile`` (default ``scoring.threshold_quantile``) of the smoothed training frame scores."""
        _, smoothed = self.frame_scores(self.object_scores(model, cubes, index), index, frame_counts)
        joined = np.concatenate(smoothed) if smoothed else np.zeros(1)
        self.threshold_ = float(np.quantile(joined, self.quantile if quantile is None else quantile))
        return self

    # -- scoring ----------------------------------------------------------------------------
    def raw_terms(self, model, cubes: np.ndarray) -> dict[str, np.ndarray]:
        """Raw per-object terms (``term_names``), ``knn`` as latent codes, through the network of
        ``scoring.engine`` (:mod:`seqvad.scoring.compact`; ``torch``: the whole model)."""
        if self.engine != "torch":
            return self.fast_engine(model).terms(cubes)
        return _errors.object_terms(model, cubes, self.term_names, kind=self.error, device=self.device)

    def prepare(self, model) -> None:
        """Build the network ``raw_terms`` will use now (folding, ONNX export), not at the first object."""
        if self.engine != "torch":
            self.fast_engine(model)

    def fast_engine(self, model):
        """The compact network of ``model`` for ``scoring.engine``: built once per model object
        (its weights are fixed once trained), so a stream pays for folding or export once."""
        import weakref

        from seqvad.scoring.compact import Engine

        if self._fast is None or self._fast[0]() is not model:
            self._fast = (weakref.ref(model), Engine(model, self.error, self.engine, self.device,
                                                     names=self.term_names))
        return self._fast[1]

    def terms(self, model, cubes: np.ndarray) -> dict[str, np.ndarray]:
        """Raw per-object terms (``term_names``); ``knn`` as its density score."""
        values = self.raw_terms(model, cubes)
        if "knn" in values:
            self.check_fitted("density")
            values["knn"] = self.density_.score(values["knn"])
        return values

    def context_scores(self, cubes: np.ndarray, index: Mapping[str, np.ndarray] | None) -> np.ndarray | None:
        """Motion-context score of each object, None when context is off."""
        if not self.context["enabled"]:
            return None
        from seqvad.context import object_features

        self.check_fitted("context")
        if index is None:
            raise DataError("scoring.context: object scores need the boxes (x1, y1, x2, y2) of the cubes")
        return self.context_.score(object_features(cubes, index))

    def combine(self, terms: Mapping[str, np.ndarray], context_scores: np.ndarray | None = None,
                weights: Mapping[str, float] | None = None) -> np.ndarray:
        """Object scores from raw ``terms`` and ``context_scores``; ``weights`` overrides the
        configured ones (benchmarks compare combinations with one fitted Scorer)."""
        if weights is not None or self.combined:
            weights = {name: w for name, w in (weights or self.weights).items() if w}
            self.check_fitted(*(f"stats:{name}" for name in weights))
            scores = combine(terms, self.stats_, weights)
        elif self.needs_stats:
            self.check_fitted("stats:pre")
            scores = normalise(terms["pre"], self.stats_["pre"])
        else:
            scores = terms["pre"]
        if self.context["enabled"]:
            if context_scores is None:
                raise DataError("scoring.context is on: combine needs the objects' context scores")
            scores = scores + self.context["weight"] * context_scores
        return scores

    def object_scores(self, model, cubes: np.ndarray, index: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Anomaly score of each object (``index`` holds its box: x1, y1, x2, y2; needed with context
        and ``normalize_by: height``)."""
        return self.normalise_objects(self.combine(self.terms(model, cubes), self.context_scores(cubes, index)),
                                      index)

    def normalise_objects(self, scores: np.ndarray, index: Mapping[str, np.ndarray] | None) -> np.ndarray:
        """Combined object scores in units of their height decile's (``normalize_by: height``)."""
        if "height" not in self.normalize_by:
            return scores
        self.check_fitted("height")
        return self.height_(scores, box_heights(index))

    def frame_scores(self, object_values: np.ndarray, index: Mapping[str, np.ndarray],
                     frame_counts: Sequence[int] | None = None,
                     normalised: bool = True) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Raw (max per frame) and median-filtered frame scores per video, from one value per
        object located by ``index['video']`` and ``index['frame']``; with ``normalize_by:
        count`` (and ``normalised``), minus the expected maximum at each frame's object count."""
        videos = np.asarray(index["video"], np.int64) if "video" in index else np.zeros(len(object_values), np.int64)
        frames = np.asarray(index["frame"], np.int64)
        if frame_counts is None:
            frame_counts = [int(frames[videos == v].max()) + 1 for v in range(int(videos.max()) + 1)] \
                if len(videos) else []
        expected, empty = self._frame_normalisation() if normalised else (None, None)
        raw = _frames.frame_scores(object_values, videos, frames, frame_counts, expected, empty)
        return raw, _frames.smooth(raw, self.window)

    def _frame_normalisation(self):
        """(expected maximum by object count or None, fixed empty-frame score or None)."""
        if not self.normalize_by:
            return None, None
        self.check_fitted("empty", *(["count"] if "count" in self.normalize_by else []))
        return (self.count_.expected if self.count_ is not None else None), self.empty_

    def streaming_frames(self) -> "_frames.StreamingFrames":
        """Frame scores and smoothing one frame at a time, equal to :meth:`frame_scores`."""
        return _frames.StreamingFrames(self.window, *self._frame_normalisation())

    # -- persistence ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The config and fitted state as tensors and plain data (``torch.load(weights_only=True)``)."""
        return {"version": STATE_VERSION, "config": _plain(self.config),
                "stats": {name: dict(value) for name, value in self.stats_.items()},
                "threshold": self.threshold_,
                "context": None if self.context_ is None else _to_tensors(self.context_.state_dict()),
                "density": None if self.density_ is None else _to_tensors(self.density_.state_dict()),
                "height": None if self.height_ is None else _to_tensors(self.height_.state_dict()),
                "count": None if self.count_ is None else _to_tensors(self.count_.state_dict()),
                "empty": self.empty_}

    @classmethod
    def from_state(cls, state: Mapping, device: str = "cpu") -> "Scorer":
        if state.get("version") != STATE_VERSION:
            raise DataError(f"scorer state version {state.get('version')} is not {STATE_VERSION}")
        scorer = cls(state["config"], device=device)
        scorer.stats_ = {name: {k: float(v) for k, v in value.items()} for name, value in state["stats"].items()}
        scorer.threshold_ = None if state.get("threshold") is None else float(state["threshold"])
        if state.get("context") is not None:
            from seqvad.context import ContextModel

            scorer.context_ = ContextModel.from_state(_to_arrays(state["context"]))
        if state.get("density") is not None:
            scorer.density_ = LatentDensity.from_state(_to_arrays(state["density"]))
        if state.get("height") is not None:
            scorer.height_ = HeightNorm.from_state(_to_arrays(state["height"]))
        if state.get("count") is not None:
            scorer.count_ = CountNorm.from_state(_to_arrays(state["count"]))
        scorer.empty_ = None if state.get("empty") is None else float(state["empty"])
        return scorer


def _plain(value):
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _to_tensors(state: Mapping) -> dict:
    import torch

    return {k: torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else _plain(v)
            for k, v in state.items()}


def _to_arrays(state: Mapping) -> dict:
    import torch

    return {k: v.cpu().numpy() if isinstance(v, torch.Tensor) else v for k, v in state.items()}
