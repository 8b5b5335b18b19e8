"""Region-level metrics RBDC and TBDC (Ramachandra and Jones, "Street Scene", WACV 2020).

Frame AUC rewards a frame whose worst object scores high even when that object is not the
anomaly. The region- and track-based detection criteria ask *where*: a scored box counts only
when it overlaps an abnormal region of its frame.

* Ground-truth **regions** are the boxes of the connected components (8-connected) of each
  frame's pixel mask; ground-truth **tracks** link them across consecutive frames
  (:func:`link_tracks`), since Ped2 ships masks, not the paper's track annotation.
* A detection (a box and its anomaly score) kept at threshold ``t`` (score >= ``t``) is a
  **true positive** when its box IoU with some ground-truth region of the same frame is >=
  ``beta``; every region so matched is **detected**. A kept detection that matches no region
  is a **false positive**, whether or not others already found the region it would have
  matched (a second box on a found region is not penalised, as in the paper).
* Region-based detection rate (RBDR) = detected regions / all regions. Track-based detection
  rate (TBDR) = tracks with at least a fraction ``alpha`` of their regions detected / all tracks.
  False-positive rate = false positives / all test frames (normal frames included).
* Sweeping ``t`` over every distinct score traces detection rate against false positives per
  frame from (0, 0); RBDC and TBDC are the areas under these curves for false-positive rates
  0..1, so a perfect detector scores 1 and one that never finds a region scores 0. Where the
  sweep stops short of 1 false positive per frame, the last rate is held to 1 (the lowest
  threshold keeps every box); the first point beyond 1 is dropped, not interpolated.

Everything is numpy/scipy and vectorised over boxes: Ped2's 2010 test frames and ~35k boxes
take well under a second after the masks are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
from scipy import ndimage

from seqvad.errors import DataError

BETA = 0.1   # IoU for a detection to hit a region (the paper's value)
ALPHA = 0.1  # fraction of a track's regions that must be hit for the track to count
MIN_AREA = 10  # mask components smaller than this many pixels are annotation specks, not regions
_EIGHT = np.ones((3, 3), bool)


# -- ground truth -------------------------------------------------------------------------------

def mask_regions(mask: np.ndarray, min_area: int = MIN_AREA) -> np.ndarray:
    """``(k, 4)`` float boxes ``x1, y1, x2, y2`` (x2, y2 exclusive) of the 8-connected components
    of a boolean ``(H, W)`` mask with at least ``min_area`` pixels, in component order."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise DataError(f"a pixel mask must be 2-D (H, W), got shape {mask.shape}")
    labelled, count = ndimage.label(mask > 0, structure=_EIGHT)
    if count == 0:
        return np.zeros((0, 4), np.float64)
    areas = np.bincount(labelled.ravel(), minlength=count + 1)[1:]
    rows = [(s[1].start, s[0].start, s[1].stop, s[0].stop)
            for s, area in zip(ndimage.find_objects(labelled), areas) if area >= min_area]
    return np.array(rows, np.float64).reshape(-1, 4)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``a[i]`` and ``b[i]`` row by row (continuous coordinates, no +1)."""
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = w * h
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter, dtype=np.float64), where=union > 0)


def link_tracks(frame_boxes: Sequence[np.ndarray], start: int = 0) -> list[np.ndarray]:
    """Track ids (from ``start``) for the regions of each frame of one video.

    Rule: between frames ``t`` and ``t + 1``, pairs of regions are linked greedily by decreasing
    box IoU, each region at most once per side, when their boxes overlap (IoU > 0); a region
    of ``t + 1`` left unlinked starts a new track, and a frame without regions ends every track.
    So a track is one chain of regions, one per frame, as an annotator would draw it; an object
    whose mask splits in two continues in the better-overlapping part."""
    ids: list[np.ndarray] = []
    next_id = start
    previous = np.zeros((0, 4))
    for boxes in frame_boxes:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        current = np.full(len(boxes), -1, np.int64)
        if len(previous) and len(boxes):
            i, j = np.meshgrid(np.arange(len(previous)), np.arange(len(boxes)), indexing="ij")
            i, j = i.ravel(), j.ravel()
            iou = box_iou(previous[i], boxes[j])
            used_prev, used_cur = set(), set()
            for k in np.argsort(-iou, kind="stable"):
                if iou[k] <= 0:
                    break
                if i[k] not in used_prev and j[k] not in used_cur:
                    current[j[k]] = ids[-1][i[k]]
                    used_prev.add(i[k])
                    used_cur.add(j[k])
        fresh = current < 0
        current[fresh] = np.arange(next_id, next_id + fresh.sum())
        next_id += int(fresh.sum())
        ids.append(current)
        previous = boxes
    return ids


@dataclass(frozen=True)
class Truth:
    """Ground-truth regions of a test set, one row each, and its frame count.

    ``video`` indexes the caller's video list (the cube store's order), ``frame`` counts from 0
    like the frames, ``track`` runs 0..tracks-1 over all videos."""

    video: np.ndarray
    frame: np.ndarray
    boxes: np.ndarray
    track: np.ndarray
    num_frames: int

    @property
    def regions(self) -> int:
        return len(self.frame)

    @property
    def tracks(self) -> int:
        return int(self.track.max()) + 1 if len(self.track) else 0


def truth_from_masks(videos: Iterable[tuple[int, Callable[[int], np.ndarray]]],
                     min_area: int = MIN_AREA) -> Truth:
    """Regions and tracks from pixel masks: ``videos`` yields ``(num_frames, mask_fn)`` per video,
    in the order that detections' video indices follow; ``mask_fn(i)`` is frame ``i``'s mask."""
    parts, total, next_track = [], 0, 0
    for v, (num_frames, mask_fn) in enumerate(videos):
        per_frame = [mask_regions(mask_fn(i), min_area) for i in range(num_frames)]
        tracks = link_tracks(per_frame, start=next_track)
        counts = np.array([len(b) for b in per_frame], np.int64)
        if counts.sum():
            parts.append((np.full(counts.sum(), v), np.repeat(np.arange(num_frames), counts),
                          np.concatenate(per_frame), np.concatenate(tracks)))
            next_track = int(parts[-1][3].max()) + 1
        total += num_frames
    if not parts:
        return Truth(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, np.int64), total)
    video, frame, boxes, track = (np.concatenate(column) for column in zip(*parts))
    return Truth(video.astype(np.int64), frame.astype(np.int64), boxes, track.astype(np.int64), total)


# -- matching and curves ----------------------------------------------------------------------

def _check_detections(video, frame, boxes, scores) -> tuple[np.ndarray, ...]:
    video, frame = np.asarray(video, np.int64).ravel(), np.asarray(frame, np.int64).ravel()
    boxes, scores = np.asarray(boxes, np.float64), np.asarray(scores, np.float64).ravel()
    n = len(scores)
    if boxes.shape != (n, 4) or len(video) != n or len(frame) != n:
        raise DataError(f"detections: {len(video)} videos, {len(frame)} frames, boxes of shape "
                        f"{boxes.shape} and {n} scores (expected N, N, (N, 4), N)")
    if not np.isfinite(scores).all() or not np.isfinite(boxes).all():
        raise DataError("detections: scores and boxes must be finite")
    if (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
        raise DataError("detections: boxes must be x1, y1, x2, y2 with x2 >= x1 and y2 >= y1")
    return video, frame, boxes, scores


def hit_scores(truth: Truth, video, frame, boxes, scores, beta: float = BETA) -> tuple[np.ndarray, np.ndarray]:
    """``(region_scores, false_positive_scores)``: each region's best score among the detections
    of its frame with IoU >= ``beta`` (-inf when none), and the scores of detections hitting no
    region. A region is detected at threshold ``t`` iff its score >= ``t``; so is each curve point."""
    video, frame, boxes, scores = _check_detections(video, frame, boxes, scores)
    if not 0 < beta <= 1:
        raise DataError(f"beta = {beta}: the IoU threshold must be in (0, 1]")
    stride = int(max(frame.max(initial=0), truth.frame.max(initial=0))) + 1
    gt_key = truth.video * stride + truth.frame
    order = np.argsort(gt_key, kind="stable")
    sorted_key = gt_key[order]
    det_key = video * stride + frame
    lo = np.searchsorted(sorted_key, det_key, "left")
    count = np.searchsorted(sorted_key, det_key, "right") - lo
    det = np.repeat(np.arange(len(scores)), count)  # one row per (detection, region of its frame)
    offset = np.arange(len(det)) - np.repeat(np.cumsum(count) - count, count)
    gt = order[np.repeat(lo, count) + offset]
    hit = box_iou(boxes[det], truth.boxes[gt]) >= beta
    region_scores = np.full(truth.regions, -np.inf)
    np.maximum.at(region_scores, gt[hit], scores[det[hit]])
    hits_any = np.bincount(det[hit], minlength=len(scores)) > 0
    return region_scores, scores[~hits_any]


def track_scores(truth: Truth, region_scores: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Each track's detection threshold: the ``k``-th best score of its regions, ``k`` the fewest
    regions that make a fraction >= ``alpha`` of the track (-inf when never reached)."""
    if not 0 < alpha <= 1:
        raise DataError(f"alpha = {alpha}: the track fraction must be in (0, 1]")
    if truth.tracks == 0:
        return np.zeros(0)
    length = np.bincount(truth.track, minlength=truth.tracks)
    # smallest k with k / length >= alpha; the tolerance keeps 0.1 * 30 from rounding up to 4
    need = np.maximum(1, np.ceil(alpha * length - 1e-9)).astype(np.int64)
    order = np.lexsort((-region_scores, truth.track))  # by track, best score first
    first = np.cumsum(length) - length
    return region_scores[order[first + need - 1]]


def detection_curves(truth: Truth, video, frame, boxes, scores, beta: float = BETA,
                     alpha: float = ALPHA) -> dict[str, np.ndarray]:
    """False positives per frame and the region and track detection rates at every distinct
    threshold, from the highest down, after the starting point (0, 0, 0)."""
    if truth.regions == 0:
        raise DataError("no ground-truth regions: the masks are empty, so RBDC/TBDC are undefined")
    if truth.num_frames <= 0:
        raise DataError("no test frames to count false positives over")
    region, false_pos = hit_scores(truth, video, frame, boxes, scores, beta)
    track = track_scores(truth, region, alpha)
    events = np.concatenate([region, false_pos, track])
    thresholds = np.unique(events[np.isfinite(events)])[::-1]

    def at_least(values: np.ndarray) -> np.ndarray:  # how many of values are >= each threshold
        ordered = np.sort(values)
        return len(ordered) - np.searchsorted(ordered, thresholds, "left")

    zero = np.zeros(1)
    return {"thresholds": np.concatenate([[np.inf], thresholds]),
            "fp_per_frame": np.concatenate([zero, at_least(false_pos) / truth.num_frames]),
            "rbdr": np.concatenate([zero, at_least(region) / truth.regions]),
            "tbdr": np.concatenate([zero, at_least(track) / truth.tracks])}


def area_to(fp_per_frame: np.ndarray, rate: np.ndarray, max_fp: float = 1.0) -> float:
    """Area under ``rate`` against false positives per frame on [0, max_fp], divided by max_fp;
    the last rate at or below max_fp is held to max_fp."""
    if not max_fp > 0:
        raise DataError(f"max_fp = {max_fp}: the false-positive range must be positive")
    keep = fp_per_frame <= max_fp
    x = np.append(fp_per_frame[keep], max_fp)
    y = np.append(rate[keep], rate[keep][-1])
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / max_fp)


def region_metrics(truth: Truth, video, frame, boxes, scores, beta: float = BETA, alpha: float = ALPHA,
                   max_fp: float = 1.0) -> dict:
    """RBDC and TBDC (areas to ``max_fp`` false positives per frame) with what they were
    computed on; ``video``/``frame``/``boxes``/``scores`` are one row per detected object."""
    curves = detection_curves(truth, video, frame, boxes, scores, beta, alpha)
    fp, rbdr, tbdr = curves["fp_per_frame"], curves["rbdr"], curves["tbdr"]
    return {"rbdc": area_to(fp, rbdr, max_fp), "tbdc": area_to(fp, tbdr, max_fp),
            "regions": truth.regions, "tracks": truth.tracks, "frames": truth.num_frames,
            "detections": int(len(np.asarray(scores).ravel())), "beta": beta, "alpha": alpha,
            "max_fp_per_frame": max_fp,
            "max_rbdr": float(rbdr[-1]), "max_tbdr": float(tbdr[-1])}
