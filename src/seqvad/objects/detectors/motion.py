"""Moving blobs: OpenCV background subtraction (MOG2 / KNN) or frame differencing."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from seqvad.errors import ConfigError
from seqvad.objects.detectors.base import Detector, register
from seqvad.objects.detectors.boxes import finalize_boxes


# The warm-up frames are spread over the first WARMUP_SPAN x warmup frames. Ped2 training split,
# recall of the reference boxes at IoU 0.3 (knn/200, warm-up 20): 0.573 for the first 20 frames,
# 0.620 / 0.633 / 0.637 spread over the first 40 / 60 / 100, 0.637 spread over the whole video (the
# warm-up before videos were read once). Recall alone missed the cost of a short span: people who
# stand or walk slowly through the span are learnt as background and leave ghost and fragment
# boxes. yolox+motion boxes of the first 60 frames of the 16 training videos matching no reference
# box (IoU < 0.3): 1279 with a span of 60 frames (3), 1160 with 100 (5), 1139 over the whole video;
# small ones (< 150 px2): 622 / 435 / 381; more with 60 than with the whole video in 14 of the 16
# videos; yolox+motion recall unchanged (0.925 / 0.925 / 0.924). results/ped2/cube_drift.json.
# 5 (100 frames, 4 s at 25 frames/s held at the start); a video up to that long warms up exactly as
# before.
WARMUP_SPAN = 5


@register
class MotionDetector(Detector):
    """Moving blobs: background subtraction, morphology, connected components.

    ``method``: ``mog2`` (``var_threshold`` = MOG2's squared Mahalanobis threshold),
    ``knn`` (``var_threshold`` = KNN's squared-distance threshold) or ``diff`` (absolute
    difference to the previous frame above ``var_threshold`` grey levels).

    Warm-up: a freshly reset background model knows nothing, so the first frames of
    a video come out as mostly background (MOG2 takes frame 0 as the background), and an
    object that stands or moves in the frames it learns from is partly learnt as background.
    With ``warmup = N > 0`` the model learns N frames spread evenly over the video's first
    ``WARMUP_SPAN x N`` frames (:meth:`prime`, called by ``detect_video`` and by the streaming
    scorer once those frames have arrived), then detection starts at frame 0: the video is read
    once, in order, with no seek across it.
    """

    name = "motion"
    chunk = 32

    @classmethod
    def from_config(cls, detector_cfg, video_name=None, boxes=None, threads=None) -> "MotionDetector":
        return build_motion(detector_cfg.get("motion", {}))

    @classmethod
    def cache_fields(cls, detector_cfg, boxes_file=None) -> dict:
        # the warm-up's frames are part of what the boxes depend on: a cache made with the earlier
        # whole-video warm-up must not pass for one made by this code
        return {"motion": detector_cfg.get("motion"), "warmup_span": WARMUP_SPAN}

    @property
    def warmup_frames(self) -> int:
        # differencing keeps no background model: nothing to learn before frame 0
        return WARMUP_SPAN * self.warmup if self.method != "diff" else 0

    # Defaults measured on the Ped2 training split (recall of ped2_bboxes_train.npy at IoU 0.3,
    # all 2550 frames): mog2/16 0.526 (warm-up 0) 0.536 (20); knn/400 0.571 (0) 0.624 (20);
    # knn/200 0.636 (20), 0.647 (40); diff/15 0.455; an opening kernel of 5 drops to 0.43. (Measured
    # with warm-up frames spread over the whole video, before WARMUP_SPAN.)
    def __init__(self, method: str = "knn", history: int = 200, var_threshold: float = 200.0,
                 min_area: float = 40.0, kernel: int = 3, warmup: int = 20, close_kernel: int | None = None,
                 warmup_clean: float = 0.0):
        if method not in ("mog2", "knn", "diff"):
            raise ConfigError(f"detector.motion.method: {method!r} is not one of mog2, knn, diff")
        if not float(warmup_clean) >= 0:
            raise ConfigError(f"detector.motion.warmup_clean: {warmup_clean!r} must be >= 0 grey levels (0: off)")
        self.method, self.history, self.var_threshold = method, int(history), float(var_threshold)
        self.min_area, self.warmup, self.warmup_clean = float(min_area), int(warmup), float(warmup_clean)
        k = max(1, int(kernel))
        self.open_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        # closing with a taller kernel joins a walker's head, torso and legs into one blob
        ck = int(close_kernel) if close_kernel else 2 * k + 1
        self.close_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (ck, 2 * ck + 1))
        self.reset()

    def reset(self) -> None:
        # KNN/MOG2 draw from OpenCV's global RNG: reseed so that a video's boxes do not depend
        # on what ran before in this process (worker or not). Seed 0 = a fresh process's state.
        cv2.setRNGSeed(0)
        self._previous: np.ndarray | None = None
        self._seen = 0  # frames the background model has learned
        if self.method == "mog2":
            self.model = cv2.createBackgroundSubtractorMOG2(self.history, self.var_threshold, False)
        elif self.method == "knn":
            self.model = cv2.createBackgroundSubtractorKNN(self.history, self.var_threshold, False)
        else:
            self.model = None

    @staticmethod
    def _gray(frame: np.ndarray) -> np.ndarray:
        gray = frame[:, :, 0] if frame.ndim == 3 and frame.shape[2] == 1 else (
            cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame)
        return cv2.GaussianBlur(gray, (3, 3), 0)  # sensor noise would otherwise speckle the mask

    def prime(self, frames: Sequence[np.ndarray]) -> None:
        """Teach the background model ``warmup`` frames spread evenly over ``frames`` (a video's
        first ones), without detecting anything."""
        if self.model is None or not len(frames) or self.warmup <= 0:
            return
        picks = np.unique(np.linspace(0, len(frames) - 1, min(self.warmup, len(frames))).round().astype(int))
        grays = [self._gray(frames[int(i)]) for i in picks]
        if self.warmup_clean > 0:
            grays = clean_of_passers_by(grays, self.warmup_clean)
        for gray in grays:
            self.model.apply(gray)
            self._seen += 1

    def _foreground(self, gray: np.ndarray) -> np.ndarray:
        if self.model is not None:
            mask = self.model.apply(gray)
            self._seen += 1
            # a model's first frame comes out all foreground: nothing is known to move yet
            return mask if self._seen > 1 else np.zeros_like(mask)
        previous = gray if self._previous is None else self._previous
        self._previous = gray
        return ((cv2.absdiff(gray, previous) > self.var_threshold) * 255).astype(np.uint8)

    def detect(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self.detect_masks(frames)[0]

    def detect_masks(self, frames: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The boxes of every frame and its foreground mask (boolean, after the morphology)."""
        out, masks = [], []
        for frame in frames:
            mask = self._foreground(self._gray(frame))
            mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self.open_kernel)
            mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self.close_kernel)
            count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            stats = stats[1:]  # component 0 is the background
            xyxy = np.hstack([stats[:, :2], stats[:, :2] + stats[:, 2:4]]).astype(np.float32)
            out.append(finalize_boxes(xyxy, frame.shape[0], frame.shape[1], self.min_area))
            masks.append(mask > 0)
        return out, masks


def clean_of_passers_by(grays: Sequence[np.ndarray], grey_levels: float) -> list[np.ndarray]:
    """The warm-up frames with what passes through them painted over by the background.

    A person standing or walking slowly through the warm-up would be learnt as background and leave
    a ghost (and fragment boxes) where they stood, for as long as the model remembers (KNN's history
    outlasts a Ped2 video). The per-pixel median of the frames is the scene without whatever covers
    a pixel in fewer than half of them; pixels further than ``grey_levels`` from it (dilated by 2 px,
    an object's blurred rim) take the median's value, the rest keep their own noise, which the
    model needs to learn.
    """
    stack = np.stack(grays)
    median = np.median(stack, axis=0).astype(stack.dtype)
    rim = np.ones((5, 5), np.uint8)
    out = []
    for gray in stack:
        passing = cv2.dilate((cv2.absdiff(gray, median) > grey_levels).astype(np.uint8), rim) > 0
        out.append(np.where(passing, median, gray))
    return out


def build_motion(cfg: Mapping[str, Any]) -> MotionDetector:
    known = ("method", "history", "var_threshold", "min_area", "kernel", "warmup", "close_kernel", "warmup_clean")
    return MotionDetector(**{k: v for k, v in cfg.items() if k in known})
