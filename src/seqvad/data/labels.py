"""Frame-label loaders for the benchmark datasets' ground-truth files.

Every loader returns ``{video_name: uint8 array of 0/1 per frame}`` (frames numbered from
0) or a list of such arrays in video order, so the datasets module can attach them to
videos and check the counts.  The original files number frames from 1 (MATLAB); the
conversion happens here and nowhere else.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.io

from seqvad.errors import DataError

_RANGE = re.compile(r"(\d+)\s*:\s*(\d+)")


def ranges_to_labels(ranges: Sequence[tuple[int, int]], num_frames: int, path: str | Path = "") -> np.ndarray:
    """1-based inclusive ``[(start, end), ...]`` ranges -> 0/1 labels for ``num_frames`` frames."""
    labels = np.zeros(num_frames, dtype=np.uint8)
    for start, end in ranges:
        if not 1 <= start <= end <= num_frames:
            raise DataError(f"{path}: abnormal range {start}:{end} lies outside 1..{num_frames}")
        labels[start - 1:end] = 1
    return labels


def read_ucsd_m(path: str | Path) -> list[list[tuple[int, int]]]:
    """UCSD's ``UCSDped{1,2}.m``: one ``gt_frame = [a:b, c:d]`` line per test video (1-based)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: label file does not exist")
    videos = []
    for line in path.read_text().splitlines():
        if "gt_frame" in line:
            pairs = [(int(a), int(b)) for a, b in _RANGE.findall(line.split("=", 1)[1])]
            if not pairs:
                raise DataError(f"{path}: cannot parse the gt_frame line {line.strip()!r}")
            videos.append(pairs)
    if not videos:
        raise DataError(f"{path}: no gt_frame lines found")
    return videos


def read_range_mat(path: str | Path) -> list[list[tuple[int, int]]]:
    """HF2VAD-style ``ped2.mat``: a ``gt`` cell with one ``[starts; ends]`` matrix per video (1-based)."""
    mat = _loadmat(path)
    if "gt" not in mat:
        raise DataError(f"{path}: no 'gt' variable (expected HF2VAD-style ranges)")
    videos = []
    for cell in np.asarray(mat["gt"]).ravel():
        ranges = np.asarray(cell, dtype=np.int64).reshape(2, -1)
        videos.append([(int(s), int(e)) for s, e in ranges.T])
    return videos


def split_joined(labels: np.ndarray, frame_counts: Sequence[int], path: str | Path) -> list[np.ndarray]:
    """A labels vector joined over the test videos in order, split by their frame counts."""
    labels = np.asarray(labels).ravel()
    total = int(sum(frame_counts))
    if len(labels) != total:
        raise DataError(f"{path}: {len(labels)} labels but the videos have {total} frames in all")
    bounds = np.cumsum([0, *frame_counts])
    return [labels[a:b].astype(np.uint8) for a, b in zip(bounds[:-1], bounds[1:])]


def read_npy(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: label file does not exist")
    try:
        labels = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: not a plain numeric .npy label file ({exc})") from None
    labels = np.asarray(labels).ravel()
    if not np.isin(labels, (0, 1)).all():
        raise DataError(f"{path}: labels must be 0 or 1")
    return labels.astype(np.uint8)


def read_vol_label(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Avenue ``N_label.mat``: ``volLabel`` holds one mask per frame.

    Returns ``(labels, masks)``: a frame is abnormal when any pixel of its mask is set;
    ``masks`` is a bool array ``(frames, H, W)``.
    """
    mat = _loadmat(path)
    if "volLabel" not in mat:
        raise DataError(f"{path}: no 'volLabel' variable (expected Avenue pixel masks)")
    cells = np.asarray(mat["volLabel"]).ravel()
    masks = np.stack([np.asarray(c) > 0 for c in cells])
    return masks.reshape(len(masks), -1).any(axis=1).astype(np.uint8), masks


def read_avenue_mat(path: str | Path) -> dict[str, np.ndarray]:
    """``avenue.mat``: one 0/1 vector per test video, keyed ``'01'``..``'21'``."""
    mat = _loadmat(path)
    out = {k: np.asarray(v).ravel().astype(np.uint8) for k, v in mat.items() if not k.startswith("__")}
    if not out:
        raise DataError(f"{path}: no per-video label vectors found")
    return dict(sorted(out.items()))


def _loadmat(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: label file does not exist")
    try:
        return scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises several types for damaged files
        raise DataError(f"{path}: cannot read MATLAB file ({exc})") from None
