"""The streaming scorer: frames in (``push``), scored frames out once their smoothed score is known.

It runs the stages of batch scoring (:meth:`seqvad.api.Detector.score`) one frame group at a
time: boxes, cubes (borders clamped exactly as the batch code clamps them), then the model's
:class:`seqvad.scoring.Scorer` for object scores and its streaming frame scores
(:class:`seqvad.scoring.StreamingFrames`), so streaming equals batch.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from seqvad.config import cube_geometry
from seqvad.objects.cutter import CubeCutter
from seqvad.objects.detectors import build_detector, seed_opencv_rng


@dataclass
class ScoredFrame:
    """One frame with everything detection found in it."""

    index: int
    frame: np.ndarray  # as decoded, (H, W, C) uint8
    boxes: np.ndarray  # (k, 6): x1, y1, x2, y2, detector score, class
    object_scores: np.ndarray  # (k,) score of each box (seqvad.scoring.Scorer.object_scores)
    raw: float  # max object score, 0 without objects
    score: float = 0.0  # median-filtered raw scores
    worst_cube: np.ndarray | None = None  # (2T+1, C, S, S) uint8 cube of the highest-scoring object
    time: float | None = None  # seconds since the first frame (the source's clock), set by the caller


@dataclass
class StageTimes:
    """Seconds spent in each stage (decode and write are measured by the caller)."""

    detect: float = 0.0
    crop: float = 0.0
    model: float = 0.0
    smooth: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in self.__dict__.items()}


def detection_group(box_detector, frames: int = 8) -> int:
    """Frames handed to the box detector (and then the model) at once: about ``frames``.

    YOLOX runs ``detector.yolox.batch`` frames per call, counted from the video's first frame,
    and batch scoring chunks a video the same way; a group that is a multiple of the detector's
    ``group_multiple`` keeps the calls aligned, so streaming finds the same boxes.  Motion and
    precomputed boxes do not depend on the grouping (``group_multiple`` 1).
    """
    multiple = max(1, int(getattr(box_detector, "group_multiple", 1)))
    return multiple * max(1, -(-frames // multiple))


class StreamScorer:
    """Frames in (``push``), scored frames out, each as soon as its smoothed score is known.

    ``model`` is a trained :class:`seqvad.api.Detector`; ``box_detector`` defaults to the one its
    config names.  Memory holds at most ``max(group, warm-up) + T + median_window // 2`` frames.

    The box detector learns from the first ``warmup_frames`` frames (the motion background) before
    detecting them, as ``detect_video`` does in batch scoring: those frames wait until the last of
    them has arrived, and no frame is read twice.
    """

    def __init__(self, model, box_detector=None, video_name: str | None = None):
        model.ready()  # trained, and its scoring modules imported now (scipy, sklearn: ~1 s), not mid-stream
        geometry = cube_geometry(model.config)
        self.model = model
        self.window, self.size, self.channels = geometry["window"], geometry["size"], geometry["channels"]
        self.frames = model.scorer.streaming_frames()  # max per frame and the median filter
        self.boxes = box_detector or build_detector(model.config["detector"], video_name=video_name)
        self.boxes.reset()
        seed_opencv_rng()  # as Detector.object_cubes does: KNN background subtraction is random
        self._warmup = max(0, int(self.boxes.warmup_frames))
        self._primed = self._warmup == 0
        self.group = detection_group(self.boxes)
        self.times = StageTimes()
        self._arrived = 0  # frames pushed
        self._detected = 0  # frames handed to the box detector
        self._to_detect: list[np.ndarray] = []
        self.cutter = CubeCutter(self.window, self.size, self.channels)  # the last 2T+1 frames
        self._waiting_cubes: deque[ScoredFrame] = deque()  # boxes known, frame t+T not yet arrived
        self._waiting_smooth: dict[int, ScoredFrame] = {}  # raw score known, smoothed not yet

    # -- public -----------------------------------------------------------------------------
    def push(self, frame: np.ndarray) -> list[ScoredFrame]:
        """Add the next frame; returns the frames whose smoothed score became known."""
        return [item for ready in self.cut(frame) for item in self.score(ready)]

    def finish(self) -> list[ScoredFrame]:
        """End of stream: score the frames still waiting, borders clamped as in batch scoring."""
        *groups, last = self.cut_rest()
        return [item for ready in groups for item in self.score(ready)] + self.score(last, self._arrived)

    @property
    def arrived(self) -> int:
        """Frames pushed so far."""
        return self._arrived

    def close(self) -> None:
        """Nothing to stop (the pipelined scorer stops its worker here)."""

    def undelivered(self) -> list[ScoredFrame]:
        """Frames scored but not yet returned: none here, every call returns what it scored."""
        return []

    # The two halves, which seqvad.stream.pipeline runs on two threads: ``cut`` (boxes and cubes)
    # and ``score`` (the network and the smoothing) share no state but the frames handed over.
    def cut(self, frame: np.ndarray) -> list[list]:
        """Add the next frame; returns a list per detection group of (frame, its cubes) ready to score."""
        self._to_detect.append(np.asarray(frame))
        self._arrived += 1
        if not self._primed:
            if self._arrived < self._warmup:
                return []
            self._prime()
        out = []
        while len(self._to_detect) >= self.group:
            out.append(self._detect_group(final_length=None))
        return out

    def cut_rest(self) -> list[list]:
        """End of stream: the remaining groups; the last one also holds every frame still waiting
        for its window, clamped at the end (pass it to ``score`` with ``final_length``)."""
        if not self._primed:  # a stream shorter than the warm-up learns from all of it, as batch does
            self._prime()
        out = []
        while len(self._to_detect) > self.group:  # warm-up frames still waiting: aligned groups first
            out.append(self._detect_group(final_length=None))
        return out + [self._detect_group(self._arrived) + self._drain_cubes(self._arrived)]

    def score(self, ready: list, final_length: int | None = None) -> list[ScoredFrame]:
        """Object and raw frame scores of ``ready``; returns the frames whose smoothed score became
        known (all of them when ``final_length``, the stream's length, ends the stream)."""
        self._score(ready)
        out: list[ScoredFrame] = []
        started = time.perf_counter()
        for item, _ in ready:
            self._waiting_smooth[item.index] = item
            out += self._smoothed(self.frames.push(item.index, item.raw))
        if final_length is not None:
            out += self._smoothed(self.frames.finish(final_length))
        self.times.smooth += time.perf_counter() - started
        return out

    def _prime(self) -> None:
        started = time.perf_counter()
        self.boxes.prime(self._to_detect[:self._warmup])
        self._primed = True
        self.times.detect += time.perf_counter() - started

    # -- stages -----------------------------------------------------------------------------
    def _smoothed(self, known: list[tuple[int, float]]) -> list[ScoredFrame]:
        out = []
        for index, score in known:
            item = self._waiting_smooth.pop(index)
            item.score = score
            out.append(item)
        return out

    def _detect_group(self, final_length: int | None) -> list[tuple[ScoredFrame, np.ndarray]]:
        """Boxes of the frames collected so far; returns the frames whose cubes could be cut."""
        # a group at a time (aligned YOLOX batches); at the end, what is left
        count = len(self._to_detect) if final_length is not None else self.group
        frames, self._to_detect = self._to_detect[:count], self._to_detect[count:]
        if not frames:
            return []
        started = time.perf_counter()
        boxes = self.boxes.detect(frames)
        self.times.detect += time.perf_counter() - started
        first, self._detected = self._detected, self._detected + len(frames)
        ready = []
        for offset, (frame, frame_boxes) in enumerate(zip(frames, boxes)):
            index = first + offset
            ready += self._add_frame(ScoredFrame(index, frame, np.asarray(frame_boxes, np.float32),
                                                 np.zeros(0), 0.0))
        return ready

    def _add_frame(self, item: ScoredFrame) -> list[tuple[ScoredFrame, np.ndarray]]:
        started = time.perf_counter()
        self._waiting_cubes.append(item)
        ready = self._matched(self.cutter.add(item.frame, item.boxes))
        self.times.crop += time.perf_counter() - started
        return ready

    def _drain_cubes(self, final_length: int) -> list[tuple[ScoredFrame, np.ndarray]]:
        started = time.perf_counter()
        ready = self._matched(self.cutter.finish())
        self.times.crop += time.perf_counter() - started
        return ready

    def _matched(self, cut: list[tuple[int, np.ndarray, np.ndarray]]) -> list[tuple[ScoredFrame, np.ndarray]]:
        """The waiting frames (in order) with the cubes the cutter gives back for them."""
        return [(self._waiting_cubes.popleft(), cubes) for _, _, cubes in cut]

    def _score(self, ready: list[tuple[ScoredFrame, np.ndarray]]) -> None:
        """Object scores of all ready frames in one model batch; raw frame score = their max."""
        counts = [len(cubes) for _, cubes in ready]
        if sum(counts):
            started = time.perf_counter()
            cubes = np.concatenate([c for _, c in ready if len(c)])
            boxes = np.concatenate([item.boxes for item, c in ready if len(c)])
            index = {key: boxes[:, column] for column, key in enumerate(("x1", "y1", "x2", "y2"))}
            scores = self.model.object_scores(cubes, index)
            self.times.model += time.perf_counter() - started
        else:
            scores = np.zeros(0)
        groups = np.split(scores, np.cumsum(counts)[:-1]) if ready else []
        for (item, frame_cubes), group, raw in zip(ready, groups, self.frames.raw(groups)):
            item.object_scores, item.raw = group, raw
            if len(group):
                item.worst_cube = frame_cubes[int(np.argmax(group))].copy()


def stream_scores(model, frames: Iterable[np.ndarray], box_detector=None,
                  video_name: str | None = None) -> Iterator[ScoredFrame]:
    """Score ``frames`` in order; yields each :class:`ScoredFrame` once its smoothed score is known."""
    scorer = StreamScorer(model, box_detector, video_name)
    for frame in frames:
        yield from scorer.push(frame)
    yield from scorer.finish()
