"""Object detectors: frames in, boxes out.

Every detector returns, per frame, a float32 array of shape ``(k, 6)`` holding
``[x1, y1, x2, y2, score, class]`` in pixel coordinates of that frame, clipped to
the frame, with zero-size and sub-``min_area`` boxes removed.  ``class`` is the
COCO-80 index for YOLOX boxes, ``-1`` for motion boxes and the file's value (or
``-1``) for precomputed boxes.

Detectors (``build_detector`` reads the config section ``detector``):

* ``yolox``: the bundled YOLOX-Nano COCO model run by onnxruntime on the CPU.
* ``motion``: OpenCV background subtraction (MOG2 / KNN) or frame differencing.
* ``yolox+motion``: YOLOX boxes plus the motion boxes that no YOLOX box already covers
  (catches objects of classes COCO lacks and people too small for YOLOX).
* ``precomputed``: boxes from a file (see :func:`load_box_file`).
"""

from __future__ import annotations

import csv
import functools
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from seqvad.errors import ConfigError, DataError

log = logging.getLogger(__name__)

BOX_COLUMNS = 6  # x1, y1, x2, y2, score, class

COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)


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


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class Detector:
    """Interface: ``detect(frames)`` for a chunk of consecutive frames, ``detect_video(video)``."""

    name = "detector"
    chunk = 8  # frames handed to ``detect`` at once by ``detect_video``

    def reset(self) -> None:
        """Forget state kept between frames (called at the start of every video)."""

    def detect(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def detect_video(self, video) -> list[np.ndarray]:
        """Boxes of every frame of ``video``, in order."""
        self.reset()
        return self._detect_chunks(video)

    def _detect_chunks(self, video) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        n = len(video)
        for start in range(0, n, self.chunk):
            frames = [video.frame(i) for i in range(start, min(n, start + self.chunk))]
            out += self.detect(frames)
        return out


# --------------------------------------------------------------------------------------
# YOLOX-Nano (onnxruntime)
# --------------------------------------------------------------------------------------

# Default YOLOX input [width, height] and keyframe stride, chosen on the Ped2 TRAINING split only
# (`benchmarks/detect.py --size-sweep`, results/detect_ped2.json "input_size_selection"): recall
# of ped2_bboxes_train.npy at IoU 0.3, yolox+motion, and CPU ms per network frame on one core:
#   416x288 0.865 22.5 | 480x320 0.891 24.6 | 544x384 0.928 35.8 | 576x384 0.930 37.0
#   640x416 0.942 44.2 | 832x576 0.980 79.8
# With stride 2 (recall -0.001) the network's cost per video frame halves: 576x384 is the
# largest input whose whole yolox+motion pipeline keeps >= 60 frames/s on 2 cores with a
# margin (640x416 would leave < 10%); it is exactly 1.6x a 360x240 frame (no padding).
DEFAULT_INPUT_SIZE = (576, 384)
DEFAULT_STRIDE = 2


def bundled_model_path() -> Path:
    """YOLOX-Nano shipped as package data (``seqvad/assets``; origin and licence beside it)."""
    return Path(__file__).resolve().parent.parent / "assets" / "yolox_nano.onnx"


@functools.lru_cache(maxsize=8)
def _model_bytes(path: str, mtime_ns: int, width: int, height: int, symbolic_batch: bool) -> bytes:
    """The ONNX model re-shaped for a ``width x height`` input (cached: parsing costs ~50 ms).

    onnxruntime refuses inputs whose shape differs from the graph's declared dims, so the
    dims are edited with the ``onnx`` package: stale ``value_info`` shapes are removed, the
    input gets the new H and W, outputs become symbolic.  For batching, the three
    ``Reshape`` targets ``[1, 85, -1]`` baked into the export become ``[0, 85, -1]``
    (0 = copy the batch dim).
    """
    data = Path(path).read_bytes()
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:  # pragma: no cover - onnx ships with the dev requirements
        raise ConfigError("detector.yolox.input_size: changing the YOLOX input size needs the "
                          "'onnx' package (pip install onnx)") from None
    try:
        model = onnx.load_from_string(data)
        inputs = model.graph.input[0].type.tensor_type.shape.dim
        if len(inputs) != 4 or len(model.graph.output) != 1:
            raise ValueError("expected one NCHW input and one output")
    except Exception as exc:  # protobuf raises its own DecodeError
        raise DataError(f"{path}: not a valid YOLOX ONNX model ({type(exc).__name__}: {exc})") from None
    if (inputs[2].dim_value, inputs[3].dim_value, inputs[0].dim_value) == (height, width, 1) and not symbolic_batch:
        return data
    del model.graph.value_info[:]
    inputs[2].dim_value, inputs[3].dim_value = height, width
    if symbolic_batch:
        inputs[0].dim_param = "batch"
        reshape_targets = {node.input[1] for node in model.graph.node if node.op_type == "Reshape"}
        for init in model.graph.initializer:
            if init.name in reshape_targets:
                target = numpy_helper.to_array(init).copy()
                if target.ndim == 1 and target[0] == 1:
                    target[0] = 0
                    init.CopyFrom(numpy_helper.from_array(target, init.name))
    for k, dim in enumerate(model.graph.output[0].type.tensor_type.shape.dim):
        dim.dim_param = f"out{k}"
    return model.SerializeToString()


def letterbox(frame: np.ndarray, width: int, height: int) -> tuple[np.ndarray, float]:
    """YOLOX preprocessing: BGR, 0..255, resized into the top-left of a 114-grey canvas."""
    if frame.ndim == 2 or frame.shape[2] == 1:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    h, w = frame.shape[:2]
    r = min(height / h, width / w)
    new_w, new_h = max(1, int(round(w * r))), max(1, int(round(h * r)))
    canvas = np.full((height, width, 3), 114, np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return canvas, r


class YoloxDetector(Detector):
    """YOLOX-Nano (COCO-80) with onnxruntime on the CPU.

    ``input_size`` is ``[width, height]``, each a multiple of 32; a frame is scaled by
    ``min(height/h, width/w)`` into it, so an input with the frame's aspect ratio wastes
    nothing on padding.  ``batch`` frames go through one ``run`` call.

    ``stride`` k > 1 runs the network on every k-th frame of a video only (frames 0, k, 2k, ...
    counted since ``reset``) and gives the frames in between the boxes of the last such
    keyframe.  Boxes are then at most k-1 frames old; people move a few pixels per frame,
    and the motion detector of ``yolox+motion`` still looks at every frame.  On the Ped2
    training split, recall of the reference boxes at IoU 0.3 moved by -0.001 at k=2 (copying
    beat extrapolating each box with its velocity from the last two keyframes: -0.003).
    The result does not depend on how frames are grouped into ``detect`` calls.
    """

    name = "yolox"
    STRIDES = (8, 16, 32)

    def __init__(self, model_path: str | os.PathLike | None = None, input_size: Sequence[int] = DEFAULT_INPUT_SIZE,
                 score_threshold: float = 0.25, nms_iou: float = 0.45,
                 classes: Sequence[str] | None = ("person",), min_area: float = 0.0,
                 batch: int = 1, threads: int | None = None, stride: int = 1):
        import onnxruntime as ort

        self.model_path = Path(model_path) if model_path else bundled_model_path()
        self.width, self.height = (int(v) for v in input_size)
        if self.width <= 0 or self.height <= 0 or self.width % 32 or self.height % 32:
            raise ConfigError(f"detector.yolox.input_size: {list(input_size)} must be two positive "
                              "multiples of 32 ([width, height])")
        unknown = [c for c in (classes or []) if c not in COCO_CLASSES]
        if unknown:
            raise ConfigError(f"detector.yolox.classes: unknown COCO class name(s) {unknown}")
        self.class_ids = np.array([COCO_CLASSES.index(c) for c in classes] if classes else
                                  range(len(COCO_CLASSES)), np.int64)
        self.score_threshold, self.nms_iou, self.min_area = float(score_threshold), float(nms_iou), float(min_area)
        self.batch, self.stride = max(1, int(batch)), int(stride)
        if self.stride < 1:
            raise ConfigError(f"detector.yolox.stride: {stride!r} must be a positive integer")
        self.chunk = self.batch * self.stride  # one full network batch of keyframes per call
        self.reset()
        if not self.model_path.is_file():
            raise DataError(f"{self.model_path}: YOLOX model file does not exist")
        model = _model_bytes(str(self.model_path), self.model_path.stat().st_mtime_ns,
                             self.width, self.height, self.batch > 1)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads) if threads else default_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # onnxruntime warns about unused initializers otherwise
        # idle threads sleep instead of spinning: on a shared or busy CPU spinning threads
        # steal the cores the working ones need (measured 2x slower with 2 threads under load)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise DataError(f"{self.model_path}: onnxruntime cannot load this model ({exc})") from None
        self.input_name = self.session.get_inputs()[0].name
        self.grid, self.anchor_stride = self._grid()

    def _grid(self) -> tuple[np.ndarray, np.ndarray]:
        grids, strides = [], []
        for s in self.STRIDES:
            xs, ys = np.meshgrid(np.arange(self.width // s), np.arange(self.height // s))
            grids.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
            strides.append(np.full((grids[-1].shape[0], 1), s))
        return np.concatenate(grids).astype(np.float32), np.concatenate(strides).astype(np.float32)

    def reset(self) -> None:
        self._seen = 0  # frames of the current video so far: decides which are keyframes
        self._last = empty_boxes()  # boxes of the latest keyframe

    def detect(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        keys = [i for i in range(len(frames)) if (self._seen + i) % self.stride == 0]
        found = dict(zip(keys, self._run([frames[i] for i in keys])))
        out: list[np.ndarray] = []
        for i in range(len(frames)):
            self._last = found.get(i, self._last)
            out.append(self._last.copy())
        self._seen += len(frames)
        return out

    def _run(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The network's boxes of every frame given."""
        out: list[np.ndarray] = []
        for start in range(0, len(frames), self.batch):
            chunk = frames[start:start + self.batch]
            canvases, ratios = zip(*(letterbox(f, self.width, self.height) for f in chunk))
            blob = np.stack(canvases).transpose(0, 3, 1, 2).astype(np.float32)
            raw = self.session.run(None, {self.input_name: blob})[0]
            if raw.shape[1] != len(self.grid):
                raise DataError(f"{self.model_path}: model output has {raw.shape[1]} anchors, expected "
                                f"{len(self.grid)} for input {self.width}x{self.height}")
            for pred, r, frame in zip(raw, ratios, chunk):
                out.append(self._decode(pred, r, frame.shape[0], frame.shape[1]))
        return out

    def _decode(self, pred: np.ndarray, ratio: float, height: int, width: int) -> np.ndarray:
        class_scores = pred[:, 5:][:, self.class_ids] * pred[:, 4:5]
        best = class_scores.argmax(axis=1)
        score = class_scores[np.arange(len(best)), best]
        keep = score >= self.score_threshold
        if not keep.any():
            return empty_boxes()
        p, score, cls = pred[keep], score[keep], self.class_ids[best[keep]]
        centre = (p[:, :2] + self.grid[keep]) * self.anchor_stride[keep]
        size = np.exp(p[:, 2:4]) * self.anchor_stride[keep]
        xywh = np.hstack([centre - size / 2, size]) / ratio
        # class-agnostic NMS: one box per object, even when two classes fire on it (cart as car + truck)
        picked = np.asarray(cv2.dnn.NMSBoxes(xywh.tolist(), score.tolist(), self.score_threshold,
                                             self.nms_iou), np.int64).ravel()
        xywh, score, cls = xywh[picked], score[picked], cls[picked]
        boxes = np.hstack([xywh[:, :2], xywh[:, :2] + xywh[:, 2:], score[:, None], cls[:, None]])
        return finalize_boxes(boxes, height, width, self.min_area)


# --------------------------------------------------------------------------------------
# Motion (background subtraction)
# --------------------------------------------------------------------------------------

class MotionDetector(Detector):
    """Moving blobs: background subtraction, morphology, connected components.

    ``method``: ``mog2`` (``var_threshold`` = MOG2's squared Mahalanobis threshold),
    ``knn`` (``var_threshold`` = KNN's squared-distance threshold) or ``diff`` (absolute
    difference to the previous frame above ``var_threshold`` grey levels).

    Warm-up: a freshly reset background model knows nothing, so the first frames of
    a video come out as mostly background (MOG2 takes frame 0 as the background) and
    anything standing in frame 0 leaves a "ghost" when it walks away.  With
    ``warmup = N > 0``, ``detect_video`` first feeds N frames spread evenly over the
    video, so moving objects average out of the model before detection starts at
    frame 0.  Streaming use (``detect`` only) can call :meth:`prime` itself.
    """

    name = "motion"
    chunk = 32

    # Defaults measured on the Ped2 training split (recall of ped2_bboxes_train.npy at IoU 0.3,
    # all 2550 frames): mog2/16 0.526 (warm-up 0) 0.536 (20); knn/400 0.571 (0) 0.624 (20);
    # knn/200 0.636 (20), 0.647 (40); diff/15 0.455; an opening kernel of 5 drops to 0.43.
    def __init__(self, method: str = "knn", history: int = 200, var_threshold: float = 200.0,
                 min_area: float = 40.0, kernel: int = 3, warmup: int = 20, close_kernel: int | None = None):
        if method not in ("mog2", "knn", "diff"):
            raise ConfigError(f"detector.motion.method: {method!r} is not one of mog2, knn, diff")
        self.method, self.history, self.var_threshold = method, int(history), float(var_threshold)
        self.min_area, self.warmup = float(min_area), int(warmup)
        k = max(1, int(kernel))
        self.open_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        # closing with a taller kernel joins a walker's head, torso and legs into one blob
        ck = int(close_kernel) if close_kernel else 2 * k + 1
        self.close_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (ck, 2 * ck + 1))
        self.reset()

    def reset(self) -> None:
        # KNN/MOG2 draw from OpenCV's global RNG: reseed so that a video's boxes do not depend
        # on what ran before in this process (worker or not). Seed 0 = a fresh process's state.
        cv2.setRNGSeed(0)
        self._previous: np.ndarray | None = None
        self._seen = 0  # frames the background model has learned
        if self.method == "mog2":
            self.model = cv2.createBackgroundSubtractorMOG2(self.history, self.var_threshold, False)
        elif self.method == "knn":
            self.model = cv2.createBackgroundSubtractorKNN(self.history, self.var_threshold, False)
        else:
            self.model = None

    @staticmethod
    def _gray(frame: np.ndarray) -> np.ndarray:
        gray = frame[:, :, 0] if frame.ndim == 3 and frame.shape[2] == 1 else (
            cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame)
        return cv2.GaussianBlur(gray, (3, 3), 0)  # sensor noise would otherwise speckle the mask

    def prime(self, frames: Sequence[np.ndarray]) -> None:
        """Teach the background model ``frames`` without detecting anything."""
        for frame in frames:
            gray = self._gray(frame)
            if self.model is not None:
                self.model.apply(gray)
                self._seen += 1
        if self.model is None and len(frames):
            self._previous = self._gray(frames[-1])

    def _foreground(self, gray: np.ndarray) -> np.ndarray:
        if self.model is not None:
            mask = self.model.apply(gray)
            self._seen += 1
            # a model's first frame comes out all foreground: nothing is known to move yet
            return mask if self._seen > 1 else np.zeros_like(mask)
        previous = gray if self._previous is None else self._previous
        self._previous = gray
        return ((cv2.absdiff(gray, previous) > self.var_threshold) * 255).astype(np.uint8)

    def detect(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        out = []
        for frame in frames:
            mask = self._foreground(self._gray(frame))
            mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self.open_kernel)
            mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self.close_kernel)
            count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            stats = stats[1:]  # component 0 is the background
            xyxy = np.hstack([stats[:, :2], stats[:, :2] + stats[:, 2:4]]).astype(np.float32)
            out.append(finalize_boxes(xyxy, frame.shape[0], frame.shape[1], self.min_area))
        return out

    def warm_up(self, video) -> None:
        """Prime the background with ``warmup`` frames spread evenly over ``video``."""
        n = len(video)
        if self.warmup > 0 and n > 0:
            picks = np.unique(np.linspace(0, n - 1, min(self.warmup, n)).round().astype(int))
            self.prime([video.frame(int(i)) for i in picks])
            if self.model is None:
                self._previous = None  # differencing restarts at frame 0

    def detect_video(self, video) -> list[np.ndarray]:
        self.reset()
        self.warm_up(video)
        return self._detect_chunks(video)


# --------------------------------------------------------------------------------------
# YOLOX + motion
# --------------------------------------------------------------------------------------

def merge_boxes(detected: np.ndarray, motion: np.ndarray, merge_iou: float) -> np.ndarray:
    """Detector boxes plus the motion boxes whose best IoU with them is below ``merge_iou``."""
    if len(motion) == 0:
        return detected
    if len(detected) == 0:
        return motion
    novel = box_iou(motion, detected).max(axis=1) < merge_iou
    return np.vstack([detected, motion[novel]])


class CombinedDetector(Detector):
    """An appearance detector plus a motion detector (objects of classes the detector misses)."""

    name = "yolox+motion"

    def __init__(self, detector: Detector, motion: MotionDetector, merge_iou: float = 0.3):
        self.detector, self.motion, self.merge_iou = detector, motion, float(merge_iou)
        self.chunk = detector.chunk

    def reset(self) -> None:
        self.detector.reset()
        self.motion.reset()

    def detect(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [merge_boxes(d, m, self.merge_iou)
                for d, m in zip(self.detector.detect(frames), self.motion.detect(frames))]

    def detect_video(self, video) -> list[np.ndarray]:
        self.reset()
        self.motion.warm_up(video)
        return self._detect_chunks(video)  # one pass: each frame is decoded once for both


# --------------------------------------------------------------------------------------
# Precomputed boxes
# --------------------------------------------------------------------------------------

class PrecomputedBoxes(Detector):
    """Boxes read from a file, already split per frame of one video.

    Build one with :func:`load_box_file` (which checks frame counts); ``detect_video``
    then returns them clipped to the video's frames.
    """

    name = "precomputed"

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
                  allow_pickle: bool = False) -> list[list[np.ndarray]]:
    """Per-video, per-frame boxes from a file covering a whole split.

    ``videos`` is the split as ``(name, frame_count)`` pairs in order.  Formats:

    * ``.npy``: an object array with one ``(k, 4)`` (or 5/6 columns) array per frame of all
      videos joined in order (the HF2VAD / AI-VAD layout).  Object arrays are pickles, so
      they load only with ``allow_pickle=True`` (config ``detector.allow_pickle``); load only
      files you trust.
    * ``.csv``: header line, then ``video,frame,x1,y1,x2,y2[,score,class]``; ``video`` is
      the video's name, ``frame`` its 0-based index.  Frames without rows have no boxes.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: boxes file does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _load_npy_boxes(path, videos, allow_pickle)
    if suffix == ".csv":
        return _load_csv_boxes(path, videos)
    raise DataError(f"{path}: unknown boxes file type (expected .npy or .csv)")


def _load_npy_boxes(path: Path, videos: Sequence[tuple[str, int]], allow_pickle: bool) -> list[list[np.ndarray]]:
    try:
        data = np.load(path, allow_pickle=allow_pickle)
    except ValueError as exc:
        if not allow_pickle and "allow_pickle" in str(exc):
            raise ConfigError(f"{path}: this boxes file is a pickled object array; set "
                              "detector.allow_pickle: true to load it (only for files you trust)") from None
        raise DataError(f"{path}: cannot read boxes file ({exc})") from None
    except Exception as exc:
        raise DataError(f"{path}: cannot read boxes file ({type(exc).__name__}: {exc})") from None
    if data.dtype != object:
        raise DataError(f"{path}: expected an object array with one (k, 4) array per frame, got {data.dtype} {data.shape}")
    data = data.ravel()
    expected = sum(count for _, count in videos)
    if len(data) != expected:
        raise DataError(f"{path}: boxes for {len(data)} frames but the {len(videos)} videos have {expected} frames")
    out, start = [], 0
    for _, count in videos:
        out.append([_as_box_array(data[i], path, i) for i in range(start, start + count)])
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


# --------------------------------------------------------------------------------------
# Factory
# --------------------------------------------------------------------------------------

DETECTOR_NAMES = ("motion", "yolox", "yolox+motion", "precomputed")


def build_yolox(cfg: Mapping[str, Any], threads: int | None = None) -> YoloxDetector:
    return YoloxDetector(model_path=cfg.get("model"), input_size=cfg.get("input_size", DEFAULT_INPUT_SIZE),
                         score_threshold=cfg.get("score_threshold", 0.25), nms_iou=cfg.get("nms_iou", 0.45),
                         classes=cfg.get("classes"), min_area=cfg.get("min_area", 0),
                         batch=cfg.get("batch", 1), threads=threads if threads else cfg.get("threads"),
                         stride=cfg.get("stride", DEFAULT_STRIDE))


def build_motion(cfg: Mapping[str, Any]) -> MotionDetector:
    known = ("method", "history", "var_threshold", "min_area", "kernel", "warmup", "close_kernel")
    return MotionDetector(**{k: v for k, v in cfg.items() if k in known})


def build_detector(detector_cfg: Mapping[str, Any], video_name: str | None = None,
                   boxes: Sequence[np.ndarray] | None = None, threads: int | None = None) -> Detector:
    """The detector named by ``detector_cfg['name']``.

    For ``precomputed``, pass the video's ``boxes`` (from :func:`load_box_file`), or a
    ``video_name`` when ``detector_cfg['boxes']`` is a CSV file (looked up by name).
    ``threads`` overrides the onnxruntime thread count (worker processes use 1).
    """
    name = detector_cfg.get("name", "motion")
    if name == "motion":
        return build_motion(detector_cfg.get("motion", {}))
    if name == "yolox":
        return build_yolox(detector_cfg.get("yolox", {}), threads)
    if name == "yolox+motion":
        return CombinedDetector(build_yolox(detector_cfg.get("yolox", {}), threads),
                                build_motion(detector_cfg.get("motion", {})), detector_cfg.get("merge_iou", 0.3))
    if name == "precomputed":
        source = detector_cfg.get("boxes")
        min_area = detector_cfg.get("min_area", 0)
        if boxes is not None:
            return PrecomputedBoxes(boxes, str(source or "<boxes>"), min_area)
        if source and video_name is not None and Path(source).suffix.lower() == ".csv":
            # frame count unknown here: detect_video checks the file against the video
            return PrecomputedBoxes(_load_csv_boxes(Path(source), [(video_name, None)])[0], str(source),
                                    min_area, exact=False)
        raise ConfigError("detector.boxes: the precomputed detector needs the split's boxes "
                          "(load_box_file), or a CSV boxes file and a video name")
    raise ConfigError(f"detector.name: {name!r} is not one of {', '.join(DETECTOR_NAMES)}")
