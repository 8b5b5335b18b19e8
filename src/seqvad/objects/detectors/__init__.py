"""Object detectors: frames in, boxes out (``build_detector`` reads the config section ``detector``).

* ``motion`` (:mod:`.motion`): OpenCV background subtraction (MOG2 / KNN) or frame differencing.
* ``yolox`` (:mod:`.yolox`): the bundled YOLOX-Nano COCO model run by onnxruntime on the CPU.
* ``yolox+motion`` (:mod:`.combined`): YOLOX boxes plus the motion boxes no YOLOX box covers.
* ``precomputed`` (:mod:`.precomputed`): boxes from a file (see :func:`load_box_file`).

:mod:`.base` holds the protocol and :data:`REGISTRY`; :mod:`.boxes` the box layout and helpers.
"""

from seqvad.objects.detectors.base import (REGISTRY, Detector, build_detector, default_threads, detector_class,
                                           detector_names, file_sha256, register, seed_opencv_rng)
from seqvad.objects.detectors.boxes import BOX_COLUMNS, box_iou, empty_boxes, finalize_boxes, merge_boxes
from seqvad.objects.detectors.motion import MotionDetector, build_motion
from seqvad.objects.detectors.yolox import (COCO_CLASSES, DEFAULT_INPUT_SIZE, DEFAULT_STRIDE, YoloxDetector,
                                            build_yolox, bundled_model_path, letterbox)
from seqvad.objects.detectors.combined import CombinedDetector  # noqa: E402  (after yolox and motion)
from seqvad.objects.detectors.precomputed import PrecomputedBoxes, load_box_file

__all__ = [
    "BOX_COLUMNS", "COCO_CLASSES", "DEFAULT_INPUT_SIZE", "DEFAULT_STRIDE", "REGISTRY", "CombinedDetector", "Detector",
    "MotionDetector", "PrecomputedBoxes", "YoloxDetector", "box_iou", "build_detector", "build_motion", "build_yolox",
    "bundled_model_path", "default_threads", "detector_class", "detector_names", "empty_boxes", "file_sha256",
    "finalize_boxes", "letterbox", "load_box_file", "merge_boxes", "register", "seed_opencv_rng",
]
