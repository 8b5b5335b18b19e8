"""Boxes: every detector returns, per frame, a float32 ``(k, 6)`` array ``[x1, y1, x2, y2, score, class]``
in pixel coordinates of that frame, clipped to it, without empty or sub-``min_area`` boxes."""

from __future__ import annotations

import numpy as np

BOX_COLUMNS = 6  # x1, y1, x2, y2, score, class


def empty_boxes() -> np.ndarray:
    return np.zeros((0, BOX_COLUMNS), np.float32)


def finalize_boxes(boxes: np.ndarray, height: int, width: int, min_area: float = 0.0) -> np.ndarray:
    """Clip ``(k, 4+)`` boxes to a ``height x width`` frame; drop empty and tiny ones.

    Boxes with only 4 columns get score 1 and class -1.  Always returns float32 (k, 6).
    """
    boxes = np.asarray(boxes, np.float32)
    if boxes.size == 0:
        return empty_boxes()
    boxes = boxes.reshape(-1, boxes.shape[-1])
    if boxes.shape[1] == 4:
        extra = np.tile(np.array([[1.0, -1.0]], np.float32), (len(boxes), 1))
        boxes = np.hstack([boxes, extra])
    out = boxes[:, :BOX_COLUMNS].copy()
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    w, h = out[:, 2] - out[:, 0], out[:, 3] - out[:, 1]
    keep = (w > 0) & (h > 0) & (w * h >= max(min_area, 0)) & np.isfinite(out[:, :4]).all(axis=1)
    return out[keep]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``(n, 4+)`` and ``(m, 4+)`` boxes -> ``(n, m)``."""
    a, b = np.asarray(a, np.float32)[:, :4], np.asarray(b, np.float32)[:, :4]
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def merge_boxes(detected: np.ndarray, motion: np.ndarray, merge_iou: float) -> np.ndarray:
    """Detector boxes plus the motion boxes whose best IoU with them is below ``merge_iou``."""
    if len(motion) == 0:
        return detected
    if len(detected) == 0:
        return motion
    novel = box_iou(motion, detected).max(axis=1) < merge_iou
    return np.vstack([detected, motion[novel]])
