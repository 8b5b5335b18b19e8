"""The public Python face: ``Detector().fit(videos)``, ``.score``, ``.predict``, ``.events``, ``.save``, ``.load``.

It is prepare + train + evaluate behind the scikit-learn habit of fit then score::

    from seqvad.api import Detector

    detector = Detector().fit("normal_videos/")   # same defaults as `seqvad train --folder`
    scores = detector.score("new_clip.avi")       # one anomaly score per frame
    flags = detector.predict("new_clip.avi")      # 0/1 per frame at the model's threshold
    events = detector.events("new_clip.avi")      # merged episodes, as `seqvad detect` writes them
    detector.save("model.pt"); detector = Detector.load("model.pt")

Videos are paths (a file, a frame folder; for ``fit`` also a folder of videos), lists of them,
numpy arrays ``(T, H, W[, C])`` of ``uint8`` or :class:`~seqvad.data.videos.Video` objects
(:mod:`seqvad.data.inputs`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from seqvad.checkpoint import (MODEL_FORMAT, MODEL_FORMAT_VERSION, load_model, load_weights, read_model_file,
                               save_model_file)
from seqvad.config import cube_geometry
from seqvad.errors import DataError
from seqvad.scoring.scorer import Scorer

__all__ = ["Detector", "MODEL_FORMAT", "MODEL_FORMAT_VERSION"]


class Detector:
    """A trained seqvad model with its config and its fitted :class:`~seqvad.scoring.Scorer`
    (error statistics, optional context and terms, alarm threshold)."""

    def __init__(self, config: str | Path | Mapping | None = None, device: str | None = None):
        """``config``: a built-in name (``ped2``, ``demo``...), a YAML path or a dict over the
        defaults; None: the defaults for one's own footage, as ``seqvad train --folder``."""
        from seqvad.config import footage_config, load_config

        self.config = footage_config() if config is None else load_config(config)
        self.device = device or self.config["train"].get("device", "cpu")
        self.model = None
        self.scorer = Scorer(self.config["scoring"], device=self.device)
        self.phase_info: dict = {}

    # the scorer's fitted state, under the names it had before the scorer existed
    @property
    def stats(self) -> dict | None:
        """Median / IQR of the training objects' prediction errors."""
        return self.scorer.stats_.get("pre")

    @stats.setter
    def stats(self, value: dict | None) -> None:
        self.scorer.stats_ = {**self.scorer.stats_, "pre": dict(value)} if value else \
            {k: v for k, v in self.scorer.stats_.items() if k != "pre"}

    @property
    def context(self):
        """The motion-context model (``seqvad.context.ContextModel``) when scoring.context is on."""
        return self.scorer.context_

    @context.setter
    def context(self, value) -> None:
        self.scorer.context_ = value

    @property
    def threshold(self) -> float | None:
        """The alarm threshold: a high quantile of the training frame scores."""
        return self.scorer.threshold_

    @threshold.setter
    def threshold(self, value: float | None) -> None:
        self.scorer.threshold_ = None if value is None else float(value)

    # -- training -------------------------------------------------------------------------------
    def fit(self, videos: Sequence, run_dir: str | Path | None = None, progress: bool = True,
            workers: int | None = None) -> "Detector":
        """Prepare cubes of ``videos`` (normal footage: a folder of videos, a path, an array or a
        list of them), train the schedule, fit the scorer."""
        from seqvad.data.inputs import as_videos
        from seqvad.experiment import train_videos

        videos = as_videos(videos)
        keep = run_dir is not None
        run_dir = Path(run_dir) if keep else Path(tempfile.mkdtemp(prefix="seqvad-fit-"))
        try:
            last, train_store = train_videos(self.config, run_dir, videos, workers=workers, progress=progress)
            self.model, _, self.phase_info = load_model(last, map_location=self.device)
            self.model.to(self.device).eval()
            self._calibrate(train_store)
        finally:
            if not keep:
                import shutil

                shutil.rmtree(run_dir, ignore_errors=True)
        return self

    def _calibrate(self, train_store, quantile: float | None = None) -> None:
        """The scorer fitted on the training cubes only: statistics, context, threshold."""
        self.scorer.fit(self.model, train_store.cubes, train_store.index, train_store.frame_counts, threshold=False)
        self.scorer.fit_threshold(self.model, train_store.cubes, train_store.index, train_store.frame_counts,
                                  quantile=quantile)

    # -- scoring --------------------------------------------------------------------------------
    def object_cubes(self, video):
        """Boxes and 9-frame cubes of one video, with this detector's config."""
        from seqvad.objects.detectors import build_detector, seed_opencv_rng

        detector = build_detector(self.config["detector"], video_name=video.name)
        seed_opencv_rng()
        return detector.cut_video(video, **cube_geometry(self.config))  # one read of the video

    def score(self, video, smoothed: bool = True) -> np.ndarray | list[np.ndarray]:
        """One anomaly score per frame of ``video`` (higher = more anomalous); a list of videos
        gives a list of score arrays."""
        from seqvad.data.inputs import as_video

        self.require_model()
        if isinstance(video, (list, tuple)):
            return [self.score(as_video(v, name=f"array{i}"), smoothed) for i, v in enumerate(video)]
        video = as_video(video)
        cubes, index = self.object_cubes(video)
        scores = self.object_scores(cubes, index)
        located = {"video": np.zeros(len(scores), np.int64), "frame": np.asarray(index["frame"])}
        raw, smooth = self.scorer.frame_scores(scores, located, [len(video)])
        return smooth[0] if smoothed else raw[0]

    def predict(self, video) -> np.ndarray | list[np.ndarray]:
        """0/1 per frame: the smoothed score over the model's threshold (as ``seqvad detect``'s alarms)."""
        if self.threshold is None:
            raise DataError("predict: this model has no threshold (set its .threshold first)")
        scores = self.score(video)
        if isinstance(scores, list):
            return [(s > self.threshold).astype(np.uint8) for s in scores]
        return (scores > self.threshold).astype(np.uint8)

    def events(self, video, fps: float | None = None) -> list:
        """The events of one video (:class:`seqvad.scoring.events.Event`: frames, times, peak),
        with the model's ``scoring.events`` settings; times at ``fps`` (default: the video's, else 25)."""
        from seqvad.data.inputs import as_video
        from seqvad.scoring.events import find_events
        from seqvad.stream.sources import DEFAULT_FPS

        if self.threshold is None:
            raise DataError("events: this model has no threshold (set its .threshold first)")
        video = as_video(video)
        fps = float(fps or video.fps or DEFAULT_FPS)
        return find_events(self.score(video), self.threshold, self.scorer.config["events"], fps)

    def object_scores(self, cubes: np.ndarray, index) -> np.ndarray:
        """Anomaly score of each object (``index`` holds its box: x1, y1, x2, y2)."""
        self.require_model()
        return self.scorer.object_scores(self.model, cubes, index)

    def require_model(self) -> None:
        if self.model is None:
            raise DataError("this Detector is not trained: call fit() or Detector.load() first")

    def ready(self) -> None:
        """Trained, and the scoring modules imported and the scorer network built now (scipy,
        sklearn: ~1 s; folding or ONNX export) rather than at the first scored frame of a stream."""
        import sklearn.neighbors  # noqa: F401  (context and knn)

        from seqvad import scoring  # noqa: F401

        self.require_model()
        self.scorer.prepare(self.model)

    def predict_middle(self, cubes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The middle frame X of each ``uint8`` cube ``(N, 2T+1, C, S, S)`` and the model's
        bidirectional prediction X^ of it, both ``(N, C, S, S)`` on [-1, 1]."""
        import torch

        from seqvad.scoring.errors import to_unit_range
        from seqvad.tasks import backward_snippet, forward_snippet, target_frame

        self.require_model()
        x = to_unit_range(torch.from_numpy(np.asarray(cubes))).to(self.device)
        self.model.eval()
        with torch.inference_mode():
            prediction = self.model.predict(forward_snippet(x), backward_snippet(x)).cpu().numpy()
        return target_frame(x).cpu().numpy(), prediction

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """One file with the weights, config and fitted scorer (written atomically)."""
        self.require_model()
        return save_model_file(path, {
            "config": self.config, "state_dict": self.model.state_dict(), "scorer": self.scorer.state_dict(),
            "phase_info": self.phase_info, "channels": cube_geometry(self.config)["channels"]})

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> "Detector":
        """A model file written by :meth:`save` (read weights-only: loading runs no code from it),
        onto ``device`` (default: this machine's, whatever device trained it)."""
        from seqvad.devices import inference_device
        from seqvad.errors import ConfigError
        from seqvad.model import build_model

        device = inference_device(device)
        payload = read_model_file(path)
        try:
            detector = cls(stored_detector_settings(payload["config"]), device=device)
            geometry = cube_geometry(detector.config)
            model = build_model(detector.config["model"], channels=payload["channels"], window=geometry["window"],
                                size=geometry["size"])
        except (ConfigError, TypeError, ValueError, KeyError) as exc:
            raise DataError(f"{path}: its config does not describe a model ({type(exc).__name__}: {exc})") from None
        load_weights(model, payload["state_dict"], Path(path))
        detector.model = model.to(detector.device).eval()
        detector.phase_info = payload.get("phase_info") or {}
        if payload.get("scorer") is not None:
            detector.scorer = Scorer.from_state(payload["scorer"], device=detector.device)
        else:  # a file from before the scorer: its statistics, threshold and context model
            detector.stats, detector.threshold = payload.get("stats"), payload.get("threshold")
            if payload.get("context") is not None:
                from seqvad.context import ContextModel

                detector.context = ContextModel.from_state(payload["context"])
        return detector

    @classmethod
    def from_run(cls, run_dir: str | Path, phase: int | None = None, device: str | None = None) -> "Detector":
        """The model of a run folder (the last phase by default), its scorer fitted on its training cubes."""
        from seqvad.experiment import trained_run

        from seqvad.devices import inference_device

        config, path, train_store = trained_run(Path(run_dir), phase)
        detector = cls(config, device=inference_device(device))
        detector.model, _, detector.phase_info = load_model(path, map_location=detector.device)
        detector.model.to(detector.device).eval()
        detector._calibrate(train_store)
        return detector


# Detector settings added after model files were first written, with the value that matches how
# those files' training boxes were made (today's defaults would cut other boxes).
SETTINGS_BEFORE_THEY_EXISTED = {"yolox": {"carry": "copy", "gate": 0.0}, "motion": {"warmup_clean": 0}}


def stored_detector_settings(config):
    """A model file's config, its detector as it was when the model was trained: files written before
    ``detector.yolox.carry`` and ``gate`` existed copied keyframe boxes unchanged and had no gate, and
    before ``detector.motion.warmup_clean`` learnt the warm-up frames as they were."""
    if not isinstance(config, Mapping) or not isinstance(config.get("detector"), Mapping):
        return config
    detector = dict(config["detector"])
    for part, earlier in SETTINGS_BEFORE_THEY_EXISTED.items():
        if isinstance(detector.get(part), Mapping) and not earlier.keys() <= detector[part].keys():
            detector[part] = {**earlier, **detector[part]}
    return config if detector == config["detector"] else {**config, "detector": detector}
