"""The detector protocol and the registry of detectors by name.

A detector turns frames into boxes (see :mod:`.boxes` for their layout).  ``build_detector``
reads the config section ``detector`` and builds the class registered under its ``name``;
the cube cache key (:func:`seqvad.objects.prepare.cache_key`), the command line's
``--detector`` choices and streaming all read :data:`REGISTRY`, so a new detector is one
module with a class decorated by :func:`register` (imported before it is used).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from seqvad.config import DEFAULTS
from seqvad.errors import ConfigError


class Detector:
    """The protocol: ``reset``, ``prime(frames)``, ``detect(frames)``, ``detect_video(video)``.

    Class-level parts, used before any detector is built: ``name`` (the registry key),
    :meth:`from_config` (the builder) and :meth:`cache_fields` (the settings that decide its
    boxes, for the cube cache key).
    """

    name = "detector"
    chunk = 8  # frames handed to ``detect`` at once by ``detect_video``
    group_multiple = 1  # streaming hands ``detect`` a multiple of this many frames (aligned batches)
    uses_split_boxes = False  # True: prepare_split loads the split's boxes file and passes ``boxes``

    @classmethod
    def from_config(cls, detector_cfg: Mapping[str, Any], video_name: str | None = None,
                    boxes: Sequence[np.ndarray] | None = None, threads: int | None = None) -> "Detector":
        """The detector the config section ``detector`` describes (``threads``: onnxruntime threads)."""
        raise NotImplementedError  # pragma: no cover

    @classmethod
    def cache_fields(cls, detector_cfg: Mapping[str, Any], boxes_file: str | os.PathLike | None = None) -> dict:
        """Everything besides ``name`` that decides this detector's boxes (hashed into the cache key)."""
        return {}

    @property
    def warmup_frames(self) -> int:
        """How many of a video's first frames :meth:`prime` is given to learn from before the first
        ``detect`` (the motion model's background); streaming holds them back until they have arrived."""
        return 0

    def reset(self) -> None:
        """Forget state kept between frames (called at the start of every video)."""

    def prime(self, frames: Sequence[np.ndarray]) -> None:
        """Learn from the video's first frames (``warmup_frames`` of them, fewer in a shorter video)
        before detecting them."""

    def detect(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def detect_video(self, video) -> list[np.ndarray]:
        """Boxes of every frame of ``video``, in order, in one sequential read of it (no length asked
        first: a video file learns its true frame count at its end)."""
        return [boxes for _, boxes in self.iter_detect(iter(video))]

    def iter_detect(self, frames: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(frame, boxes)`` of a video's frames in order: reset, the warm-up learnt from the first
        ``warmup_frames`` frames, then ``detect`` on chunks of ``chunk`` frames counted from frame 0."""
        self.reset()
        frames = iter(frames)
        pending = list(itertools.islice(frames, self.warmup_frames))
        self.prime(pending)
        for frame in frames:
            pending.append(frame)
            if len(pending) >= self.chunk:
                yield from zip(pending[:self.chunk], self.detect(pending[:self.chunk]))
                pending = pending[self.chunk:]
        while pending:  # the warm-up frames of a short video, and the last partial chunk
            yield from zip(pending[:self.chunk], self.detect(pending[:self.chunk]))
            pending = pending[self.chunk:]

    def cut_video(self, video, window: int = 4, size: int = 32, channels: int = 1):
        """Cubes and index of every box of ``video`` (as ``extract_cubes(video, detect_video(video))``),
        boxes and cubes from one sequential read of it."""
        from seqvad.objects.cutter import cut_stream

        return cut_stream(self.iter_detect(iter(video)), window=window, size=size, channels=channels)


REGISTRY: dict[str, type[Detector]] = {}


def register(cls: type[Detector]) -> type[Detector]:
    """Class decorator: make ``cls`` buildable as ``detector.name: <cls.name>``."""
    REGISTRY[cls.name] = cls
    return cls


def detector_names() -> list[str]:
    return list(REGISTRY)


def detector_class(name: str | None) -> type[Detector]:
    """The registered class of ``name``; ConfigError naming the available ones otherwise."""
    if name not in REGISTRY:
        raise ConfigError(f"detector.name: {name!r} is not one of {', '.join(detector_names())}")
    return REGISTRY[name]


def build_detector(detector_cfg: Mapping[str, Any], video_name: str | None = None,
                   boxes: Sequence[np.ndarray] | None = None, threads: int | None = None) -> Detector:
    """The detector named by ``detector_cfg['name']``.

    For ``precomputed``, pass the video's ``boxes`` (from :func:`load_box_file`), or a
    ``video_name`` when ``detector_cfg['boxes']`` is a CSV file (looked up by name).
    ``threads`` overrides the onnxruntime thread count (worker processes use 1).
    """
    kind = detector_class(detector_cfg.get("name", DEFAULTS["detector"]["name"]))
    return kind.from_config(detector_cfg, video_name=video_name, boxes=boxes, threads=threads)


def seed_opencv_rng(seed: int = 0) -> None:
    """Reset OpenCV's global random generator before a video's detection.

    The KNN background subtractor (the motion detector's default) draws from it, so without a
    reset the boxes of a video depend on what ran before in the process; with it, batch
    scoring and ``seqvad detect`` find the same boxes.
    """
    import cv2

    cv2.setRNGSeed(seed)


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@functools.lru_cache(maxsize=16)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content (cached while its size and mtime stay the same)."""
    stat = Path(path).stat()
    return _file_sha256(str(path), stat.st_mtime_ns, stat.st_size)
