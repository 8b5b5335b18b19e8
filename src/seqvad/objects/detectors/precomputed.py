"""Boxes read from a file covering a split (``.npz`` plain arrays, ``.csv`` rows, or ``.npy`` object arrays).

A ``.npy`` object array is a pickle: loading it can run code of the file's choosing, so it loads
only for a file the user named with ``--allow-pickle`` on the command line
(:func:`allow_pickle_for`), with a warning; ``seqvad boxes convert`` turns it once into a
``.npz`` of plain arrays (:mod:`.convert`), which loads without unpickling anything.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from seqvad.errors import ConfigError, DataError
from seqvad.objects.detectors.base import Detector, file_sha256, register
from seqvad.objects.detectors.boxes import empty_boxes, finalize_boxes

log = logging.getLogger(__name__)

NPZ_FORMAT = "seqvad-boxes-1"  # .npz: boxes (M, 6) float32, counts (F,) boxes per frame, all videos joined
_PICKLE_ALLOWED: set[Path] = set()  # files named with --allow-pickle on this command line


def allow_pickle_for(path: str | os.PathLike) -> None:
    """Let :func:`load_box_file` unpickle this one file (the user asked for it by name)."""
    _PICKLE_ALLOWED.add(Path(path).expanduser().resolve())


def pickle_allowed(path: str | os.PathLike) -> bool:
    return Path(path).expanduser().resolve() in _PICKLE_ALLOWED


@register
class PrecomputedBoxes(Detector):
    """Boxes read from a file, already split per frame of one video.

    Build one with :func:`load_box_file` (which checks frame counts); ``detect_video``
    then returns them clipped to the video's frames.
    """

    name = "precomputed"
    uses_split_boxes = True

    @classmethod
    def from_config(cls, detector_cfg, video_name=None, boxes=None, threads=None) -> "PrecomputedBoxes":
        source = detector_cfg.get("boxes")
        min_area = detector_cfg.get("min_area", 0)
        if boxes is not None:
            return cls(boxes, str(source or "<boxes>"), min_area)
        if source and video_name is not None and Path(source).suffix.lower() == ".csv":
            # frame count unknown here: detect_video checks the file against the video
            return cls(_load_csv_boxes(Path(source), [(video_name, None)])[0], str(source), min_area, exact=False)
        raise ConfigError("detector.boxes: the precomputed detector needs the split's boxes "
                          "(load_box_file), or a CSV boxes file and a video name")

    @classmethod
    def cache_fields(cls, detector_cfg, boxes_file=None) -> dict:
        return {"min_area": detector_cfg.get("min_area", 0),
                "boxes_sha256": file_sha256(boxes_file) if boxes_file and Path(boxes_file).is_file() else None}

    def __init__(self, boxes_per_frame: Sequence[np.ndarray], source: str = "<boxes>", min_area: float = 0.0,
                 exact: bool = True):
        self.boxes_per_frame, self.source, self.min_area = list(boxes_per_frame), source, float(min_area)
        self.exact = exact  # False: trailing frames without boxes may be absent (CSV files)
        self._cursor = 0

    def reset(self) -> None:
        self._cursor = 0

    def detect(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        end = self._cursor + len(frames)
        if end > len(self.boxes_per_frame) and self.exact:
            raise DataError(f"{self.source}: boxes for {len(self.boxes_per_frame)} frames, asked for frame {end - 1}")
        boxes = self.boxes_per_frame[self._cursor:end]
        boxes += [empty_boxes()] * (len(frames) - len(boxes))
        self._cursor = end
        return [finalize_boxes(b, f.shape[0], f.shape[1], self.min_area) for b, f in zip(boxes, frames)]

    def detect_video(self, video) -> list[np.ndarray]:
        n = len(video)
        if (n != len(self.boxes_per_frame)) if self.exact else (n < len(self.boxes_per_frame)):
            raise DataError(f"{self.source}: boxes for {len(self.boxes_per_frame)} frames but video "
                            f"{video.name} has {n} frames")
        self.reset()
        if n == 0:
            return []
        height, width = video.frame(0).shape[:2]  # the frames of one video share a size
        boxes = self.boxes_per_frame + [empty_boxes()] * (n - len(self.boxes_per_frame))
        return [finalize_boxes(b, height, width, self.min_area) for b in boxes]


    def cut_video(self, video, window: int = 4, size: int = 32, channels: int = 1):
        """Its boxes need no frames: the cubes are the only read of the video."""
        from seqvad.objects.cubes import extract_cubes

        return extract_cubes(video, self.detect_video(video), window=window, size=size, channels=channels)


def _as_box_array(value: Any, path: Path, frame: int) -> np.ndarray:
    boxes = np.asarray(value, np.float32)
    if boxes.size == 0:
        return empty_boxes()
    if boxes.ndim != 2 or boxes.shape[1] not in (4, 5, 6):
        raise DataError(f"{path}: frame {frame} holds an array of shape {boxes.shape}, expected (k, 4..6)")
    if boxes.shape[1] == 5:  # x1,y1,x2,y2,score
        boxes = np.hstack([boxes, np.full((len(boxes), 1), -1, np.float32)])
    return boxes


def load_box_file(path: str | os.PathLike, videos: Sequence[tuple[str, int]],
                  allow_pickle: bool | None = None) -> list[list[np.ndarray]]:
    """Per-video, per-frame boxes from a file covering a whole split.

    ``videos`` is the split as ``(name, frame_count)`` pairs in order.  Formats:

    * ``.npz`` (``seqvad boxes convert``): ``boxes`` (M, 6) and ``counts`` (boxes per frame)
      of all videos' frames joined in order; plain arrays, read without unpickling.
    * ``.csv``: header line, then ``video,frame,x1,y1,x2,y2[,score,class]``; ``video`` is
      the video's name, ``frame`` its 0-based index.  Frames without rows have no boxes.
    * ``.npy``: an object array with one ``(k, 4)`` (or 5/6 columns) array per frame of all
      videos joined in order (the HF2VAD / AI-VAD layout).  Object arrays are pickles, so
      they load only with ``allow_pickle=True`` (``None``: only a file passed to
      :func:`allow_pickle_for`, i.e. named with ``--allow-pickle``); load only files you trust.
    """
    path = Path(path)
    if not path.is_file():
        pickled = path.with_suffix(".npy")
        if path.suffix.lower() == ".npz" and pickled.is_file():
            raise DataError(f"{path}: boxes file does not exist, but {pickled.name} (a pickle) does; convert it "
                            f"once: seqvad boxes convert {pickled} {path} --allow-pickle")
        raise DataError(f"{path}: boxes file does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _split_joined(path, _read_npz_boxes(path), videos)
    if suffix == ".npy":
        return _split_joined(path, read_npy_boxes(path, pickle_allowed(path) if allow_pickle is None else allow_pickle),
                             videos)
    if suffix == ".csv":
        return _load_csv_boxes(path, videos)
    raise DataError(f"{path}: unknown boxes file type (expected .npz, .csv or .npy)")


def read_npy_boxes(path: Path, allow_pickle: bool) -> list[np.ndarray]:
    """The per-frame boxes of an object-array ``.npy`` (unpickled only with ``allow_pickle``)."""
    if allow_pickle:
        log.warning("%s: unpickling this boxes file (--allow-pickle): a pickle can run code, so only files "
                    "you trust; `seqvad boxes convert` makes a .npz that needs no unpickling", path)
    try:
        data = np.load(path, allow_pickle=bool(allow_pickle))
    except ValueError as exc:
        if not allow_pickle and "allow_pickle" in str(exc):
            raise ConfigError(f"{path}: this boxes file is a pickled object array (loading it could run code "
                              f"in it); convert it once: seqvad boxes convert {path} {path.with_suffix('.npz')} "
                              "--allow-pickle (only for files you trust)") from None
        raise DataError(f"{path}: cannot read boxes file ({exc})") from None
    except Exception as exc:
        raise DataError(f"{path}: cannot read boxes file ({type(exc).__name__}: {exc})") from None
    if data.dtype != object:
        raise DataError(f"{path}: expected an object array with one (k, 4) array per frame, got {data.dtype} {data.shape}")
    return [_as_box_array(value, path, i) for i, value in enumerate(data.ravel())]


def _read_npz_boxes(path: Path) -> list[np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            fmt = str(data["format"]) if "format" in data.files else None
            boxes, counts = np.asarray(data["boxes"], np.float32), np.asarray(data["counts"], np.int64)
    except (KeyError, ValueError, OSError) as exc:
        raise DataError(f"{path}: not a seqvad boxes .npz (arrays boxes, counts): {exc}") from None
    if fmt != NPZ_FORMAT or boxes.ndim != 2 or boxes.shape[1] != 6 or counts.ndim != 1 \
            or (counts < 0).any() or counts.sum() != len(boxes):
        raise DataError(f"{path}: not a {NPZ_FORMAT} file (boxes (M, 6) and counts per frame summing to M)")
    return np.split(boxes, np.cumsum(counts)[:-1]) if len(counts) else []


def _split_joined(path: Path, frames: list[np.ndarray], videos: Sequence[tuple[str, int]]) -> list[list[np.ndarray]]:
    """Per-frame boxes of all videos joined -> per video."""
    expected = sum(count for _, count in videos)
    if len(frames) != expected:
        raise DataError(f"{path}: boxes for {len(frames)} frames but the {len(videos)} videos have {expected} frames")
    out, start = [], 0
    for _, count in videos:
        out.append([frames[i] if len(frames[i]) else empty_boxes() for i in range(start, start + count)])
        start += count
    return out


def _load_csv_boxes(path: Path, videos: Sequence[tuple[str, int | None]]) -> list[list[np.ndarray]]:
    rows: dict[str, dict[int, list[list[float]]]] = {}
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header[:6]] != ["video", "frame", "x1", "y1", "x2", "y2"]:
            raise DataError(f"{path}: first line must be the header video,frame,x1,y1,x2,y2[,score,class]")
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                values = [float(v) for v in row[2:8]]
                frame = int(row[1])
            except (ValueError, IndexError):
                raise DataError(f"{path}: line {line_no} is not video,frame,x1,y1,x2,y2[,score,class]") from None
            if len(values) < 4:
                raise DataError(f"{path}: line {line_no} has fewer than 4 box coordinates")
            values += [1.0, -1.0][len(values) - 4:]
            rows.setdefault(row[0].strip(), {}).setdefault(frame, []).append(values)
    names = {name for name, _ in videos}
    out = []
    for name, count in videos:
        frames = rows.get(name, {})
        if not frames:
            log.warning("%s: no boxes for video %s", path, name)
        last = max(frames, default=-1)
        if min(frames, default=0) < 0:
            raise DataError(f"{path}: video {name} has a negative frame index")
        if count is None:  # length unknown yet: up to the last frame with boxes
            count = last + 1
        elif last >= count:
            raise DataError(f"{path}: video {name} has boxes for frame {last} but the video has {count} frames")
        out.append([np.asarray(frames[i], np.float32) if i in frames else empty_boxes() for i in range(count)])
    unknown = sorted(set(rows) - names)
    if unknown:
        log.warning("%s: boxes for videos not in this split ignored: %s", path, ", ".join(unknown[:5]))
    return out
