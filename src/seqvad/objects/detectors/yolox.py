"""YOLOX-Nano (COCO-80), bundled in ``seqvad/assets``, run by onnxruntime on the CPU."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from seqvad.config import DEFAULTS
from seqvad.errors import ConfigError, DataError
from seqvad.objects.detectors.base import Detector, default_threads, file_sha256, register
from seqvad.objects.detectors.boxes import empty_boxes, finalize_boxes
from seqvad.objects.detectors.keyframes import BoxCarrier, KeyframeSchedule

# yolox settings that change speed, not boxes: left out of the cache key
SPEED_ONLY_KEYS = ("batch", "threads")

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



# Default YOLOX input [width, height], keyframe stride, carry mode and motion gate: written once, in
# seqvad.config.DEFAULTS (with the evidence, results/detect_ped2.json "keyframe_selection").
_DEFAULTS = DEFAULTS["detector"]["yolox"]
DEFAULT_INPUT_SIZE = tuple(_DEFAULTS["input_size"])
DEFAULT_STRIDE = int(_DEFAULTS["stride"])


def bundled_model_path() -> Path:
    """YOLOX-Nano shipped as package data (``seqvad/assets``; origin and licence beside it)."""
    return Path(__file__).resolve().parents[2] / "assets" / "yolox_nano.onnx"


def accepts_input(shape: Sequence, width: int, height: int, batch: int) -> bool:
    """Whether a graph input of ``shape`` (onnxruntime's: ints, or names / None for symbolic dims)
    takes ``batch`` x 3 x ``height`` x ``width`` as it is."""
    if len(shape) != 4:
        return False
    n, _, h, w = shape
    fits = lambda dim, value: not isinstance(dim, int) or dim == value  # noqa: E731
    return fits(h, height) and fits(w, width) and (fits(n, 1) if batch == 1 else not isinstance(n, int))


@functools.lru_cache(maxsize=8)
def reshaped_model(path: str, mtime_ns: int, width: int, height: int, symbolic_batch: bool) -> bytes:
    """A *fixed-size* ONNX model re-shaped for a ``width x height`` input (cached: ~50 ms).

    Only for a model file of one's own (``detector.yolox.model``) whose input size is fixed:
    the bundled graph takes any size as it is (``tools/make_dynamic_yolox.py``), so the
    ``onnx`` package is an optional extra (``pip install 'seqvad[onnx]'``).  onnxruntime refuses
    inputs whose shape differs from the graph's declared dims, so the dims are edited: stale
    ``value_info`` shapes are removed, the input gets the new H and W, outputs become symbolic.
    For batching, the three ``Reshape`` targets ``[1, 85, -1]`` baked into the export become
    ``[0, 85, -1]`` (0 = copy the batch dim).
    """
    data = Path(path).read_bytes()
    try:
        import onnx
    except ImportError:
        raise ConfigError(f"{path}: this YOLOX model has a fixed input size; running it at {width}x{height} "
                          "needs the 'onnx' package (pip install 'seqvad[onnx]')") from None
    try:
        model = onnx.load_from_string(data)
        inputs = model.graph.input[0].type.tensor_type.shape.dim
        if len(inputs) != 4 or len(model.graph.output) != 1:
            raise ValueError("expected one NCHW input and one output")
    except Exception as exc:  # protobuf raises its own DecodeError
        raise DataError(f"{path}: not a valid YOLOX ONNX model ({type(exc).__name__}: {exc})") from None
    del model.graph.value_info[:]
    inputs[2].dim_value, inputs[3].dim_value = height, width
    if symbolic_batch:
        inputs[0].dim_param = "batch"
        free_reshape_batch(model)
    for k, dim in enumerate(model.graph.output[0].type.tensor_type.shape.dim):
        dim.dim_param = f"out{k}"
    return model.SerializeToString()


def free_reshape_batch(model) -> None:
    """Let the graph's Reshapes follow the input's batch: a target shape starting with the export's
    batch of 1 gets 0 there (ONNX: copy that dimension from the input)."""
    from onnx import numpy_helper

    targets = {node.input[1] for node in model.graph.node if node.op_type == "Reshape"}
    for init in model.graph.initializer:
        if init.name in targets:
            target = numpy_helper.to_array(init).copy()
            if target.ndim == 1 and target[0] == 1:
                target[0] = 0
                init.CopyFrom(numpy_helper.from_array(target, init.name))


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


@register
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

    ``carry`` (``copy`` | ``motion``) and ``gate`` are checked here and applied by
    ``yolox+motion`` (:class:`~seqvad.objects.detectors.combined.CombinedDetector`), which has the
    motion blobs and masks they need: see :mod:`~seqvad.objects.detectors.keyframes`.  ``yolox``
    alone copies its keyframes' boxes at the fixed stride.
    """

    name = "yolox"
    STRIDES = (8, 16, 32)

    @classmethod
    def from_config(cls, detector_cfg, video_name=None, boxes=None, threads=None) -> "YoloxDetector":
        return build_yolox(detector_cfg.get("yolox", {}), threads)

    @classmethod
    def cache_fields(cls, detector_cfg, boxes_file=None) -> dict:
        """The yolox settings (less those that change speed only) and the model file's content."""
        yolox = dict(detector_cfg.get("yolox") or {})
        model = Path(yolox.get("model") or bundled_model_path())
        return {"yolox": {k: v for k, v in yolox.items() if k not in SPEED_ONLY_KEYS},
                "model_sha256": file_sha256(model) if model.is_file() else str(model)}

    def __init__(self, model_path: str | os.PathLike | None = None, input_size: Sequence[int] = DEFAULT_INPUT_SIZE,
                 score_threshold: float = 0.25, nms_iou: float = 0.45,
                 classes: Sequence[str] | None = ("person",), min_area: float = 0.0,
                 batch: int = 1, threads: int | None = None, stride: int = 1, carry: str = "copy",
                 gate: float = 0.0):
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
        self.batch = max(1, int(batch))
        self._set_keyframes(stride, carry, gate)
        self.reset()
        if not self.model_path.is_file():
            raise DataError(f"{self.model_path}: YOLOX model file does not exist")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads) if threads else default_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # onnxruntime warns about unused initializers otherwise
        # idle threads sleep instead of spinning: on a shared or busy CPU spinning threads
        # steal the cores the working ones need (measured 2x slower with 2 threads under load)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = self._session(self.model_path.read_bytes(), options)
        if not accepts_input(self.session.get_inputs()[0].shape, self.width, self.height, self.batch):
            self.session = self._session(reshaped_model(str(self.model_path), self.model_path.stat().st_mtime_ns,
                                                        self.width, self.height, self.batch > 1), options)
        self.input_name = self.session.get_inputs()[0].name
        self.grid, self.anchor_stride = self._grid()

    def _session(self, model: bytes, options):
        import onnxruntime as ort

        try:
            return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise DataError(f"{self.model_path}: onnxruntime cannot load this model ({exc})") from None

    def _grid(self) -> tuple[np.ndarray, np.ndarray]:
        grids, strides = [], []
        for s in self.STRIDES:
            xs, ys = np.meshgrid(np.arange(self.width // s), np.arange(self.height // s))
            grids.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
            strides.append(np.full((grids[-1].shape[0], 1), s))
        return np.concatenate(grids).astype(np.float32), np.concatenate(strides).astype(np.float32)

    def _set_keyframes(self, stride: int, carry: str, gate: float) -> None:
        self.stride = int(stride)
        # carried boxes moved by motion blobs, and the motion-gated keyframes, need the motion
        # detector's blobs and masks: ``yolox+motion`` applies them; ``yolox`` alone copies
        self._schedule, self._carrier = KeyframeSchedule(self.stride), BoxCarrier("copy")
        KeyframeSchedule(self.stride, gate), BoxCarrier(carry)  # checks the values
        self.carry, self.gate = carry, float(gate)
        self.chunk = self.batch * self.stride  # one full network batch of keyframes per call
        self.group_multiple = self.chunk  # streaming keeps the calls aligned: the same boxes as batch

    def reset(self) -> None:
        # ``yolox`` alone: every stride-th frame, boxes copied between (yolox+motion keeps its own)
        self._schedule.reset()
        self._carrier.reset()

    def detect(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        keys = [i for i in range(len(frames)) if self._schedule.is_key()]
        found = dict(zip(keys, self.run_network([frames[i] for i in keys])))
        return [self._carrier.step(found.get(i)) for i in range(len(frames))]

    def run_network(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
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


def build_yolox(cfg: Mapping[str, Any], threads: int | None = None) -> YoloxDetector:
    return YoloxDetector(model_path=cfg.get("model"), input_size=cfg.get("input_size", DEFAULT_INPUT_SIZE),
                         score_threshold=cfg.get("score_threshold", 0.25), nms_iou=cfg.get("nms_iou", 0.45),
                         classes=cfg.get("classes"), min_area=cfg.get("min_area", 0),
                         batch=cfg.get("batch", 1), threads=threads if threads else cfg.get("threads"),
                         stride=cfg.get("stride", DEFAULT_STRIDE), carry=cfg.get("carry", _DEFAULTS["carry"]),
                         gate=cfg.get("gate", _DEFAULTS["gate"]))
