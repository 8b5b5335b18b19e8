"""What the Python API accepts as video: a path, a list of paths, a numpy array or a :class:`Video`.

* a numpy array ``(T, H, W)`` (grey) or ``(T, H, W, C)``, ``uint8``: one video;
* a video file or a frame folder (a folder of images): one video;
* for training (:func:`as_videos`) also a folder of videos (files and/or frame folders), as
  ``seqvad train --folder`` takes, and a list of any of the above.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from seqvad.data.videos import IMAGE_EXTENSIONS, Video
from seqvad.errors import DataError


def as_video(source: Any, name: str = "array") -> Video:
    """One video from a :class:`Video`, an array ``(T, H, W[, C])`` or a file / frame-folder path."""
    if isinstance(source, Video):
        return source
    if isinstance(source, np.ndarray):
        if source.ndim not in (3, 4):
            raise DataError(f"{name}: a video array must be (T, H, W) or (T, H, W, C), got shape {source.shape}")
        if source.dtype != np.uint8:
            raise DataError(f"{name}: a video array must be uint8 (0-255), got {source.dtype}")
        return Video.from_array(source, name=name)
    if isinstance(source, (str, os.PathLike)):
        return Video.open(source, name=_name(Path(source)))
    raise DataError(f"cannot read a video from a {type(source).__name__}: give a path, a numpy array "
                    "(T, H, W[, C]) or a seqvad Video")


def as_videos(source: Any) -> list[Video]:
    """Training videos: one video, a folder of videos, or a list of videos (see the module doc)."""
    if isinstance(source, (list, tuple)):
        videos = [as_video(item, name=f"array{i}") for i, item in enumerate(source)]
    elif isinstance(source, (str, os.PathLike)) and Path(source).is_dir() and not _holds_images(Path(source)):
        from seqvad.data.datasets import list_videos

        videos = [Video.open(path, name=_name(path)) for path in list_videos(Path(source))]
    else:
        videos = [as_video(source)]
    if not videos:
        raise DataError("no videos given")
    return videos


def _holds_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir())


def _name(path: Path) -> str:
    return path.stem if path.is_file() else path.name
