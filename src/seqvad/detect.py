"""Streaming detection: ``seqvad detect MODEL INPUT [--out DIR]``.

Frames flow through the same stages as batch scoring (:meth:`seqvad.api.Detector.score`), one
frame at a time and in bounded memory::

    source -> boxes (model's detector) -> 9-frame cubes -> prediction error -> frame score -> median
    decode    groups of ``group`` frames   ring buffer of      object errors     max per frame  filter
                                           2T+1 frames

Latencies: the cubes of frame t need frame t+T (T = 4), and the median filter (window 17) needs
the raw scores of t+8, so frame t's smoothed score is known once frame t+12 (plus the open
detection group) has arrived.  At the end of the stream the last frames are finished with the
borders clamped exactly as the batch code does (``extract_cubes`` repeats the last frame,
``median_filter(mode='nearest')`` repeats the last score), so streaming equals batch.  Memory:
at most ``group + T + 8`` frames are held, plus 16 bytes per frame for the report's timeline.

The motion detector's warm-up (``detector.motion.warmup`` frames spread over the whole video)
reads ahead in files and folders exactly as batch scoring does; a camera or stream cannot be read
ahead, so there the background model learns from the first frames instead.

Outputs (``OUT/``): ``annotated.mp4`` (or ``.avi``), ``scores.csv``, ``objects.csv`` and
``report.html``.  Rows are flushed as whole lines every ``flush_every`` frames and the video
writer is released in a ``finally`` block, so a stream that stops half-way leaves valid files.

Python use::

    from seqvad.api import Detector
    from seqvad.detect import open_source, stream_scores

    model = Detector.load("RUN/model.pt")
    source = open_source("new_video.mp4")
    for result in stream_scores(model, source.frames, warmup_video=source.video):
        print(result.index, result.raw, result.score)
"""

from __future__ import annotations

import array
import csv
import logging
import re
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np

from seqvad.errors import ConfigError, DataError

log = logging.getLogger(__name__)

DEFAULT_FPS = 25.0  # for frame folders and cameras that do not report a rate
STRIP_HEIGHT = 48  # pixels of the running score timeline under each annotated frame


# ----------------------------------------------------------------------------------------------
# Sources
# ----------------------------------------------------------------------------------------------

@dataclass
class Source:
    """Frames of one input, read in order.

    ``length`` is ``None`` for live sources; ``video`` is a random-access
    :class:`~seqvad.data.videos.Video` of files and folders (the motion detector's warm-up
    reads frames spread over the whole video, as batch scoring does), built on first use.
    """

    name: str
    frames: Iterator[np.ndarray]
    fps: float | None = None
    length: int | None = None
    claimed_length: int | None = None  # what a video container says it holds
    open_video: Callable[[], object] | None = None
    close: Callable[[], None] = lambda: None

    @property
    def video(self):
        return self.open_video() if self.open_video is not None else None


def open_source(spec: str | Path) -> Source:
    """A video file, a frame folder, a camera index (``0``) or a stream URL (``rtsp://...``)."""
    from seqvad.data.videos import Video

    text = str(spec)
    path = Path(text)
    if path.is_dir():
        video = Video.from_folder(path)  # DataError when it holds no images
        return Source(path.name, (video.frame(i) for i in range(len(video))), video.fps, len(video),
                      open_video=lambda: video)
    if path.is_file():
        capture = _open_capture(text, f"{path}: OpenCV cannot open this video file")
        return _capture_source(capture, path.stem, text, lambda: Video.from_file(path))
    if text.isdigit():
        capture = _open_capture(int(text), f"camera {text}: cannot be opened (no such device, or busy)")
        return _capture_source(capture, f"camera{text}", f"camera {text}", None)
    if "://" in text:
        capture = _open_capture(text, f"{text}: the stream cannot be opened")
        return _capture_source(capture, _safe_name(text), text, None)
    raise DataError(f"{text}: no such video file, frame folder, camera index or stream URL")


def _open_capture(target, message: str) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(target)
    if not capture.isOpened():
        capture.release()
        raise DataError(message)
    return capture


def _capture_source(capture: cv2.VideoCapture, name: str, label: str, open_video) -> Source:
    """Read one frame up front, so that an input with no decodable frame fails before any output."""
    ok, first = capture.read()
    if not ok or first is None:
        capture.release()
        raise DataError(f"{label}: no frame can be decoded (unreadable, empty or truncated)")
    fps = capture.get(cv2.CAP_PROP_FPS) or None
    claimed = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if open_video is not None else 0

    def frames() -> Iterator[np.ndarray]:
        frame = first
        while frame is not None:
            yield frame if frame.ndim == 3 else frame[:, :, None]
            ok, frame = capture.read()
            if not ok:
                frame = None

    return Source(name, frames(), fps, None, claimed or None, open_video=open_video, close=capture.release)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.split("://", 1)[-1]).strip("_")[:60] or "stream"


class GuardedFrames:
    """Frames of a source that stop, instead of raising, when the source breaks or a stop is asked.

    Frames that arrived before the failure are still scored and written; ``error`` keeps the
    reason so the caller can report it after the outputs are complete.
    """

    def __init__(self, frames: Iterable[np.ndarray], max_frames: int | None = None):
        self._frames = iter(frames)
        self.max_frames = max_frames
        self.count = 0
        self.error: BaseException | None = None
        self.stop_requested = False
        self.decode_seconds = 0.0

    def __iter__(self) -> Iterator[np.ndarray]:
        while not self.stop_requested and (self.max_frames is None or self.count < self.max_frames):
            started = time.perf_counter()
            try:
                frame = next(self._frames)
            except StopIteration:
                return
            except Exception as exc:  # any failure of the source ends the stream, not the run
                self.error = exc
                return
            finally:
                self.decode_seconds += time.perf_counter() - started
            self.count += 1
            yield frame


# ----------------------------------------------------------------------------------------------
# Streaming scorer
# ----------------------------------------------------------------------------------------------

@dataclass
class ScoredFrame:
    """One frame with everything detection found in it."""

    index: int
    frame: np.ndarray  # as decoded, (H, W, C) uint8
    boxes: np.ndarray  # (k, 6): x1, y1, x2, y2, detector score, class
    object_scores: np.ndarray  # (k,) prediction error of each box (normalised when the config says so)
    raw: float  # max object score, 0 without objects
    score: float = 0.0  # median-filtered raw scores
    worst_cube: np.ndarray | None = None  # (2T+1, C, S, S) uint8 cube of the highest-scoring object


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


def prime_detector(box_detector, video) -> None:
    """Reset, then warm up (the motion model) as ``detect_video`` does (files and folders only)."""
    from seqvad.api import seed_opencv_rng

    box_detector.reset()
    seed_opencv_rng()  # as Detector.object_cubes does: KNN background subtraction is random
    if video is not None and getattr(box_detector, "warms_up", False):
        box_detector.warm_up(video)


class StreamScorer:
    """Frames in (``push``), scored frames out, each as soon as its smoothed score is known.

    ``model`` is a trained :class:`seqvad.api.Detector`; ``box_detector`` defaults to the one its
    config names.  Memory holds at most ``group + T + median_window // 2`` frames.
    """

    def __init__(self, model, box_detector=None, warmup_video=None, video_name: str | None = None):
        from seqvad import pipeline, scoring  # noqa: F401  imported here (scipy, sklearn: ~1 s), not mid-stream
        from seqvad.objects.detectors import build_detector

        model._require_model()
        cube_cfg, scoring_cfg = model.config["cubes"], model.config["scoring"]
        self.model = model
        self.window = int(cube_cfg.get("window", 4))
        self.size, self.channels = int(cube_cfg.get("size", 32)), int(cube_cfg.get("channels", 1))
        median_window = int(scoring_cfg.get("median_window", 17))
        if median_window > 1 and median_window % 2 == 0:
            raise ConfigError(f"scoring.median_window={median_window}: the median window must be odd")
        self.half = max(median_window, 1) // 2
        self.boxes = box_detector or build_detector(model.config["detector"], video_name=video_name)
        prime_detector(self.boxes, warmup_video)
        self.group = detection_group(self.boxes)
        self.times = StageTimes()
        self._arrived = 0  # frames pushed
        self._to_detect: list[np.ndarray] = []
        self._converted: dict[int, np.ndarray] = {}  # ring buffer: the last 2T+1 frames for cropping
        self._waiting_cubes: deque[ScoredFrame] = deque()  # boxes known, frame t+T not yet arrived
        self._raw: dict[int, float] = {}  # the last median_window raw scores
        self._empty_score = 0.0  # raw score of a frame without objects
        self._waiting_smooth: deque[ScoredFrame] = deque()

    # -- public -----------------------------------------------------------------------------
    def push(self, frame: np.ndarray) -> list[ScoredFrame]:
        """Add the next frame; returns the frames whose smoothed score became known."""
        self._to_detect.append(np.asarray(frame))
        self._arrived += 1
        if len(self._to_detect) < self.group:
            return []
        return self._process_group(final_length=None)

    def finish(self) -> list[ScoredFrame]:
        """End of stream: score the frames still waiting, borders clamped as in batch scoring."""
        return self._process_group(final_length=self._arrived)

    # -- stages -----------------------------------------------------------------------------
    def _process_group(self, final_length: int | None) -> list[ScoredFrame]:
        ready = self._detect_group()
        ready += self._drain_cubes(final_length) if final_length is not None else []
        self._score(ready)
        out: list[ScoredFrame] = []
        started = time.perf_counter()
        for item, _ in ready:
            self._raw[item.index] = item.raw
            self._waiting_smooth.append(item)
            out += self._emit_smoothed(last_known=item.index, final_length=None)
        if final_length is not None:
            out += self._emit_smoothed(last_known=final_length - 1, final_length=final_length)
        self.times.smooth += time.perf_counter() - started
        return out

    def _detect_group(self) -> list[tuple[ScoredFrame, np.ndarray]]:
        """Boxes of the frames collected so far; returns the frames whose cubes could be cut."""
        frames, self._to_detect = self._to_detect, []
        if not frames:
            return []
        started = time.perf_counter()
        boxes = self.boxes.detect(frames)
        self.times.detect += time.perf_counter() - started
        first = self._arrived - len(frames)
        ready = []
        for offset, (frame, frame_boxes) in enumerate(zip(frames, boxes)):
            index = first + offset
            ready += self._add_frame(ScoredFrame(index, frame, np.asarray(frame_boxes, np.float32),
                                                 np.zeros(0), 0.0))
        return ready

    def _add_frame(self, item: ScoredFrame) -> list[tuple[ScoredFrame, np.ndarray]]:
        from seqvad.objects.cubes import convert_channels

        started = time.perf_counter()
        self._converted[item.index] = convert_channels(item.frame, self.channels)
        self._converted.pop(item.index - 2 * self.window - 1, None)  # out of every future window
        self._waiting_cubes.append(item)
        ready = []
        # frame t's window t-T..t+T is complete once frame t+T has arrived
        while self._waiting_cubes and self._waiting_cubes[0].index + self.window <= item.index:
            ready.append(self._cut(self._waiting_cubes.popleft(), last=item.index))
        self.times.crop += time.perf_counter() - started
        return ready

    def _drain_cubes(self, final_length: int) -> list[tuple[ScoredFrame, np.ndarray]]:
        started = time.perf_counter()
        ready = [self._cut(item, last=final_length - 1) for item in self._waiting_cubes]
        self._waiting_cubes.clear()
        self.times.crop += time.perf_counter() - started
        return ready

    def _cut(self, item: ScoredFrame, last: int) -> tuple[ScoredFrame, np.ndarray]:
        """The cubes of one frame, via ``extract_cubes`` on its 2T+1-frame window.

        The window's indices are clamped to ``[0, last]`` here, so ``extract_cubes`` sees a
        short video whose middle frame holds the boxes: the same crops as in batch scoring.
        """
        from seqvad.objects.cubes import extract_cubes, window_indices

        T = self.window
        if len(item.boxes) == 0:
            return item, np.zeros((0, 2 * T + 1, self.channels, self.size, self.size), np.uint8)
        # window_indices clamps to [0, last] like batch extraction does at the video's borders
        frames = [self._converted[i] for i in window_indices(item.index, T, last + 1).tolist()]
        empty = np.zeros((0, 6), np.float32)
        boxes = [empty] * T + [item.boxes] + [empty] * T
        cubes, _ = extract_cubes(frames, boxes, window=T, size=self.size, channels=self.channels)
        return item, cubes

    def _score(self, ready: list[tuple[ScoredFrame, np.ndarray]]) -> None:
        """Object errors of all ready frames in one model batch; raw frame score = their max."""
        counts = [len(cubes) for _, cubes in ready]
        if sum(counts):
            started = time.perf_counter()
            cubes = np.concatenate([c for _, c in ready if len(c)])
            boxes = np.concatenate([item.boxes for item, c in ready if len(c)])
            index = {key: boxes[:, column] for column, key in enumerate(("x1", "y1", "x2", "y2"))}
            errors = self.model.object_scores(cubes, index)
            self.times.model += time.perf_counter() - started
        else:
            errors = np.zeros(0)
        # frames without objects get min(0, lowest object error): scoring.frame_scores takes the
        # lowest of the whole video, which a stream cannot know yet, so the lowest so far stands
        # in. Equal for errors >= 0 (mse, the default); minus PSNR is negative.
        if len(errors):
            self._empty_score = min(self._empty_score, float(errors.min()))
        start = 0
        for (item, frame_cubes), count in zip(ready, counts):
            item.object_scores = errors[start:start + count]
            item.raw = self._empty_score
            if count:
                worst = int(np.argmax(item.object_scores))
                item.raw = float(item.object_scores[worst])
                item.worst_cube = frame_cubes[worst].copy()
            start += count

    def _emit_smoothed(self, last_known: int, final_length: int | None) -> list[ScoredFrame]:
        """Median of raw scores t-h..t+h for each waiting frame t whose window is known.

        Indices are clamped to ``[0, N-1]``: scipy's ``median_filter(mode='nearest')``
        repeats the edge scores the same way.
        """
        out = []
        while self._waiting_smooth:
            t = self._waiting_smooth[0].index
            if final_length is None and t + self.half > last_known:
                break
            top = last_known if final_length is None else final_length - 1
            values = [self._raw[min(max(i, 0), top)] for i in range(t - self.half, t + self.half + 1)]
            item = self._waiting_smooth.popleft()
            item.score = float(np.median(values))
            out.append(item)
            self._raw.pop(t - self.half, None)  # no later window reaches back this far
        return out


def stream_scores(model, frames: Iterable[np.ndarray], box_detector=None, warmup_video=None,
                  video_name: str | None = None) -> Iterator[ScoredFrame]:
    """Score ``frames`` in order; yields each :class:`ScoredFrame` once its smoothed score is known."""
    scorer = StreamScorer(model, box_detector, warmup_video, video_name)
    for frame in frames:
        yield from scorer.push(frame)
    yield from scorer.finish()


# ----------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------

class CsvLog:
    """A CSV file written in whole rows: rows are buffered and written and flushed together."""

    def __init__(self, path: Path, header: Sequence[str]):
        self.path = path
        self._handle = open(path, "w", newline="")
        self._writer = csv.writer(self._handle)
        self._writer.writerow(header)
        self._handle.flush()
        self._rows: list[list] = []

    def add(self, row: list) -> None:
        self._rows.append(row)

    def flush(self) -> None:
        if self._rows:
            self._writer.writerows(self._rows)
            self._rows = []
        self._handle.flush()

    def close(self) -> None:
        if not self._handle.closed:
            self.flush()
            self._handle.close()


def _num(value: float) -> str:
    return f"{float(value):.9g}"


def score_colour(score: float, threshold: float | None) -> tuple[int, int, int]:
    """BGR colour of a box: red over the threshold, yellow above half of it, green below."""
    if threshold is None:
        return (0, 200, 0)
    if score > threshold:
        return (0, 0, 255)
    if threshold > 0 and score >= 0.5 * threshold:
        return (0, 215, 255)
    return (0, 200, 0)


class Annotator:
    """Draws boxes, the alarm border and a running score timeline strip under each frame."""

    def __init__(self, threshold: float | None):
        self.threshold = threshold
        self._strip: np.ndarray | None = None
        self._lowest, self._highest = 0.0, 0.0  # scores seen, for a strip without a positive threshold

    def draw(self, item: ScoredFrame, alarm: bool) -> np.ndarray:
        frame = item.frame
        image = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.shape[2] == 1 else frame.copy()
        for box, score in zip(item.boxes, item.object_scores):
            x1, y1, x2, y2 = (int(round(float(v))) for v in box[:4])
            cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), score_colour(float(score), self.threshold), 1)
        if alarm:
            cv2.rectangle(image, (0, 0), (image.shape[1] - 1, image.shape[0] - 1), (0, 0, 255), 4)
        return np.vstack([image, self._advance_strip(item, alarm, image.shape[1])])

    def _range(self, score: float) -> tuple[float, float]:
        """Score range of the strip: 0 to twice a positive threshold (a steady scale with the
        threshold at mid-height), else the range of the scores seen so far (minus PSNR is negative)."""
        self._lowest, self._highest = min(self._lowest, score), max(self._highest, score)
        if self.threshold is not None and self.threshold > 0:
            return 0.0, 2 * self.threshold
        extra = [] if self.threshold is None else [self.threshold]
        low, high = min([self._lowest, *extra]), max([self._highest, *extra])
        return low, max(high, low + 1e-12)

    def _advance_strip(self, item: ScoredFrame, alarm: bool, width: int) -> np.ndarray:
        """Shift the timeline one pixel left and draw this frame's score as the newest column."""
        h, room = STRIP_HEIGHT, STRIP_HEIGHT - 14  # 14 pixels on top for the text
        if self._strip is None:
            self._strip = np.full((h, width, 3), 32, np.uint8)
        self._strip[:, :-1] = self._strip[:, 1:]
        self._strip[:, -1] = 32
        low, high = self._range(item.score)

        def height_of(value: float) -> int:
            return int(round(float(np.clip((value - low) / (high - low), 0.0, 1.0)) * room))

        column = height_of(item.score)
        if column:
            self._strip[h - column:, -1] = (60, 60, 230) if alarm else (80, 190, 80)
        out = self._strip.copy()
        if self.threshold is not None:  # dotted line
            out[min(h - height_of(self.threshold), h - 1), ::4] = (0, 0, 255)
        cv2.putText(out, f"frame {item.index}  score {item.score:.4g}", (4, 11), cv2.FONT_HERSHEY_SIMPLEX,
                    0.35, (230, 230, 230), 1, cv2.LINE_AA)
        return out


class VideoOut:
    """``annotated.mp4`` (mp4v) or, where that codec is missing, ``annotated.avi`` (MJPG)."""

    def __init__(self, out_dir: Path, fps: float):
        self.out_dir, self.fps = out_dir, fps
        self.writer: cv2.VideoWriter | None = None
        self.path: Path | None = None

    def write(self, image: np.ndarray) -> None:
        if self.writer is None:
            self._open(image.shape[1], image.shape[0])
        self.writer.write(image)

    def _open(self, width: int, height: int) -> None:
        for name, codec in (("annotated.mp4", "mp4v"), ("annotated.avi", "MJPG")):
            writer = cv2.VideoWriter(str(self.out_dir / name), cv2.VideoWriter_fourcc(*codec), self.fps,
                                     (width, height))
            if writer.isOpened():
                self.writer, self.path = writer, self.out_dir / name
                return
            writer.release()
            (self.out_dir / name).unlink(missing_ok=True)
        raise DataError(f"{self.out_dir}: OpenCV can write neither mp4v .mp4 nor MJPG .avi video here")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


@dataclass(eq=False)  # compared by identity: fields hold arrays
class Moment:
    """A candidate for the report's top anomalous moments."""

    index: int
    score: float
    thumbnail: np.ndarray  # annotated frame, BGR
    box: np.ndarray | None = None  # the worst object's box
    cube: np.ndarray | None = None  # its cube, for the prediction-difference map


class MomentKeeper:
    """The ``k`` highest smoothed scores at least ``gap`` frames apart, chosen while streaming.

    The stream is cut into bins of ``gap`` frames and each bin's best frame is kept (with its
    thumbnail and worst cube); at most ``pool`` bins survive, the lowest-scoring are dropped.
    :attr:`moments` then picks greedily from them: the best, then the best at least ``gap``
    frames from those picked, and so on.  A score that rises for seconds thus gives one moment
    per second of the rise rather than one, and memory stays at ``pool`` thumbnails.
    """

    def __init__(self, k: int, gap: int, thumbnail_width: int = 480, pool: int | None = None):
        self.k, self.gap, self.thumbnail_width = k, max(1, gap), thumbnail_width
        self.pool_size = pool or 4 * k
        self._pool: list[Moment] = []
        self._current: Moment | None = None  # best frame of the open bin

    def offer(self, item: ScoredFrame, annotated: np.ndarray) -> None:
        if self.k <= 0 or len(item.object_scores) == 0:
            return  # a moment shows its worst object's difference map: frames without objects have none
        if self._current is not None and self._current.index // self.gap != item.index // self.gap:
            self._commit()
        if self._current is None or item.score > self._current.score:
            worst = int(np.argmax(item.object_scores))
            box, cube = item.boxes[worst].copy(), item.worst_cube
            self._current = Moment(item.index, item.score, self._thumbnail(annotated, box), box, cube)

    def _commit(self) -> None:
        self._pool.append(self._current)
        self._current = None
        if len(self._pool) > self.pool_size:
            self._pool.remove(min(self._pool, key=lambda m: m.score))

    @property
    def moments(self) -> list[Moment]:
        """Up to ``k`` moments, highest score first, pairwise at least ``gap`` frames apart."""
        candidates = self._pool + ([self._current] if self._current is not None else [])
        picked: list[Moment] = []
        for moment in sorted(candidates, key=lambda m: -m.score):
            if len(picked) < self.k and all(abs(moment.index - p.index) >= self.gap for p in picked):
                picked.append(moment)
        return picked

    def _thumbnail(self, image: np.ndarray, worst_box: np.ndarray | None) -> np.ndarray:
        image = image.copy()
        if worst_box is not None:  # the object whose difference map the report shows
            x1, y1, x2, y2 = (int(round(float(v))) for v in worst_box[:4])
            cv2.rectangle(image, (x1 - 2, y1 - 2), (x2 + 1, y2 + 1), (255, 255, 255), 1)
        if image.shape[1] <= self.thumbnail_width:
            return image
        height = int(round(image.shape[0] * self.thumbnail_width / image.shape[1]))
        return cv2.resize(image, (self.thumbnail_width, height), interpolation=cv2.INTER_AREA)


def difference_maps(model, moments: Sequence[Moment]) -> list[dict | None]:
    """Crop X, prediction X^ and |X^ - X| of each moment's worst object (values on [-1, 1])."""
    import torch

    from seqvad.tasks import backward_snippet, forward_snippet, target_frame

    with_cubes = [m for m in moments if m.cube is not None]
    if not with_cubes:
        return [None] * len(moments)
    cubes = torch.from_numpy(np.stack([m.cube for m in with_cubes])).float().div_(127.5).sub_(1.0)
    cubes = cubes.to(model.device)
    model.model.eval()
    with torch.inference_mode():
        prediction = model.model.predict(forward_snippet(cubes), backward_snippet(cubes)).cpu().numpy()
    target = target_frame(cubes).cpu().numpy()
    maps = iter({"crop": t, "prediction": p, "difference": np.abs(p - t)} for t, p in zip(target, prediction))
    return [next(maps) if m.cube is not None else None for m in moments]


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------

@dataclass
class DetectResult:
    out_dir: Path
    frames: int
    alarms: int
    threshold: float | None
    files: dict[str, Path]
    timings: dict[str, float]
    stopped: str | None = None  # why the stream ended early, if it did
    raw: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))


class DetectionOutputs:
    """Everything written to ``OUT/``, fed one scored frame at a time."""

    def __init__(self, out_dir: Path, threshold: float | None, fps: float, top_k: int, write_video: bool,
                 flush_every: int = 25):
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            self.scores_csv = CsvLog(out_dir / "scores.csv", ["frame", "raw_score", "score", "alarm"])
            self.objects_csv = CsvLog(out_dir / "objects.csv", ["frame", "x1", "y1", "x2", "y2",
                                                                "detector_score", "class", "object_score"])
        except OSError as exc:
            raise DataError(f"{out_dir}: cannot write the outputs here ({exc.strerror or exc})") from None
        self.out_dir, self.threshold, self.fps = out_dir, threshold, fps
        self.annotator = Annotator(threshold)
        self.video = VideoOut(out_dir, fps) if write_video else None
        self.moments = MomentKeeper(top_k, gap=int(round(fps)))
        self.raw, self.scores = array.array("d"), array.array("d")  # 8 bytes a frame, for the report
        self.alarms = 0
        self.write_seconds = 0.0
        self.flush_every = flush_every

    def add(self, item: ScoredFrame) -> None:
        started = time.perf_counter()
        alarm = self.threshold is not None and item.score > self.threshold
        self.alarms += int(alarm)
        self.raw.append(item.raw)
        self.scores.append(item.score)
        self.scores_csv.add([item.index, _num(item.raw), _num(item.score), int(alarm)])
        for box, score in zip(item.boxes, item.object_scores):
            self.objects_csv.add([item.index, *(_num(v) for v in box[:4]), _num(box[4]), int(box[5]), _num(score)])
        if self.video is not None or self.moments.k:
            annotated = self.annotator.draw(item, alarm)
            if self.video is not None:
                self.video.write(annotated)
            self.moments.offer(item, annotated)
        if len(self.scores) % self.flush_every == 0:
            self.scores_csv.flush()
            self.objects_csv.flush()
        self.write_seconds += time.perf_counter() - started

    def close(self) -> None:
        """Release the video and complete the CSV files (always runs, even after an error)."""
        for closer in (self.scores_csv.close, self.objects_csv.close,
                       self.video.close if self.video is not None else (lambda: None)):
            try:
                closer()
            except Exception as exc:  # keep closing the others
                log.warning("closing an output failed: %s", exc)

    def files(self) -> dict[str, Path]:
        files = {"scores": self.scores_csv.path, "objects": self.objects_csv.path,
                 "report": self.out_dir / "report.html"}
        if self.video is not None and self.video.path is not None:
            files["video"] = self.video.path
        return files


def default_out_dir(source_name: str) -> Path:
    return Path(f"detect-{source_name}")


def run_detection(model, source: Source, out_dir: str | Path | None = None, threshold: float | None = None,
                  top_k: int = 5, write_video: bool = True, box_detector=None, max_frames: int | None = None,
                  progress: bool = False, model_label: str = "", stop_on_sigint: bool = False) -> DetectResult:
    """Stream ``source`` through ``model`` (a trained :class:`seqvad.api.Detector`) into ``out_dir``.

    ``threshold`` defaults to the model's (a high quantile of its training frame scores).  When the
    source breaks mid-way, the frames that arrived are finished and written, the report is
    written, and a :class:`DataError` naming the source and the frame count is raised.
    """
    out_dir = Path(out_dir) if out_dir else default_out_dir(source.name)
    threshold = model.threshold if threshold is None else float(threshold)
    fps = float(source.fps or DEFAULT_FPS)
    frames = GuardedFrames(source.frames, max_frames)
    started = time.perf_counter()
    try:
        if box_detector is None:
            from seqvad.objects.detectors import build_detector

            box_detector = build_detector(model.config["detector"], video_name=source.name)
        warmup_video = source.video if getattr(box_detector, "warms_up", False) else None
        scorer = StreamScorer(model, box_detector, warmup_video, video_name=source.name)
        warmup_seconds = time.perf_counter() - started
        outputs = DetectionOutputs(out_dir, threshold, fps, top_k, write_video)
    except BaseException:
        source.close()  # a camera stays busy until released
        raise
    bar = _progress_bar(progress, max_frames or source.length or source.claimed_length)
    restore_sigint = _stop_on_sigint(frames) if stop_on_sigint else None
    finished = False
    try:
        for frame in frames:
            for item in scorer.push(frame):
                outputs.add(item)
            bar.update(1)
        for item in scorer.finish():
            outputs.add(item)
        finished = True
    finally:
        if restore_sigint:
            restore_sigint()
        bar.close()
        outputs.close()
        source.close()
        wall = time.perf_counter() - started
        timings = {"decode": round(frames.decode_seconds, 4), **scorer.times.as_dict(),
                   "write": round(outputs.write_seconds, 4), "warmup": round(warmup_seconds, 4),
                   "wall": round(wall, 4), "frames": frames.count,
                   "fps": round(frames.count / wall, 2) if wall > 0 else 0.0}
        stopped = _stop_reason(frames, source, finished)
        _write_report_safely(model, outputs, source, threshold, fps, timings, stopped, model_label)
    if frames.error is not None:
        raise DataError(f"{source.name}: the stream stopped after {frames.count} frames "
                        f"({type(frames.error).__name__}: {frames.error}); outputs up to there are in {out_dir}")
    return DetectResult(out_dir, len(outputs.scores), outputs.alarms, threshold, outputs.files(), timings,
                        stopped, np.asarray(outputs.raw), np.asarray(outputs.scores))


def _stop_reason(frames: GuardedFrames, source: Source, finished: bool) -> str | None:
    if not finished:
        return f"stopped by an error after {frames.count} frames"
    if frames.error is not None:
        return f"the source failed after {frames.count} frames ({type(frames.error).__name__}: {frames.error})"
    if frames.stop_requested:
        return f"stopped on request (Ctrl-C) after {frames.count} frames"
    if source.claimed_length and frames.count < source.claimed_length and frames.max_frames is None:
        return f"the file claims {source.claimed_length} frames but only {frames.count} decode (truncated?)"
    return None


def _write_report_safely(model, outputs: DetectionOutputs, source: Source, threshold, fps, timings, stopped,
                         model_label: str) -> None:
    """The report, with whatever exists; a failure here must not hide the run's own error."""
    from seqvad import html_report

    try:
        moments = outputs.moments.moments  # highest score first
        try:
            maps = difference_maps(model, moments)
        except Exception as exc:  # the model itself may be what failed
            log.warning("difference maps skipped: %s", exc)
            maps = [None] * len(moments)
        info = {"input": source.name, "model": model_label, "frames": len(outputs.scores), "fps": fps,
                "threshold": threshold, "alarms": outputs.alarms, "timings": timings, "stopped": stopped,
                "detector": model.config["detector"].get("name")}
        html_report.write_report(outputs.out_dir / "report.html", info, np.asarray(outputs.raw),
                                 np.asarray(outputs.scores), threshold, moments, maps)
    except Exception as exc:
        log.error("%s: report not written (%s: %s)", outputs.out_dir / "report.html", type(exc).__name__, exc)


def _progress_bar(enabled: bool, total: int | None):
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc="detect", disable=not enabled, file=sys.stderr)


def _stop_on_sigint(frames: GuardedFrames) -> Callable[[], None] | None:
    """First Ctrl-C: stop reading and finish the outputs; a second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, stack):
        frames.stop_requested = True
        signal.signal(signal.SIGINT, previous)
        print("\nseqvad: stopping after the current frames (Ctrl-C again to abort)", file=sys.stderr)

    signal.signal(signal.SIGINT, handler)
    return lambda: signal.signal(signal.SIGINT, previous)


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------

def add_parser(sub) -> None:
    p = sub.add_parser(
        "detect", help="score a video file, frame folder or camera with a trained model",
        description="Stream INPUT (video file, frame folder, camera index such as 0, or stream URL) through "
                    "a trained model: writes OUT/annotated.mp4, scores.csv (one row per frame), objects.csv "
                    "and report.html (score timeline and the top anomalous moments). Ctrl-C on a live "
                    "source stops reading and finishes the outputs.")
    p.add_argument("model", help="a model file written by `seqvad train --folder` (RUN/model.pt) or Detector.save")
    p.add_argument("input", help="video file, frame folder, camera index (0, 1, ...) or stream URL")
    p.add_argument("--out", help="output folder (default: detect-<input name>)")
    p.add_argument("--threshold", type=float, help="alarm threshold on the smoothed score "
                                                   "(default: the model's, a high quantile of training scores)")
    p.add_argument("--top-k", type=int, default=5, help="anomalous moments shown in the report (default 5)")
    p.add_argument("--boxes", help="CSV boxes file (video,frame,x1,y1,x2,y2) for a model trained on "
                                   "precomputed boxes; rows are matched by the input's name")
    p.add_argument("--no-video", action="store_true", help="skip the annotated video (faster)")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--device", help="cpu or cuda (default: cpu)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for the model (default 1: its batches of a few hundred crops gain little "
                        "from more, and on a busy machine 2 threads ran 4x slower than 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_detect)


def cmd_detect(args) -> int:
    from seqvad.api import Detector

    import torch

    # measured on 2 cores beside a training job (results/detect_speed.json): 1584 cubes/s with
    # one thread, 361 with two, whose barrier waits whenever either core is taken
    torch.set_num_threads(max(1, args.threads))
    model = Detector.load(args.model, device=args.device)
    if args.boxes:
        model.config["detector"].update(name="precomputed", boxes=str(args.boxes))
    if model.threshold is None and args.threshold is None:
        raise DataError(f"{args.model}: the model file has no threshold; pass --threshold")
    source = open_source(args.input)
    result = run_detection(model, source, args.out, threshold=args.threshold, top_k=args.top_k,
                           write_video=not args.no_video, max_frames=args.max_frames,
                           progress=not args.quiet, model_label=str(args.model), stop_on_sigint=True)
    alarm_share = result.alarms / max(result.frames, 1)
    print(f"{result.frames} frames, {result.alarms} over the threshold {result.threshold:.4g} "
          f"({alarm_share:.1%}), {result.timings['fps']:.1f} frames/s")
    if result.stopped:
        print(f"note: {result.stopped}")
    print("outputs: " + "  ".join(str(p) for p in result.files.values()))
    return 0
