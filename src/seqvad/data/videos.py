"""Videos: a name, lazy random-access frames, optional labels and pixel masks.

Every later stage consumes :class:`Video`. Frames are ``uint8`` arrays of shape
``(H, W, C)`` in OpenCV's **BGR** channel order (``C`` is 3 for colour sources, or 1
for single-channel sources).  Frames are read on demand, so a ``Video`` of a
long file costs no memory until frames are asked for.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np

from seqvad.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mov", ".mkv", ".mpg", ".mpeg", ".m4v", ".wmv", ".webm")


def natural_key(text: str) -> list:
    """Sort key that orders ``frame2`` before ``frame10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


class FrameReader:
    """Random access to the frames of one source. Subclasses implement ``_read``."""

    path: str
    # a cheap content identity where one is known (generated videos); caches compare it
    fingerprint: str | None = None

    def __len__(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def read(self, index: int) -> np.ndarray:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"{self.path}: frame {index} out of range (video has {n} frames)")
        return self._read(index % n)

    def _read(self, index: int) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def iter_frames(self) -> Iterator[np.ndarray]:
        """Every frame in order (a video file: decoded once, its length learnt at the end)."""
        for index in range(len(self)):
            yield self._read(index)

    @property
    def fps(self) -> float | None:
        return None

    def length_hint(self) -> int:
        """The frame count without decoding where the source says it (a video container's
        count, exact for an intact file), else ``len``."""
        return len(self)


def _as_hwc(image: np.ndarray) -> np.ndarray:
    return image[:, :, None] if image.ndim == 2 else image


class FolderReader(FrameReader):
    """Frames stored as image files in one folder, in natural sort order."""

    def __init__(self, folder: str | os.PathLike):
        self.path = str(folder)
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(f"{folder}: frame folder does not exist")
        self.files = sorted(
            (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS),
            key=lambda p: natural_key(p.name),
        )
        if not self.files:
            raise DataError(f"{folder}: no image frames ({'/'.join(IMAGE_EXTENSIONS)}) in folder")
        self._shape: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self.files)

    def _read(self, index: int) -> np.ndarray:
        path = self.files[index]
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise DataError(f"{path}: cannot decode image")
        if image.dtype != np.uint8:  # 16-bit tif and the like
            image = cv2.convertScaleAbs(image, alpha=255.0 / max(1, int(image.max())))
        if image.ndim == 3 and image.shape[2] == 4:
            image = image[:, :, :3]
        image = _as_hwc(image)
        if self._shape is None:
            self._shape = image.shape
        elif image.shape != self._shape:
            raise DataError(
                f"{path}: frame size {image.shape[1]}x{image.shape[0]} differs from the "
                f"video's first frame ({self._shape[1]}x{self._shape[0]})"
            )
        return image


class FileReader(FrameReader):
    """Frames of a video file decoded by OpenCV.

    ``len`` is the number of frames that truly decode, not the container's claim, so
    truncated files are caught: learnt at the end of a sequential read (:meth:`iter_frames`, as
    detection reads a video), else counted with ``grab`` when asked before that.  Reads are
    sequential under the hood (seeking in compressed streams is unreliable): a small cache of
    recent frames makes the sliding-window access of cube extraction cheap, and a backwards
    jump re-opens the file.
    """

    CACHE_FRAMES = 64

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        if not Path(path).is_file():
            raise DataError(f"{path}: video file does not exist")
        capture = cv2.VideoCapture(self.path)
        if not capture.isOpened():
            raise DataError(f"{path}: OpenCV cannot open this video file")
        self._fps = capture.get(cv2.CAP_PROP_FPS) or None
        self.claimed_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        ok, first = capture.read()
        capture.release()  # a dataset opens many readers: no decoder stays open until frames are asked
        if not ok or first is None:
            raise DataError(f"{path}: video file has no decodable frame (unreadable or truncated)")
        self._length: int | None = None
        self._capture: cv2.VideoCapture | None = None
        self._position = 0  # index of the next frame the capture will return
        self._cache: dict[int, np.ndarray] = {0: _as_hwc(first)}

    def __len__(self) -> int:
        if self._length is None:
            capture = cv2.VideoCapture(self.path)
            count = 0
            while capture.grab():
                count += 1
            capture.release()
            self._length = count
        return self._length

    def length_hint(self) -> int:
        return self._length if self._length is not None else (self.claimed_frames or len(self))

    def iter_frames(self) -> Iterator[np.ndarray]:
        index = 0
        while self._length is None or index < self._length:
            frame = self._decode(index)
            if frame is None:
                if self._length is None:
                    self._length = index  # the end of the file: its true frame count
                    return
                raise DataError(f"{self.path}: frame {index} cannot be decoded (truncated file?)")
            yield frame
            index += 1

    def _read(self, index: int) -> np.ndarray:
        frame = self._decode(index)
        if frame is None:
            raise DataError(f"{self.path}: frame {index} cannot be decoded (truncated file?)")
        return frame

    def _decode(self, index: int) -> np.ndarray | None:
        """Frame ``index``, None past the last decodable frame."""
        if index in self._cache:
            return self._cache[index]
        if self._capture is None or index < self._position:
            if self._capture is not None:
                self._capture.release()
            self._capture = cv2.VideoCapture(self.path)
            self._position = 0
        while self._position < index:
            if not self._capture.grab():
                return None
            self._position += 1
        ok, frame = self._capture.read()
        if not ok:
            return None
        self._position += 1
        if len(self._cache) >= self.CACHE_FRAMES:
            self._cache.pop(min(self._cache))
        self._cache[index] = _as_hwc(frame)
        return self._cache[index]

    @property
    def fps(self) -> float | None:
        return self._fps

    def __getstate__(self):  # picklable for worker processes: drop the open capture
        state = self.__dict__.copy()
        state["_capture"], state["_position"], state["_cache"] = None, 0, {}
        return state


class ArrayReader(FrameReader):
    """Frames already in memory (the synthetic scene, tests)."""

    def __init__(self, frames: np.ndarray | Sequence[np.ndarray], name: str = "<array>", fps: float | None = None):
        self.path = name
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[..., None]
        if frames.ndim != 4 or frames.dtype != np.uint8:
            raise DataError(f"{name}: frames must be uint8 of shape (N, H, W[, C]), got {frames.dtype} {frames.shape}")
        self.frames = frames
        self._fps = fps

    def __len__(self) -> int:
        return len(self.frames)

    def _read(self, index: int) -> np.ndarray:
        return self.frames[index]

    @property
    def fps(self) -> float | None:
        return self._fps


MaskFn = Callable[[int], np.ndarray]


@dataclass
class Video:
    """One video: name, lazy frames, optional frame labels (0/1) and pixel masks.

    ``labels[i]`` is 1 when frame ``i`` is abnormal. ``mask(i)`` returns a bool
    ``(H, W)`` array of the abnormal pixels of frame ``i`` when masks are known.
    """

    name: str
    reader: FrameReader
    labels: np.ndarray | None = None
    mask_fn: MaskFn | None = field(default=None, repr=False)
    fps: float | None = None

    def __post_init__(self) -> None:
        if self.fps is None:
            self.fps = self.reader.fps
        if self.labels is not None:
            self.labels = np.asarray(self.labels).astype(np.uint8).ravel()
            # the container's count where it agrees (no decoding pass), else the true count
            if len(self.labels) != self.reader.length_hint() and len(self.labels) != len(self.reader):
                raise DataError(
                    f"{self.reader.path}: {len(self.labels)} labels for {len(self.reader)} frames"
                )
            if not np.isin(self.labels, (0, 1)).all():
                raise DataError(f"{self.reader.path}: labels must be 0 or 1")

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_folder(cls, folder: str | os.PathLike, name: str | None = None, **kwargs) -> "Video":
        return cls(name or Path(folder).name, FolderReader(folder), **kwargs)

    @classmethod
    def from_file(cls, path: str | os.PathLike, name: str | None = None, **kwargs) -> "Video":
        return cls(name or Path(path).stem, FileReader(path), **kwargs)

    @classmethod
    def from_array(cls, frames: np.ndarray, name: str = "array", **kwargs) -> "Video":
        return cls(name, ArrayReader(frames, name=name, fps=kwargs.pop("fps", None)), **kwargs)

    @classmethod
    def open(cls, path: str | os.PathLike, **kwargs) -> "Video":
        """A frame folder or a video file, whichever ``path`` is."""
        path = Path(path)
        if path.is_dir():
            return cls.from_folder(path, **kwargs)
        if path.is_file():
            return cls.from_file(path, **kwargs)
        raise DataError(f"{path}: no such video file or frame folder")

    # -- access ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.reader)

    @property
    def num_frames(self) -> int:
        return len(self.reader)

    @property
    def path(self) -> str:
        return self.reader.path

    def frame(self, index: int) -> np.ndarray:
        return self.reader.read(index)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.frame(index)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.reader.iter_frames()

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of the first frame."""
        return tuple(self.frame(0).shape)  # type: ignore[return-value]

    def mask(self, index: int) -> np.ndarray | None:
        return None if self.mask_fn is None else self.mask_fn(index)

    def check(self) -> None:
        """Decode every frame once; raises :class:`DataError` on mixed sizes or bad files."""
        first = self.frame(0).shape
        for i in range(len(self)):
            shape = self.frame(i).shape
            if shape != first:
                raise DataError(f"{self.path}: frame {i} is {shape[1]}x{shape[0]}, "
                                f"frame 0 is {first[1]}x{first[0]} (mixed frame sizes)")
        claimed = getattr(self.reader, "claimed_frames", None)
        if claimed and claimed > len(self):
            raise DataError(f"{self.path}: the file claims {claimed} frames but only {len(self)} decode "
                            f"(truncated video file)")
