"""Object cubes: the box of frame t cropped from frames t-T..t+T, and their cache on disk.

Layout (the trainer and the scorer rely on it): cubes are ``uint8`` arrays of shape
``(N, 2T+1, C, S, S)``; ``cubes[k, T]`` is the crop at the box's own frame, ``cubes[k, 0]``
the crop T frames earlier.  Frame indices are clamped at the video's ends (the edge frame
repeats).  There is no tracking: all 2T+1 crops use the same box (as HF2VAD does).

A split on disk is a folder with

* ``cubes.npy``: the cubes, memory-mappable;
* ``index.npz``: one row per cube: ``video`` (index into the manifest's video list),
  ``frame``, ``x1, y1, x2, y2``, ``score``, ``cls``;
* ``manifest.json``: written last, so a folder without it was never finished.  It holds the
  cache key (hash of the detector and cube settings), the videos with their frame counts
  (frames without objects score 0, so the scorer needs them), counts and timing.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import cv2
import numpy as np

from seqvad.atomic import replacing, write_json

from seqvad.errors import DataError

log = logging.getLogger(__name__)

STORE_FORMAT = 1
CUBES_FILE, INDEX_FILE, MANIFEST_FILE = "cubes.npy", "index.npz", "manifest.json"
INDEX_FIELDS = {"video": np.int32, "frame": np.int32, "x1": np.float32, "y1": np.float32,
                "x2": np.float32, "y2": np.float32, "score": np.float32, "cls": np.int32}


# --------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------

def window_indices(t: int, window: int, num_frames: int) -> np.ndarray:
    """Frames ``t-window .. t+window`` clamped to ``[0, num_frames-1]`` (edge frames repeat)."""
    return np.clip(np.arange(t - window, t + window + 1), 0, num_frames - 1)


def pixel_box(box: Sequence[float], height: int, width: int) -> tuple[int, int, int, int]:
    """Integer crop ``(x1, y1, x2, y2)`` covering the float box, at least one pixel, inside the frame."""
    x1 = min(max(int(math.floor(box[0])), 0), width - 1)
    y1 = min(max(int(math.floor(box[1])), 0), height - 1)
    x2 = max(min(int(math.ceil(box[2])), width), x1 + 1)
    y2 = max(min(int(math.ceil(box[3])), height), y1 + 1)
    return x1, y1, x2, y2


def convert_channels(frame: np.ndarray, channels: int) -> np.ndarray:
    """A ``(H, W, channels)`` uint8 view of a BGR or single-channel frame."""
    if frame.ndim == 2:
        frame = frame[:, :, None]
    have = frame.shape[2]
    if have == channels:
        return frame
    if channels == 1 and have == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)[:, :, None]
    if channels == 3 and have == 1:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    raise DataError(f"cannot convert a {have}-channel frame to {channels} channels")


def resize_stack(crops: np.ndarray, size: int) -> np.ndarray:
    """Resize an ``(h, w, n)`` stack of crops to ``(size, size, n)``.

    INTER_AREA (anti-aliased) when the crop shrinks in both directions, INTER_LINEAR
    otherwise.  OpenCV's INTER_AREA handles at most 4 channels at non-integer scales,
    so it runs on groups of 4 channels; INTER_LINEAR takes all channels in one call.
    """
    height, width = crops.shape[:2]
    if height < size or width < size:
        return cv2.resize(crops, (size, size), interpolation=cv2.INTER_LINEAR).reshape(size, size, -1)
    groups = [cv2.resize(crops[:, :, i:i + 4], (size, size), interpolation=cv2.INTER_AREA).reshape(size, size, -1)
              for i in range(0, crops.shape[2], 4)]
    return np.concatenate(groups, axis=2)


def empty_index(num: int = 0) -> dict[str, np.ndarray]:
    return {name: np.zeros(num, dtype) for name, dtype in INDEX_FIELDS.items()}


def extract_cubes(video: Any, boxes_per_frame: Sequence[np.ndarray], window: int = 4, size: int = 32,
                  channels: int = 1) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Cubes of every box of every frame.

    ``video`` is a :class:`~seqvad.data.videos.Video` or a sequence of frames (a streaming
    buffer); ``boxes_per_frame[t]`` is a ``(k, 4+)`` array (``[x1, y1, x2, y2, score, cls]``).
    Returns ``cubes`` of shape ``(N, 2*window+1, channels, size, size)`` and an index dict
    of arrays (``video`` is all 0 here; the store renumbers it).

    Each frame is read once: a sliding cache holds the converted frames of the current
    window, and only frames near a box are read at all.  The 2T+1 crops of a box are
    stacked along the channel axis and resized together (:func:`resize_stack`).
    """
    read = video.frame if hasattr(video, "frame") else video.__getitem__
    num_frames = len(video)
    if len(boxes_per_frame) != num_frames:
        raise DataError(f"{getattr(video, 'path', '<frames>')}: {len(boxes_per_frame)} box lists "
                        f"for {num_frames} frames")
    if channels not in (1, 3):
        raise DataError(f"cubes.channels must be 1 or 3, got {channels}")
    length = 2 * window + 1
    counts = np.array([len(b) for b in boxes_per_frame], np.int64)
    total = int(counts.sum())
    cubes = np.empty((total, length, channels, size, size), np.uint8)
    index = empty_index(total)
    if total == 0:
        return cubes, index

    cache: dict[int, np.ndarray] = {}
    row = 0
    for t in np.flatnonzero(counts).tolist():
        frames_t = window_indices(t, window, num_frames).tolist()
        for old in [i for i in cache if i < frames_t[0]]:
            del cache[old]
        for i in frames_t:
            if i not in cache:
                cache[i] = convert_channels(np.asarray(read(i)), channels)
        stack = [cache[i] for i in frames_t]
        height, width = stack[0].shape[:2]
        boxes = np.asarray(boxes_per_frame[t], np.float32).reshape(int(counts[t]), -1)
        for k, box in enumerate(boxes):
            x1, y1, x2, y2 = pixel_box(box, height, width)
            crops = np.concatenate([frame[y1:y2, x1:x2] for frame in stack], axis=2)
            resized = resize_stack(crops, size)
            cubes[row + k] = resized.reshape(size, size, length, channels).transpose(2, 3, 0, 1)
        rows = slice(row, row + len(boxes))
        index["frame"][rows] = t
        for column, name in enumerate(("x1", "y1", "x2", "y2")):
            index[name][rows] = boxes[:, column]
        index["score"][rows] = boxes[:, 4] if boxes.shape[1] > 4 else 1.0
        index["cls"][rows] = boxes[:, 5] if boxes.shape[1] > 5 else -1
        row += len(boxes)
    return cubes, index


# --------------------------------------------------------------------------------------
# Atomic file writes
# --------------------------------------------------------------------------------------

def save_npz_atomic(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    with replacing(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def save_json_atomic(path: Path, data: Any) -> None:
    write_json(path, data, indent=1)


def write_cubes_atomic(path: Path, parts: Iterable[np.ndarray | Path], total: int, shape: Sequence[int]) -> None:
    """Concatenate cube arrays (or ``.npy`` part files) into one ``.npy`` without holding all in memory."""
    with replacing(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(total, *shape))
        row = 0
        for part in parts:
            array = np.load(part, mmap_mode="r") if isinstance(part, (str, Path)) else part
            if len(array):
                out[row:row + len(array)] = array
            row += len(array)
        if row != total:
            raise DataError(f"{path}: wrote {row} cubes, expected {total}")
        out.flush()
        del out


# --------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------

class CubeStore:
    """The cubes of one split, as built by :func:`seqvad.objects.prepare.prepare_split`.

    ``cubes``: ``(N, 2T+1, C, S, S)`` uint8 (a read-only memory map by default);
    ``index``: dict of arrays named as ``INDEX_FIELDS``; ``videos``: names;
    ``frame_counts``: frames per video; ``manifest``: the rest.
    """

    def __init__(self, path: Path | None, cubes: np.ndarray, index: Mapping[str, np.ndarray],
                 manifest: Mapping[str, Any]):
        self.path = path
        self.cubes = cubes
        self.index = dict(index)
        self.manifest = dict(manifest)

    # -- contents -----------------------------------------------------------------------
    @property
    def videos(self) -> list[str]:
        return [v["name"] for v in self.manifest["videos"]]

    @property
    def frame_counts(self) -> list[int]:
        return [int(v["frames"]) for v in self.manifest["videos"]]

    def __len__(self) -> int:
        return len(self.cubes)

    def rows_of_video(self, video: int) -> np.ndarray:
        """Row numbers of the cubes of video number ``video``."""
        return np.flatnonzero(self.index["video"] == video)

    def summary(self) -> dict[str, Any]:
        frames = sum(self.frame_counts)
        with_objects = len(np.unique(self.index["video"].astype(np.int64) * (1 << 32) + self.index["frame"]))
        size = sum((self.path / f).stat().st_size for f in (CUBES_FILE, INDEX_FILE, MANIFEST_FILE)
                   if self.path is not None and (self.path / f).exists())
        return {
            "videos": len(self.videos), "frames": frames, "objects": len(self),
            "objects_per_frame": round(len(self) / max(frames, 1), 3),
            "frames_without_objects": frames - with_objects,
            "cache_mb": round(size / 2**20, 2),
            "detector": self.manifest.get("detector"),
        }

    # -- disk -----------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = True) -> "CubeStore":
        """Open a finished store; :class:`DataError` naming the folder when it is missing or damaged."""
        path = Path(path)
        manifest_file = path / MANIFEST_FILE
        if not manifest_file.is_file():
            raise DataError(f"{path}: no cube store here (missing {MANIFEST_FILE})")
        try:
            manifest = json.loads(manifest_file.read_text())
            count, shape = int(manifest["count"]), tuple(int(v) for v in manifest["cube_shape"])
            videos = manifest["videos"]
            frame_counts = [int(v["frames"]) for v in videos]
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{manifest_file}: damaged manifest ({type(exc).__name__}: {exc})") from None
        if manifest.get("format") != STORE_FORMAT:
            raise DataError(f"{manifest_file}: store format {manifest.get('format')}, expected {STORE_FORMAT}")
        try:
            # an empty store cannot be memory-mapped (mmap of zero bytes fails)
            cubes = np.load(path / CUBES_FILE, mmap_mode="r" if mmap and count else None, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(f"{path / CUBES_FILE}: cannot read cubes ({type(exc).__name__}: {exc})") from None
        if cubes.dtype != np.uint8 or cubes.shape != (count, *shape):
            raise DataError(f"{path / CUBES_FILE}: holds {cubes.dtype} {cubes.shape}, manifest says "
                            f"uint8 {(count, *shape)}")
        try:
            with np.load(path / INDEX_FILE, allow_pickle=False) as data:
                index = {name: data[name].astype(dtype, copy=False) for name, dtype in INDEX_FIELDS.items()}
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise DataError(f"{path / INDEX_FILE}: cannot read index ({type(exc).__name__}: {exc})") from None
        bad = [name for name, values in index.items() if len(values) != count]
        if bad:
            raise DataError(f"{path / INDEX_FILE}: columns {bad} do not have {count} rows")
        if count and (index["video"].min() < 0 or index["video"].max() >= len(videos)):
            raise DataError(f"{path / INDEX_FILE}: video numbers outside 0..{len(videos) - 1}")
        if count and (index["frame"] >= np.asarray(frame_counts)[index["video"]]).any():
            raise DataError(f"{path / INDEX_FILE}: frame numbers beyond their video's length")
        return cls(path, cubes, index, manifest)

    @staticmethod
    def stale_reason(path: str | os.PathLike, cache_key: str, videos: Sequence[tuple[str, int]],
                     fingerprints: Sequence[str | None] | None = None) -> str | None:
        """``None`` when ``path`` holds a sound store for this key and these videos, else why not.

        ``fingerprints`` (``FrameReader.fingerprint`` of each video, None where unknown) must
        match the cached ones too."""
        path = Path(path)
        if not (path / MANIFEST_FILE).exists():
            return "no cache yet"
        try:
            store = CubeStore.load(path)
        except DataError as exc:
            return f"damaged cache ({exc})"
        if store.manifest.get("cache_key") != cache_key:
            return (f"settings changed (cache key {store.manifest.get('cache_key')} -> {cache_key})")
        cached = list(zip(store.videos, store.frame_counts))
        wanted = [(name, int(count)) for name, count in videos]
        if cached != wanted:
            return f"videos changed ({len(cached)} cached, {len(wanted)} asked, or names/frame counts differ)"
        if fingerprints is not None:
            cached_prints = [v.get("fingerprint") for v in store.manifest.get("videos", [])]
            changed = [name for name, a, b in zip(store.videos, cached_prints, fingerprints) if a != b]
            if changed:
                what = "no content fingerprint in the cache" if None in cached_prints else "other content"
                return f"videos changed ({what} for {', '.join(changed[:3])})"
        return None

    @staticmethod
    def write(path: str | os.PathLike, parts: Sequence[np.ndarray | Path], indexes: Sequence[Mapping[str, np.ndarray]],
              manifest: Mapping[str, Any], cube_shape: Sequence[int]) -> "CubeStore":
        """Write a store from per-video cube parts (arrays or ``.npy`` files) and index dicts.

        The old manifest goes first and the new one last: a crash midway leaves a folder
        that :meth:`load` rejects, never old index rows over new cubes.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / MANIFEST_FILE).unlink(missing_ok=True)
        index = {name: np.concatenate([np.asarray(part[name], dtype) for part in indexes])
                 if indexes else np.zeros(0, dtype) for name, dtype in INDEX_FIELDS.items()}
        total = len(index["frame"])
        write_cubes_atomic(path / CUBES_FILE, parts, total, cube_shape)
        save_npz_atomic(path / INDEX_FILE, index)
        manifest = {**manifest, "format": STORE_FORMAT, "count": total, "cube_shape": list(cube_shape)}
        save_json_atomic(path / MANIFEST_FILE, manifest)
        return CubeStore.load(path)
