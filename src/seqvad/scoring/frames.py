"""Object scores -> frame scores (Eq. 12-13) -> median filter along time, in batch and streaming form.

* per frame: the maximum over its objects; a frame without objects gets ``min(0, lowest object
  score)``, so that 'no object' still means 'least anomalous' when scores can be negative;
* per video: a median filter of ``scoring.median_window`` frames (its default is written once,
  in ``seqvad.config.DEFAULTS``); at the edges the first/last score is repeated.

:class:`StreamingFrames` gives the same numbers one frame at a time (``seqvad.stream``).
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Mapping, Sequence

import numpy as np
from scipy.ndimage import median_filter

from seqvad.errors import ConfigError


def median_window(scoring: Mapping | None = None) -> int:
    """``scoring.median_window`` (its default when absent), checked: odd, or <= 1 for none."""
    from seqvad.config import DEFAULTS

    value = (scoring or {}).get("median_window")
    return check_window(DEFAULTS["scoring"]["median_window"] if value is None else value)


def check_window(window) -> int:
    window = int(window)
    if window > 1 and window % 2 == 0:
        raise ConfigError(f"scoring.median_window={window}: the median window must be odd")
    return window


def frame_scores(errors: np.ndarray, video_ids: np.ndarray, frames: np.ndarray,
                 frame_counts: Sequence[int], expected_max: Callable | None = None,
                 empty: float | None = None) -> list[np.ndarray]:
    """Max object score per frame (Eq. 12), 0 for frames without objects (Eq. 13).

    ``video_ids[i]`` and ``frames[i]`` locate object ``i``; returns one array per video.
    Scores that can be negative (minus PSNR) give empty frames the lowest score seen
    instead of 0, so that 'no object' still means 'least anomalous'; ``empty`` fixes that score
    instead. ``expected_max(counts)`` (``scoring.normalize_by: count``) is subtracted from the
    maximum of each frame with ``counts`` objects.
    """
    errors = np.asarray(errors, dtype=np.float64)
    offsets = np.concatenate([[0], np.cumsum(frame_counts)]).astype(np.int64)
    slots = offsets[np.asarray(video_ids, np.int64)] + np.asarray(frames, np.int64) if len(errors) else None
    flat = np.full(offsets[-1], -np.inf)
    if len(errors):
        np.maximum.at(flat, slots, errors)
    seen = ~np.isneginf(flat)
    if expected_max is not None and seen.any():
        flat[seen] -= expected_max(np.bincount(slots, minlength=len(flat))[seen])
    if empty is None:  # the lowest object score, or frame score once counts are subtracted
        lowest = errors if expected_max is None else flat[seen]
        empty = min(0.0, float(lowest.min())) if len(lowest) else 0.0
    flat[~seen] = empty
    return [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def object_counts(index: Mapping[str, np.ndarray], frame_counts: Sequence[int]) -> np.ndarray:
    """Objects in each frame of the concatenated videos (``index['video']``, ``index['frame']``)."""
    offsets = np.concatenate([[0], np.cumsum(frame_counts)]).astype(np.int64)
    videos = np.asarray(index["video"], np.int64) if "video" in index else np.zeros(len(index["frame"]), np.int64)
    return np.bincount(offsets[videos] + np.asarray(index["frame"], np.int64), minlength=int(offsets[-1]))


def smooth(scores: Sequence[np.ndarray], window: int | None = None) -> list[np.ndarray]:
    """Median filter along each video (``window`` None: the configured default)."""
    window = median_window() if window is None else check_window(window)
    if window <= 1:
        return [np.asarray(s, dtype=np.float64) for s in scores]
    return [median_filter(np.asarray(s, dtype=np.float64), size=window, mode="nearest") for s in scores]


class StreamingFrames:
    """:func:`frame_scores` and :func:`smooth` of one video, fed a group of frames at a time.

    ``raw(groups)`` turns each frame's object scores into its raw frame score; ``push`` hands
    in one raw score and returns the ``(frame, smoothed score)`` pairs now known; ``finish``
    returns the rest once the video's length is known.  Indices are clamped to ``[0, N-1]`` as
    scipy's ``median_filter(mode='nearest')`` clamps them, so the numbers equal batch scoring's.
    Memory: the last ``window`` raw scores.
    """

    def __init__(self, window: int | None = None, expected_max: Callable | None = None,
                 empty: float | None = None):
        self.half = max(median_window() if window is None else check_window(window), 1) // 2
        self.expected_max = expected_max  # as in frame_scores
        self.fixed_empty = empty is not None
        self.empty = 0.0 if empty is None else float(empty)  # raw score of a frame without objects
        self._raw: dict[int, float] = {}
        self._waiting: deque[int] = deque()  # frames whose smoothed score is not known yet, in order

    def raw(self, groups: Sequence[np.ndarray]) -> list[float]:
        """Max object score of each frame; frames without objects get ``min(0, lowest so far)``.

        Batch scoring takes the lowest score of the whole video, which a stream cannot know
        yet: the lowest so far (this group's included) stands in. Equal for scores >= 0 (mse,
        the default); minus PSNR is negative."""
        tops = [float(np.max(g)) - (float(self.expected_max(len(g))) if self.expected_max else 0.0)
                if len(g) else None for g in groups]
        if not self.fixed_empty:
            lowest = [float(np.min(g)) for g in groups if len(g)] if self.expected_max is None else \
                [t for t in tops if t is not None]
            if lowest:
                self.empty = min(self.empty, min(lowest))
        return [self.empty if t is None else t for t in tops]

    def push(self, index: int, raw: float) -> list[tuple[int, float]]:
        self._raw[index] = raw
        self._waiting.append(index)
        return self._emit(last_known=index, final_length=None)

    def finish(self, length: int) -> list[tuple[int, float]]:
        return self._emit(last_known=length - 1, final_length=length)

    def _emit(self, last_known: int, final_length: int | None) -> list[tuple[int, float]]:
        """Median of raw scores t-h..t+h for each waiting frame t whose window is known."""
        out = []
        while self._waiting:
            t = self._waiting[0]
            if final_length is None and t + self.half > last_known:
                break
            top = last_known if final_length is None else final_length - 1
            values = [self._raw[min(max(i, 0), top)] for i in range(t - self.half, t + self.half + 1)]
            self._waiting.popleft()
            out.append((t, float(np.median(values))))
            self._raw.pop(t - self.half, None)  # no later window reaches back this far
        return out
