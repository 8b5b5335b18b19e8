"""Inputs of a stream: a video file, a frame folder, a camera index or a stream URL."""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from seqvad.errors import DataError

DEFAULT_FPS = 25.0  # for frame folders and cameras that do not report a rate


@dataclass
class Source:
    """Frames of one input, read in order.

    ``length`` is ``None`` for live sources and video files (whose container count, when
    given, is ``claimed_length``; the true count is known at the end): nothing is read before
    the frames themselves, and every frame is decoded once.
    """

    name: str
    frames: Iterator[np.ndarray]
    fps: float | None = None
    length: int | None = None
    claimed_length: int | None = None  # what a video container says it holds
    close: Callable[[], None] = lambda: None
    # seconds since the first frame of the frame last read: the container's timestamps for a
    # file, the wall clock for a live source; None: frame index / fps (a frame folder)
    clock: Callable[[], float] | None = None
    started_at: float | None = None  # live sources: UNIX time of the first frame
    dropped: Callable[[], int] = lambda: 0  # frames dropped at the input (LatestFrames)

    @property
    def live(self) -> bool:
        return self.started_at is not None


def open_source(spec: str | Path) -> Source:
    """A video file, a frame folder, a camera index (``0``) or a stream URL (``rtsp://...``)."""
    from seqvad.data.videos import Video

    text = str(spec)
    path = Path(text)
    if path.is_dir():
        video = Video.from_folder(path)  # DataError when it holds no images
        return Source(path.name, iter(video), video.fps, len(video))  # no clock: a folder's frame t is at t / fps
    if path.is_file():
        capture = _open_capture(text, f"{path}: OpenCV cannot open this video file")
        return _capture_source(capture, path.stem, text)
    if text.isdigit():
        capture = _open_capture(int(text), f"camera {text}: cannot be opened (no such device, or busy)")
        return _capture_source(capture, f"camera{text}", f"camera {text}", live=True)
    if "://" in text:
        capture = _open_capture(text, f"{text}: the stream cannot be opened")
        return _capture_source(capture, _safe_name(text), text, live=True)
    raise DataError(f"{text}: no such video file, frame folder, camera index or stream URL")


def _open_capture(target, message: str) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(target)
    if not capture.isOpened():
        capture.release()
        raise DataError(message)
    return capture


def _capture_source(capture: cv2.VideoCapture, name: str, label: str, live: bool = False) -> Source:
    """Read one frame up front, so that an input with no decodable frame fails before any output."""
    ok, first = capture.read()
    if not ok or first is None:
        capture.release()
        raise DataError(f"{label}: no frame can be decoded (unreadable, empty or truncated)")
    fps = capture.get(cv2.CAP_PROP_FPS) or None
    claimed = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if not live else 0
    started_at = time.time() if live else None
    clock = _FrameClock(capture, fps or DEFAULT_FPS, started_at)
    first_time = clock.stamp()

    def frames() -> Iterator[np.ndarray]:
        frame = first
        clock.current = first_time
        while frame is not None:
            yield frame if frame.ndim == 3 else frame[:, :, None]
            ok, frame = capture.read()
            if not ok:
                frame = None
            else:
                clock.current = clock.stamp()

    return Source(name, frames(), fps, None, claimed or None, close=capture.release,
                  clock=lambda: clock.current, started_at=started_at)


class _FrameClock:
    """Time of each frame read from a capture, in seconds since the first.

    Files: the container's timestamp (``CAP_PROP_POS_MSEC``), so variable frame rates stay
    right; where a container gives none (0, or not increasing) the previous time + 1/fps.
    Live sources: the wall clock when the frame arrived (a camera's own stamps are often absent
    or on an unknown clock).
    """

    def __init__(self, capture: cv2.VideoCapture, fps: float, started_at: float | None):
        self.capture, self.fps, self.started_at = capture, fps, started_at
        self.current = 0.0
        self._previous: float | None = None
        self._origin: float | None = None

    def stamp(self) -> float:
        if self.started_at is not None:
            return time.time() - self.started_at
        stamp = (self.capture.get(cv2.CAP_PROP_POS_MSEC) or 0.0) / 1000.0
        if self._origin is None:
            self._origin = stamp
        stamp -= self._origin
        if self._previous is not None and stamp <= self._previous:
            stamp = self._previous + 1.0 / self.fps
        self._previous = stamp
        return stamp


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
        self.stop_signal: str | None = None  # the signal that asked for the stop (run._stop_on_signals)
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


class LatestFrames:
    """A live source read in its own thread, so that processing slower than the camera drops frames
    at the input (the oldest waiting ones, counted in ``dropped``) instead of letting latency grow
    without bound in the capture's buffer.

    ``capacity`` frames may wait (a burst while a detection group is processed); ``clock()``
    gives the time of the frame last handed out, read when the frame arrived.
    """

    def __init__(self, source: Source, capacity: int = 32):
        self.source, self.capacity = source, max(1, capacity)
        self.dropped = 0
        self.current = 0.0
        self._waiting: deque = deque()
        self._ready = threading.Condition()
        self._done = self._stop = False
        self._error: BaseException | None = None
        self._origin = source.started_at if source.started_at is not None else time.time()
        self._thread = threading.Thread(target=self._read, name=f"read-{source.name}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for frame in self.source.frames:
                # seconds since the first frame, as every source's clock gives them
                stamp = self.source.clock() if self.source.clock is not None else time.time() - self._origin
                with self._ready:
                    if len(self._waiting) >= self.capacity:
                        self._waiting.popleft()
                        self.dropped += 1
                    self._waiting.append((frame, stamp))
                    self._ready.notify()
                if self._stop:
                    return
        except BaseException as exc:  # handed to the consumer, who decides what a broken source means
            self._error = exc
        finally:
            with self._ready:
                self._done = True
                self._ready.notify()

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            with self._ready:
                while not self._waiting and not self._done:
                    self._ready.wait(0.5)
                if self._waiting:
                    frame, self.current = self._waiting.popleft()
                elif self._error is not None:
                    raise self._error
                else:
                    return
            yield frame

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2.0)  # a read in progress ends before the capture is released
        self.source.close()

    def as_source(self) -> Source:
        """The same input, read through this buffer."""
        return Source(self.source.name, iter(self), self.source.fps, self.source.length, self.source.claimed_length,
                      close=self.close, clock=lambda: self.current,
                      started_at=self.source.started_at, dropped=lambda: self.dropped)
