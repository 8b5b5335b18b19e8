"""Which frames run the appearance network (keyframes), and the boxes the frames between them get.

``yolox+motion`` runs the motion detector on every frame and YOLOX on keyframes only.  Two parts,
each a pure function of the frames seen so far (so the boxes do not depend on how frames are
grouped into ``detect`` calls, and ``benchmarks/keyframes.py`` replays them exactly on cached
network boxes):

* :class:`KeyframeSchedule` decides which frames are keyframes: every ``stride``-th frame, or, with
  ``gate > 0``, a frame whose motion mask differs from the last keyframe's by more than ``gate``
  (``1 - IoU`` of the two foreground masks), and at the latest ``stride`` frames after it;
* :class:`BoxCarrier` gives a frame between keyframes the last keyframe's boxes, either unchanged
  (``carry: copy``) or each moved by the displacement of the motion blob it overlaps (``carry:
  motion``: a cheap tracker by IoU association of motion blobs between consecutive frames).
"""

from __future__ import annotations

import numpy as np

from seqvad.errors import ConfigError
from seqvad.objects.detectors.boxes import box_iou, empty_boxes, finalize_boxes

CARRY_MODES = ("copy", "motion")
# a box belongs to the motion blob it overlaps most when that IoU reaches ASSOCIATE_IOU; the blob is
# followed to the next frame's blob it overlaps most when that IoU reaches FOLLOW_IOU and their areas
# differ by at most AREA_RATIO (a walker moves 1-3 px per frame: a blob overlaps its next self far
# more than that; a blob that merged with or split from another's is not followed). Ped2 training
# split, 576x384, stride 4 / 8, recall at IoU 0.3 of yolox+motion: 0.908 / 0.880 with FOLLOW_IOU 0.3
# and no area test, 0.925 / 0.906 with these (copying: 0.926 / 0.897)
ASSOCIATE_IOU = 0.2
FOLLOW_IOU = 0.5
AREA_RATIO = 1.25


def mask_change(mask: np.ndarray | None, reference: np.ndarray | None) -> float:
    """``1 - IoU`` of two boolean foreground masks (0 when both are empty, 1 when one is absent)."""
    if mask is None or reference is None:
        return 1.0
    union = np.count_nonzero(mask | reference)
    if union == 0:
        return 0.0
    return 1.0 - np.count_nonzero(mask & reference) / union


class KeyframeSchedule:
    """Decides, frame by frame in order, whether the network runs (``reset`` at each video).

    ``gate == 0``: frames 0, stride, 2 x stride, ...  ``gate > 0``: frame 0, then a frame whose
    motion mask changed by more than ``gate`` since the last keyframe's, or ``stride`` frames after
    it, whichever comes first.
    """

    def __init__(self, stride: int = 1, gate: float = 0.0):
        self.stride, self.gate = int(stride), float(gate)
        if self.stride < 1:
            raise ConfigError(f"detector.yolox.stride: {stride!r} must be a positive integer")
        if not 0.0 <= self.gate <= 1.0:
            raise ConfigError(f"detector.yolox.gate: {gate!r} must be in [0, 1] (0: off)")
        self.reset()

    def reset(self) -> None:
        self._since = None  # frames since the last keyframe (None: none yet in this video)
        self._key_mask: np.ndarray | None = None
        self.keyframes = 0  # counted for the benchmarks
        self.frames = 0

    def is_key(self, mask: np.ndarray | None = None) -> bool:
        """Whether this frame (the next one, with its motion mask when gating) runs the network."""
        self.frames += 1
        due = self._since is None or self._since + 1 >= self.stride
        if not due and self.gate > 0:
            due = mask_change(mask, self._key_mask) > self.gate
        if due:
            self._since, self.keyframes = 0, self.keyframes + 1
            if self.gate > 0:
                self._key_mask = None if mask is None else mask.copy()
        else:
            self._since += 1
        return due


class BoxCarrier:
    """The network's boxes for every frame: a keyframe's own, the last keyframe's (moved) otherwise."""

    def __init__(self, carry: str = "copy"):
        if carry not in CARRY_MODES:
            raise ConfigError(f"detector.yolox.carry: {carry!r} is not one of {', '.join(CARRY_MODES)}")
        self.carry = carry
        self.reset()

    def reset(self) -> None:
        self._boxes = empty_boxes()
        self._motion: np.ndarray | None = None  # the previous frame's motion boxes

    def step(self, network_boxes: np.ndarray | None, motion_boxes: np.ndarray | None = None,
             shape: tuple[int, int] | None = None) -> np.ndarray:
        """This frame's boxes: ``network_boxes`` on a keyframe, else the carried ones (``motion_boxes``:
        this frame's motion blobs, needed by ``carry: motion``; moved boxes are clipped to ``shape``,
        the frame's height and width)."""
        if network_boxes is not None:
            self._boxes = np.asarray(network_boxes, np.float32)
        elif self.carry == "motion" and len(self._boxes):
            moved = moved_by_blobs(self._boxes, self._motion, motion_boxes)
            if moved is not self._boxes and shape is not None:
                moved = finalize_boxes(moved, shape[0], shape[1])
            self._boxes = moved
        self._motion = motion_boxes
        return self._boxes.copy()


def _centres(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, :2] + boxes[:, 2:4]) / 2


def moved_by_blobs(boxes: np.ndarray, before: np.ndarray | None, after: np.ndarray | None) -> np.ndarray:
    """Each box moved by the displacement of its motion blob from ``before`` to ``after`` (the blob it
    overlaps most in ``before``, followed to the blob of ``after`` that overlaps that one most, of
    about the same area);
    boxes without such a blob stay where they are.  Box size is kept: blobs grow and shrink with
    limbs and shadows, the person inside does not."""
    if before is None or after is None or not len(before) or not len(after) or not len(boxes):
        return boxes
    own = box_iou(boxes, before)
    blob = own.argmax(axis=1)
    follow = box_iou(before, after)
    nxt = follow.argmax(axis=1)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    ratio = area(after[nxt[blob]]) / np.maximum(area(before[blob]), 1e-6)
    ok = ((own[np.arange(len(boxes)), blob] >= ASSOCIATE_IOU) & (follow[blob, nxt[blob]] >= FOLLOW_IOU)
          & (ratio <= AREA_RATIO) & (ratio >= 1 / AREA_RATIO))
    if not ok.any():
        return boxes
    shift = _centres(after[nxt[blob]]) - _centres(before[blob])
    out = boxes.copy()
    out[ok, 0:4] += np.tile(shift[ok], 2)
    return out
