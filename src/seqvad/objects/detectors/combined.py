"""``yolox+motion``: YOLOX boxes plus the motion boxes that no YOLOX box already covers
(objects of classes COCO lacks, and people too small for YOLOX)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from seqvad.objects.detectors.base import Detector, register
from seqvad.objects.detectors.boxes import merge_boxes
from seqvad.objects.detectors.keyframes import BoxCarrier, KeyframeSchedule
from seqvad.objects.detectors.motion import MotionDetector, build_motion
from seqvad.objects.detectors.yolox import YoloxDetector, build_yolox


@register
class CombinedDetector(Detector):
    """An appearance detector plus a motion detector (objects of classes the detector misses)."""

    name = "yolox+motion"

    @classmethod
    def from_config(cls, detector_cfg, video_name=None, boxes=None, threads=None) -> "CombinedDetector":
        return cls(build_yolox(detector_cfg.get("yolox", {}), threads), build_motion(detector_cfg.get("motion", {})),
                   detector_cfg.get("merge_iou", 0.3))

    @classmethod
    def cache_fields(cls, detector_cfg, boxes_file=None) -> dict:
        return {**YoloxDetector.cache_fields(detector_cfg), **MotionDetector.cache_fields(detector_cfg),
                "merge_iou": detector_cfg.get("merge_iou")}

    def __init__(self, detector: Detector, motion: MotionDetector, merge_iou: float = 0.3):
        self.detector, self.motion, self.merge_iou = detector, motion, float(merge_iou)
        self.chunk = detector.chunk
        self.group_multiple = detector.group_multiple
        # YOLOX's keyframes decided here, with the motion masks (``detector.yolox.gate``), and its
        # boxes carried between them, moved by the motion blobs or not (``detector.yolox.carry``)
        keyed = isinstance(detector, YoloxDetector)
        self.schedule = KeyframeSchedule(detector.stride, detector.gate) if keyed else None
        self.carrier = BoxCarrier(detector.carry) if keyed else None

    @property
    def warmup_frames(self) -> int:
        return self.motion.warmup_frames

    def reset(self) -> None:
        self.detector.reset()
        self.motion.reset()
        if self.schedule is not None:
            self.schedule.reset()
            self.carrier.reset()

    def prime(self, frames) -> None:
        self.motion.prime(frames)

    def detect(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        # one pass over the video (detect_video): each frame is decoded once for both
        if self.schedule is None:
            return [merge_boxes(d, m, self.merge_iou)
                    for d, m in zip(self.detector.detect(frames), self.motion.detect(frames))]
        motion, masks = self.motion.detect_masks(frames)
        gated = self.schedule.gate > 0
        keys = [i for i, mask in enumerate(masks) if self.schedule.is_key(mask if gated else None)]
        found = dict(zip(keys, self.detector.run_network([frames[i] for i in keys])))
        return [merge_boxes(self.carrier.step(found.get(i), motion[i], frame.shape[:2]), motion[i], self.merge_iou)
                for i, frame in enumerate(frames)]
