"""Benchmark datasets and a user's own folder of videos, as train/test lists of ``Video``.

Accepted layouts (``root`` is the dataset's own folder):

* ``ped2``: the common re-packaging ``<root>/{training,testing}/frames/NN/*.jpg`` with
  ``<root>/ground_truth/{UCSDped2.m | frame_labels_ped2.npy | ped2.mat}`` and optional
  ``pixel_masks/TestNNN_gt/*.png``; or the official ``<root>/{Train,Test}/TrainNNN/*.tif``
  with ``Test/UCSDped2.m`` and ``Test/TestNNN_gt/*.bmp``.
* ``avenue``: the re-packaging (frames as above, labels in ``ground_truth/``) or the official
  ``{training,testing}_videos/NN.avi`` with ``ground_truth_demo/testing_label_mask/``.
  Labels: ``masks`` (default: a frame is abnormal if any pixel of its ``volLabel`` mask is;
  ``avenue.mat`` holds the same) or ``intervals`` (``frame_labels_avenue.npy``, the interval
  style of the frame-prediction line of work; it differs on 441 frames).
* ``shanghaitech``: ``training/videos/*.avi`` or ``training/frames/<video>/``,
  ``testing/frames/<video>/``, labels ``testing/test_frame_mask/<video>.npy`` (or
  ``ground_truth/test_frame_mask/`` or the joined ``frame_labels_shanghai.npy``).
* ``folder``: ``<root>/{training,testing}/<video>`` where each video is a frame folder or a
  video file; optional labels ``<root>/labels/<video>.npy`` (0/1 per frame) or a CSV file
  ``video,start,end`` of abnormal frame intervals (0-based, inclusive).

Roots come from ``--root`` or from ``$SEQVAD_DATA/<dataset>``.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from seqvad.data import labels as L
from seqvad.data.videos import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, Video, natural_key
from seqvad.errors import DataError

DATASETS = ("ped2", "avenue", "shanghaitech", "folder")
AVENUE_CONVENTIONS = ("masks", "intervals")


@dataclass
class Dataset:
    name: str
    root: Path
    train: list[Video]
    test: list[Video]
    label_source: str = "none"  # which file (and convention) the test labels came from
    notes: list[str] = field(default_factory=list)


def resolve_root(name: str, root: str | os.PathLike | None) -> Path:
    """``root`` if given, else ``$SEQVAD_DATA/<name>``; the folder must exist."""
    if root is None:
        base = os.environ.get("SEQVAD_DATA")
        if not base:
            raise DataError(f"{name}: no dataset root given (use --root PATH or set SEQVAD_DATA)")
        root = Path(base) / name
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset root does not exist")
    return root


def load_dataset(name: str, root: str | os.PathLike | None = None, *, avenue_labels: str = "masks",
                 labels: str | os.PathLike | None = None) -> Dataset:
    """Train and test videos of a dataset. ``labels`` overrides the test label file."""
    loaders: dict[str, Callable[..., Dataset]] = {
        "ped2": _load_ped2, "avenue": _load_avenue, "shanghaitech": _load_shanghaitech, "folder": _load_folder,
    }
    if name not in loaders:
        raise DataError(f"{name}: unknown dataset (choose from {', '.join(DATASETS)})")
    root = resolve_root(name, root)
    if name == "avenue":
        if avenue_labels not in AVENUE_CONVENTIONS:
            raise DataError(f"{avenue_labels}: unknown Avenue label convention (masks or intervals)")
        return _load_avenue(root, avenue_labels, labels)
    return loaders[name](root, labels)


# -- listing videos --------------------------------------------------------------------------

def list_videos(folder: Path) -> list[Path]:
    """Video sources in a split folder: sub-folders of frames and video files, natural order."""
    if not folder.is_dir():
        raise DataError(f"{folder}: split folder does not exist")
    items = [p for p in folder.iterdir()
             if (p.is_dir() and not p.name.endswith("_gt") and not p.name.startswith("."))
             or p.suffix.lower() in VIDEO_EXTENSIONS]
    items.sort(key=lambda p: natural_key(p.name))
    if not items:
        raise DataError(f"{folder}: no videos (frame folders or video files) found")
    return items


def _open_all(folder: Path, labels: Sequence[np.ndarray | None] | None = None,
              masks: Sequence[Callable | None] | None = None) -> list[Video]:
    sources = list_videos(folder)
    if labels is not None and len(labels) != len(sources):
        raise DataError(f"{folder}: {len(sources)} videos but the labels cover {len(labels)}")
    videos = []
    for i, src in enumerate(sources):
        name = src.stem if src.is_file() else src.name
        videos.append(Video.open(src, name=name, labels=None if labels is None else labels[i],
                                 mask_fn=None if masks is None else masks[i]))
    return videos


def _first_existing(*candidates: Path) -> Path | None:
    return next((c for c in candidates if c.exists()), None)


def _frame_counts(folder: Path) -> list[int]:
    return [len(Video.open(src)) for src in list_videos(folder)]


def _mask_folder_fn(folder: Path, num_frames: int) -> Callable[[int], np.ndarray]:
    """Pixel masks stored as one image per frame (numbered from 1 in the originals)."""
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS),
                   key=lambda p: natural_key(p.name))
    if len(files) != num_frames:
        raise DataError(f"{folder}: {len(files)} mask images for {num_frames} frames")

    def mask(index: int) -> np.ndarray:
        image = cv2.imread(str(files[index]), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise DataError(f"{files[index]}: cannot decode mask image")
        return image > 0

    return mask


# -- UCSD Ped2 --------------------------------------------------------------------------------

def _load_ped2(root: Path, label_file: str | os.PathLike | None) -> Dataset:
    if (root / "UCSDped2").is_dir():
        root = root / "UCSDped2"
    official = (root / "Test").is_dir() and not (root / "testing").is_dir()
    train_dir, test_dir = (root / "Train", root / "Test") if official else (
        root / "training" / "frames", root / "testing" / "frames")
    gt = root / "Test" if official else root / "ground_truth"
    counts = _frame_counts(test_dir)
    path = Path(label_file) if label_file else _first_existing(
        gt / "UCSDped2.m", gt / "frame_labels_ped2.npy", gt / "ped2.mat")
    labels = _ped2_labels(path, counts) if path else None
    mask_root = gt if official else gt / "pixel_masks"
    masks = None
    if mask_root.is_dir():
        mask_dirs = sorted((d for d in mask_root.iterdir() if d.is_dir() and d.name.endswith("_gt")),
                           key=lambda d: natural_key(d.name))
        if len(mask_dirs) == len(counts):
            masks = [_mask_folder_fn(d, n) for d, n in zip(mask_dirs, counts)]
    return Dataset("ped2", root, _open_all(train_dir), _open_all(test_dir, labels, masks),
                   label_source=str(path) if path else "none")


def _ped2_labels(path: Path, counts: list[int]) -> list[np.ndarray]:
    if path.suffix == ".m":
        ranges = L.read_ucsd_m(path)
    elif path.suffix == ".mat":
        ranges = L.read_range_mat(path)
    elif path.suffix == ".npy":
        return L.split_joined(L.read_npy(path), counts, path)
    else:
        raise DataError(f"{path}: unknown label file type (expected .m, .mat or .npy)")
    if len(ranges) != len(counts):
        raise DataError(f"{path}: labels for {len(ranges)} videos but {len(counts)} test videos")
    return [L.ranges_to_labels(r, n, path) for r, n in zip(ranges, counts)]


# -- CUHK Avenue ------------------------------------------------------------------------------

def avenue_test_labels(gt_dir: Path, convention: str = "masks",
                       label_file: Path | None = None) -> tuple[list[np.ndarray], str, list | None]:
    """Avenue test labels in video order: ``(labels, source, mask_files)``.

    ``masks``: from ``testing_label_mask/N_label.mat`` (also gives pixel masks) or the
    identical ``avenue.mat``. ``intervals``: ``frame_labels_avenue.npy`` split by the
    video lengths that the mask files (or ``avenue.mat``) give.
    """
    mask_dir = gt_dir / "testing_label_mask"
    mask_files = None
    if mask_dir.is_dir():
        mask_files = sorted(mask_dir.glob("*_label.mat"), key=lambda p: natural_key(p.name))
    if label_file is not None:
        label_file = Path(label_file)
        if label_file.suffix == ".npy":
            counts = [len(v) for v in avenue_test_labels(gt_dir, "masks")[0]]
            return L.split_joined(L.read_npy(label_file), counts, label_file), f"{label_file}", mask_files
        return list(L.read_avenue_mat(label_file).values()), f"{label_file}", mask_files
    if convention == "masks" or not (gt_dir / "frame_labels_avenue.npy").is_file():
        if (gt_dir / "avenue.mat").is_file():  # identical to the masks, and much faster to read
            return list(L.read_avenue_mat(gt_dir / "avenue.mat").values()), \
                f"{gt_dir / 'avenue.mat'} (masks convention)", mask_files
        if mask_files:
            return [L.read_vol_label(p)[0] for p in mask_files], f"{mask_dir} (masks convention)", mask_files
        if convention == "masks":
            raise DataError(f"{gt_dir}: no Avenue mask labels (testing_label_mask/ or avenue.mat)")
    path = gt_dir / "frame_labels_avenue.npy"
    counts = [len(v) for v in avenue_test_labels(gt_dir, "masks")[0]]
    return L.split_joined(L.read_npy(path), counts, path), f"{path} (intervals convention)", mask_files


def _vol_mask_fn(path: Path) -> Callable[[int], np.ndarray]:
    cache: dict[str, np.ndarray] = {}

    def mask(index: int) -> np.ndarray:
        if "masks" not in cache:  # one video's masks at a time: they are large
            cache.clear()
            cache["masks"] = L.read_vol_label(path)[1]
        return cache["masks"][index]

    return mask


def _load_avenue(root: Path, convention: str, label_file: str | os.PathLike | None = None) -> Dataset:
    official = (root / "testing_videos").is_dir()
    train_dir, test_dir = (root / "training_videos", root / "testing_videos") if official else (
        root / "training" / "frames", root / "testing" / "frames")
    gt = _first_existing(root / "ground_truth_demo", root / "ground_truth") or root / "ground_truth"
    labels, source, mask_files = avenue_test_labels(gt, convention, Path(label_file) if label_file else None)
    masks = [_vol_mask_fn(p) for p in mask_files] if mask_files and len(mask_files) == len(labels) else None
    return Dataset("avenue", root, _open_all(train_dir), _open_all(test_dir, labels, masks), label_source=source)


# -- ShanghaiTech Campus ----------------------------------------------------------------------

def shanghaitech_test_labels(root: Path, names: Sequence[str] | None = None,
                             counts: Sequence[int] | None = None) -> tuple[dict[str, np.ndarray], str]:
    """Per-video labels from ``test_frame_mask/<video>.npy``, else the joined npy split by ``counts``."""
    mask_dir = _first_existing(root / "testing" / "test_frame_mask", root / "ground_truth" / "test_frame_mask",
                               root / "test_frame_mask")
    if mask_dir is not None:  # counts are only needed to split a joined file
        files = sorted(mask_dir.glob("*.npy"), key=lambda p: natural_key(p.name))
        if not files:
            raise DataError(f"{mask_dir}: no <video>.npy label files")
        return {p.stem: L.read_npy(p) for p in files}, str(mask_dir)
    joined = _first_existing(root / "ground_truth" / "frame_labels_shanghai.npy", root / "frame_labels_shanghai.npy")
    if joined is None or names is None or counts is None:
        raise DataError(f"{root}: no ShanghaiTech labels (test_frame_mask/ or frame_labels_shanghai.npy)")
    return dict(zip(names, L.split_joined(L.read_npy(joined), counts, joined))), str(joined)


def _load_shanghaitech(root: Path, label_file: str | os.PathLike | None) -> Dataset:
    train_dir = _first_existing(root / "training" / "videos", root / "training" / "frames") or root / "training" / "videos"
    test_dir = root / "testing" / "frames"
    sources = list_videos(test_dir)
    names = [s.stem if s.is_file() else s.name for s in sources]
    if label_file:
        counts = [len(Video.open(s)) for s in sources]
        by_name = dict(zip(names, L.split_joined(L.read_npy(label_file), counts, label_file)))
        source = str(label_file)
    else:
        by_name, source = shanghaitech_test_labels(root, names, [len(Video.open(s)) for s in sources])
    missing = [n for n in names if n not in by_name]
    if missing:
        raise DataError(f"{root}: no labels for test videos {', '.join(missing[:5])}")
    return Dataset("shanghaitech", root, _open_all(train_dir),
                   _open_all(test_dir, [by_name[n] for n in names]), label_source=source)


# -- a user's own folder ----------------------------------------------------------------------

def read_interval_csv(path: Path, counts: dict[str, int]) -> dict[str, np.ndarray]:
    """CSV ``video,start,end`` rows (0-based inclusive abnormal intervals) -> labels per video."""
    out = {name: np.zeros(n, dtype=np.uint8) for name, n in counts.items()}
    if not path.is_file():
        raise DataError(f"{path}: labels file does not exist")
    rows = 0
    with open(path, newline="") as handle:
        for line_no, row in enumerate(csv.reader(handle), start=1):
            if not row or row[0].strip().lower() == "video":
                continue
            rows += 1
            try:
                video, start, end = row[0].strip(), int(row[1]), int(row[2])
            except (IndexError, ValueError):
                raise DataError(f"{path}: line {line_no} is not 'video,start,end'") from None
            if video not in out:
                raise DataError(f"{path}: line {line_no} names unknown video {video!r}")
            if not 0 <= start <= end < counts[video]:
                raise DataError(f"{path}: line {line_no}: interval {start}..{end} outside 0..{counts[video] - 1}")
            out[video][start:end + 1] = 1
    if rows == 0:  # read as "no anomalies", every frame would count as normal
        raise DataError(f"{path}: no label rows (video,start,end); a labels file must name the abnormal intervals")
    return out


def _load_folder(root: Path, label_file: str | os.PathLike | None) -> Dataset:
    train_dir = _first_existing(root / "training", root / "train") or root / "training"
    test_dir = _first_existing(root / "testing", root / "test")
    train = _open_all(train_dir)
    test: list[Video] = _open_all(test_dir) if test_dir else []
    source = "none"
    if label_file:
        by_name = read_interval_csv(Path(label_file), {v.name: len(v) for v in test})
        source = str(label_file)
    elif (root / "labels").is_dir():
        by_name = {p.stem: L.read_npy(p) for p in (root / "labels").glob("*.npy")}
        source = str(root / "labels")
    else:
        by_name = {}
    unlabelled = [video.name for video in test if video.name not in by_name]
    if by_name and unlabelled:  # evaluating only the labelled ones would be a different test set
        raise DataError(f"{source}: no labels for test video(s) {', '.join(unlabelled[:5])}"
                        f"{' and more' if len(unlabelled) > 5 else ''} (labels cover {len(test) - len(unlabelled)} "
                        f"of {len(test)})")
    for video in test:
        if video.name in by_name:
            labels = by_name[video.name]
            if len(labels) != len(video):
                raise DataError(f"{source}: {len(labels)} labels for video {video.name} with {len(video)} frames")
            video.labels = labels.astype(np.uint8)
    return Dataset("folder", root, train, test, label_source=source)
