"""Cubes cut from frames as they arrive: one read of a video for its boxes and its cubes.

:class:`CubeCutter` keeps the last 2T+1 frames and cuts a frame's cubes once frame t+T has arrived
(at the end, the windows are clamped to the last frame), through :func:`extract_cubes` on that
window: the same cubes as :func:`extract_cubes` on the whole video, in bounded memory.  The streaming
scorer cuts with it, and :func:`cut_stream` gives a whole video's cubes and index from its frames and
boxes in one pass (batch scoring and the cube cache).
"""

from __future__ import annotations

from collections import deque
from typing import Iterable

import numpy as np

from seqvad.objects.cubes import INDEX_FIELDS, convert_channels, empty_index, extract_cubes, window_indices


class CubeCutter:
    """Frames and their boxes in (``add``), each frame's cubes out once its window is complete."""

    def __init__(self, window: int = 4, size: int = 32, channels: int = 1):
        self.window, self.size, self.channels = window, size, channels
        self.count = 0  # frames added
        self._frames: dict[int, np.ndarray] = {}  # the last 2T+1 frames, converted to ``channels``
        self._waiting: deque[tuple[int, np.ndarray]] = deque()  # (frame, boxes) until frame t+T arrives

    def add(self, frame: np.ndarray, boxes: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """The next frame and its boxes; returns ``(frame index, boxes, cubes)`` of every frame whose
        window t-T..t+T became complete, in order."""
        t = self.count
        self.count += 1
        self._frames[t] = convert_channels(np.asarray(frame), self.channels)
        self._frames.pop(t - 2 * self.window - 1, None)  # out of every future window
        self._waiting.append((t, np.asarray(boxes, np.float32)))
        ready = []
        while self._waiting and self._waiting[0][0] + self.window <= t:
            ready.append(self._cut(*self._waiting.popleft(), last=t))
        return ready

    def finish(self) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """End of the video: the frames still waiting, their windows clamped to the last frame."""
        ready = [self._cut(index, boxes, last=self.count - 1) for index, boxes in self._waiting]
        self._waiting.clear()
        return ready

    def _cut(self, index: int, boxes: np.ndarray, last: int) -> tuple[int, np.ndarray, np.ndarray]:
        T = self.window
        if len(boxes) == 0:
            return index, boxes, np.zeros((0, 2 * T + 1, self.channels, self.size, self.size), np.uint8)
        # the window clamped to [0, last] as batch extraction clamps it at the video's borders, so
        # extract_cubes sees a short video whose middle frame holds the boxes
        frames = [self._frames[i] for i in window_indices(index, T, last + 1).tolist()]
        empty = np.zeros((0, 6), np.float32)
        cubes, _ = extract_cubes(frames, [empty] * T + [boxes] + [empty] * T, window=T, size=self.size,
                                 channels=self.channels)
        return index, boxes, cubes


def cut_stream(frames_and_boxes: Iterable[tuple[np.ndarray, np.ndarray]], window: int = 4, size: int = 32,
               channels: int = 1) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Cubes and index of a whole video from ``(frame, boxes)`` pairs in order, as :func:`extract_cubes`
    gives them, reading each frame once."""
    cutter = CubeCutter(window, size, channels)
    parts: list[tuple[int, np.ndarray, np.ndarray]] = []
    for frame, boxes in frames_and_boxes:
        parts += [part for part in cutter.add(frame, boxes) if len(part[2])]
    parts += [part for part in cutter.finish() if len(part[2])]
    if not parts:
        return np.zeros((0, 2 * window + 1, channels, size, size), np.uint8), empty_index()
    cubes = np.concatenate([c for _, _, c in parts])
    index = {name: np.concatenate([_column(name, t, b) for t, b, _ in parts]).astype(dtype)
             for name, dtype in INDEX_FIELDS.items()}
    return cubes, index


def _column(name: str, frame: int, boxes: np.ndarray) -> np.ndarray:
    """One index column of a frame's boxes, as extract_cubes fills it."""
    n = len(boxes)
    if name == "video":
        return np.zeros(n)
    if name == "frame":
        return np.full(n, frame)
    if name in ("x1", "y1", "x2", "y2"):
        return boxes[:, ("x1", "y1", "x2", "y2").index(name)]
    if name == "score":
        return boxes[:, 4] if boxes.shape[1] > 4 else np.ones(n)
    return boxes[:, 5] if boxes.shape[1] > 5 else np.full(n, -1)
