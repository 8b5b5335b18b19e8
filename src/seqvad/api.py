"""The public Python face: ``Detector(config).fit(videos)``, ``.score(video)``, ``.save()``, ``.load()``.

It is prepare + train + evaluate behind the scikit-learn habit of fit then score::

    from seqvad.api import Detector
    from seqvad.data.videos import Video

    detector = Detector("demo").fit(train_videos)          # trains the configured curriculum
    scores = detector.score(Video.open("new_clip.avi"))    # one anomaly score per frame
    detector.save("model.pt"); detector = Detector.load("model.pt")
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from seqvad.checkpoint import MODEL_FORMAT, MODEL_FORMAT_VERSION, load_model, read_model_file, save_model_file
from seqvad.config import cube_geometry, section
from seqvad.errors import DataError

__all__ = ["Detector", "MODEL_FORMAT", "MODEL_FORMAT_VERSION"]


class Detector:
    """A trained seqvad model with its config, error statistics and alarm threshold."""

    def __init__(self, config: str | Path | Mapping | None = "demo", device: str | None = None):
        from seqvad.config import load_config

        self.config = load_config(config)
        self.device = device or self.config["train"].get("device", "cpu")
        self.model = None
        self.stats: dict | None = None  # median / IQR of training object errors
        self.context = None  # seqvad.context.ContextModel when scoring.context is enabled
        self.threshold: float | None = None  # a high quantile of training frame scores
        self.phase_info: dict = {}

    # -- training -------------------------------------------------------------------------------
    def fit(self, videos: Sequence, run_dir: str | Path | None = None, progress: bool = True,
            workers: int | None = None) -> "Detector":
        """Prepare cubes of ``videos`` (normal footage), train the schedule, set the threshold."""
        from seqvad import pipeline

        if not videos:
            raise DataError("fit: no training videos given")
        keep = run_dir is not None
        run_dir = Path(run_dir) if keep else Path(tempfile.mkdtemp(prefix="seqvad-fit-"))
        try:
            pipeline.prepare(self.config, run_dir, {"train": videos}, workers=workers, progress=progress)
            pipeline.train(self.config, run_dir, resume=False, progress=progress)
            last = pipeline.phase_checkpoints(run_dir)[-1]
            self.model, _, self.phase_info = load_model(last, map_location=self.device)
            self.model.to(self.device).eval()
            self._calibrate(pipeline.load_store(run_dir, "train"))
        finally:
            if not keep:
                import shutil

                shutil.rmtree(run_dir, ignore_errors=True)
        return self

    def _calibrate(self, train_store, quantile: float | None = None) -> None:
        """Error statistics and the default alarm threshold, from the training cubes only."""
        from seqvad import pipeline

        self.stats = pipeline.error_stats(self.model, train_store, self.config, self.device)
        self.context = pipeline.fit_context(train_store, self.config)
        context_scores = None if self.context is None else \
            self.context.score(pipeline.context_features(train_store))
        raw, smoothed, _ = pipeline.score_store(self.model, train_store, self.config, self.device,
                                                self._scoring_stats(), context_scores)
        q = quantile if quantile is not None else float(self.config["scoring"].get("threshold_quantile", 0.99))
        joined = np.concatenate(smoothed) if smoothed else np.zeros(1)
        self.threshold = float(np.quantile(joined, q))

    # -- scoring --------------------------------------------------------------------------------
    def object_cubes(self, video):
        """Boxes and 9-frame cubes of one video, with this detector's config."""
        from seqvad.objects.cubes import extract_cubes
        from seqvad.objects.detectors import build_detector, seed_opencv_rng

        detector = build_detector(self.config["detector"], video_name=video.name)
        seed_opencv_rng()
        boxes = detector.detect_video(video)
        return extract_cubes(video, boxes, **cube_geometry(self.config))

    def score(self, video, smoothed: bool = True) -> np.ndarray:
        """One anomaly score per frame of ``video`` (higher = more anomalous)."""
        from seqvad import scoring

        self.require_model()
        cubes, index = self.object_cubes(video)
        scores = self.object_scores(cubes, index)
        raw = scoring.frame_scores(scores, np.zeros(len(scores), np.int64), np.asarray(index["frame"]),
                                   [len(video)])
        if not smoothed:
            return raw[0]
        return scoring.smooth(raw, int(section(self.config, "scoring")["median_window"]))[0]

    def object_scores(self, cubes: np.ndarray, index) -> np.ndarray:
        """Anomaly score of each object (``index`` holds its box: x1, y1, x2, y2)."""
        from seqvad import pipeline

        self.require_model()
        return pipeline.object_scores(self.model, cubes, index, self.config, self.device,
                                      self._scoring_stats(), self.context)

    def _scoring_stats(self) -> dict | None:
        """Normalise object errors only when the config asks or adds context scores (as
        ``seqvad evaluate`` does)."""
        from seqvad import pipeline

        return self.stats if pipeline.needs_stats(self.config) else None

    def require_model(self) -> None:
        if self.model is None:
            raise DataError("this Detector is not trained: call fit() or Detector.load() first")

    def ready(self) -> None:
        """Trained, and the scoring modules imported now (scipy, sklearn: ~1 s) rather than at the
        first scored frame of a stream."""
        from seqvad import pipeline, scoring  # noqa: F401

        self.require_model()

    def predict_middle(self, cubes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The middle frame X of each ``uint8`` cube ``(N, 2T+1, C, S, S)`` and the model's
        bidirectional prediction X^ of it, both ``(N, C, S, S)`` on [-1, 1]."""
        import torch

        from seqvad.tasks import backward_snippet, forward_snippet, target_frame

        self.require_model()
        x = torch.from_numpy(np.asarray(cubes)).float().div_(127.5).sub_(1.0).to(self.device)
        self.model.eval()
        with torch.inference_mode():
            prediction = self.model.predict(forward_snippet(x), backward_snippet(x)).cpu().numpy()
        return target_frame(x).cpu().numpy(), prediction

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """One file with the weights, config, statistics and threshold (written atomically)."""
        self.require_model()
        return save_model_file(path, {
            "config": self.config, "state_dict": self.model.state_dict(), "stats": self.stats,
            "threshold": self.threshold, "phase_info": self.phase_info,
            "context": None if self.context is None else self.context.state_dict(),
            "channels": cube_geometry(self.config)["channels"]})

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> "Detector":
        """A model file written by :meth:`save` (read weights-only: loading runs no code from it)."""
        from seqvad.model import build_model

        payload = read_model_file(path)
        detector = cls(payload["config"], device=device)
        geometry = cube_geometry(detector.config)
        model = build_model(detector.config["model"], channels=payload["channels"], window=geometry["window"],
                            size=geometry["size"])
        model.load_state_dict(payload["state_dict"])
        detector.model = model.to(detector.device).eval()
        detector.stats, detector.threshold = payload.get("stats"), payload.get("threshold")
        detector.phase_info = payload.get("phase_info") or {}
        if payload.get("context") is not None:
            from seqvad.context import ContextModel

            detector.context = ContextModel.from_state(payload["context"])
        return detector

    @classmethod
    def from_run(cls, run_dir: str | Path, phase: int | None = None, device: str | None = None) -> "Detector":
        """The model of a run folder (the last phase by default), calibrated on its training cubes."""
        from seqvad import pipeline

        run_dir = Path(run_dir)
        detector = cls(pipeline.read_run_config(run_dir), device=device)
        checkpoints = pipeline.phase_checkpoints(run_dir)
        path = checkpoints[-1] if phase is None else run_dir / "checkpoints" / f"phase{phase}.pt"
        detector.model, _, detector.phase_info = load_model(path, map_location=detector.device)
        detector.model.to(detector.device).eval()
        detector._calibrate(pipeline.load_store(run_dir, "train"))
        return detector
