"""``seqvad boxes convert``: a boxes file into a format that loads without unpickling.

The reference boxes shipped with Ped2 / Avenue (HF2VAD layout) are ``.npy`` object arrays, i.e.
pickles. Converting them once, with an explicit ``--allow-pickle`` for that file, gives

* ``.npz``: ``boxes`` (M, 6: x1, y1, x2, y2, score, class) and ``counts`` (boxes per frame, all
  videos' frames joined in order), the same layout as the ``.npy`` and loss-free (float32 as read);
* ``.csv``: ``video,frame,x1,y1,x2,y2,score,class`` rows, which needs the split's video names
  and frame counts (``videos``).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

import numpy as np

from seqvad.atomic import replacing, write_bytes
from seqvad.errors import DataError
from seqvad.objects.detectors.boxes import BOX_COLUMNS
from seqvad.objects.detectors.precomputed import NPZ_FORMAT, _read_npz_boxes, read_npy_boxes


def _six_columns(boxes: np.ndarray) -> np.ndarray:
    """(k, 4..6) -> (k, 6): a missing score is 1 and a missing class -1, as the loaders read them."""
    boxes = np.asarray(boxes, np.float32)
    if boxes.size == 0:
        return np.zeros((0, BOX_COLUMNS), np.float32)
    boxes = boxes.reshape(-1, boxes.shape[-1])
    if boxes.shape[1] == 4:
        boxes = np.hstack([boxes, np.tile(np.array([[1.0, -1.0]], np.float32), (len(boxes), 1))])
    return boxes[:, :BOX_COLUMNS]


def read_joined_boxes(source: Path, allow_pickle: bool) -> list[np.ndarray]:
    suffix = source.suffix.lower()
    if not source.is_file():
        raise DataError(f"{source}: boxes file does not exist")
    if suffix == ".npy":
        return read_npy_boxes(source, allow_pickle)
    if suffix == ".npz":
        return _read_npz_boxes(source)
    raise DataError(f"{source}: convert reads a .npy object array or a seqvad .npz")


def convert_boxes(source: str | Path, target: str | Path, allow_pickle: bool = False,
                  videos: Sequence[tuple[str, int]] | None = None) -> dict:
    """Write ``source``'s boxes to ``target`` (.npz, or .csv given ``videos``); returns counts."""
    source, target = Path(source), Path(target)
    if target.suffix.lower() not in (".npz", ".csv"):
        raise DataError(f"{target}: the converted file must be .npz or .csv")
    if target.resolve() == source.resolve():
        raise DataError(f"{target}: the converted file must not replace its source")
    frames = [_six_columns(b) for b in read_joined_boxes(source, allow_pickle)]
    if target.suffix.lower() == ".npz":
        boxes = np.concatenate(frames) if frames else np.zeros((0, BOX_COLUMNS), np.float32)
        counts = np.array([len(b) for b in frames], np.int64)
        with replacing(target) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, format=np.array(NPZ_FORMAT), boxes=boxes, counts=counts)
        return {"frames": len(frames), "boxes": int(counts.sum())}
    if videos is None:
        raise DataError(f"{target}: a CSV names each box's video: pass --dataset and --root (and --split) "
                        "so the frames can be given their videos, or write a .npz")
    expected = sum(n for _, n in videos)
    if expected != len(frames):
        raise DataError(f"{source}: boxes for {len(frames)} frames but the {len(videos)} videos have {expected}")
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["video", "frame", "x1", "y1", "x2", "y2", "score", "class"])
    start = 0
    for name, count in videos:
        for frame in range(count):
            # repr-exact float32 values: converting loses nothing
            writer.writerows([name, frame, *(f"{float(v):.9g}" for v in row)] for row in frames[start + frame])
        start += count
    write_bytes(target, text.getvalue().encode())
    return {"frames": len(frames), "boxes": sum(len(b) for b in frames)}
