"""Keyframes of ``yolox+motion``: boxes carried between them (copied or moved with the motion blobs),
motion-gated keyframes, and their config keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seqvad.config import DEFAULTS, load_config
from seqvad.config_check import validate
from seqvad.errors import ConfigError
from seqvad.objects.detectors import CombinedDetector, MotionDetector, YoloxDetector, box_iou, build_detector
from seqvad.objects.detectors.keyframes import BoxCarrier, KeyframeSchedule, mask_change, moved_by_blobs

from test_detectors import moving_scene


class SquareNetwork(YoloxDetector):
    """A stand-in for the network: the box of the bright square in a frame (no model file), counting
    the frames it is run on."""

    def __init__(self, stride: int = 1, carry: str = "copy", gate: float = 0.0):
        self.batch, self.runs = 1, 0
        self._set_keyframes(stride, carry, gate)
        self.reset()

    def run_network(self, frames):
        self.runs += len(frames)
        out = []
        for frame in frames:
            ys, xs = np.nonzero(frame[:, :, 0] > 140)
            out.append(np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, 0.9, 0]], np.float32)
                       if len(xs) else np.zeros((0, 6), np.float32))
        return out


def square_video(frames: int = 24, step: int = 3, size: int = 12, height: int = 72, width: int = 160):
    """A dark textured still background with a bright textured square moving ``step`` px right per
    frame (its texture moves with it); its true boxes."""
    rng = np.random.default_rng(0)
    cells = np.where(rng.random((size // 4, size // 4, 1)) < 0.5, 150, 255).astype(np.uint8)
    skin = np.repeat(np.repeat(cells, 4, axis=0), 4, axis=1)  # 4 x 4 px cells
    background = rng.integers(20, 40, (height, width, 3), dtype=np.uint8)
    out, truth = [], []
    for t in range(frames):
        frame = background.copy()
        x = 8 + step * t
        frame[30:30 + size, x:x + size] = skin
        out.append(frame)
        truth.append(np.array([x, 30, x + size, 30 + size], np.float32))
    return out, truth


def combined(stride, carry="copy", gate=0.0, motion="knn"):
    network = SquareNetwork(stride, carry, gate)
    blobs = (MotionDetector(method="knn", history=50, var_threshold=200, min_area=20, warmup=0) if motion == "knn"
             else MotionDetector(method="diff", var_threshold=60, min_area=20, kernel=1, close_kernel=5, warmup=0))
    return CombinedDetector(network, blobs, merge_iou=0.3), network


def network_boxes(detector, frames, groups):
    """The network's part of the boxes (score 0.9, class 0), frames handed over in ``groups``."""
    detector.reset()
    out, start = [], 0
    for size in groups:
        out += detector.detect(frames[start:start + size])
        start += size
    return [b[b[:, 5] == 0][:, :4] for b in out]


def test_copy_carries_the_keyframes_boxes_unchanged_as_the_yolox_stride_does():
    frames, _ = square_video()
    detector, network = combined(stride=4)
    every = network.run_network(frames)
    network.runs = 0
    for groups in ([24], [1] * 24, [5, 7, 12]):
        got = network_boxes(detector, frames, groups)
        for t, boxes in enumerate(got):
            np.testing.assert_array_equal(boxes, every[t - t % 4][:, :4])
    assert network.runs == 3 * 6  # frames 0, 4, ..., 20 in each of the 3 groupings


def test_motion_carry_follows_the_moving_square():
    frames, truth = square_video()
    copied = network_boxes(combined(stride=6)[0], frames, [24])
    tracked = network_boxes(combined(stride=6, carry="motion")[0], frames, [24])
    for t in range(24):
        assert len(tracked[t]) == 1
        on_tracked, on_copied = (box_iou(b, truth[t][None])[0, 0] for b in (tracked[t], copied[t]))
        assert on_tracked >= on_copied  # a blob not followed (KNN's early ghost, t < 8) leaves the box put
        if t % 6 == 0:
            np.testing.assert_array_equal(tracked[t], copied[t])
        elif t > 12:  # once the background model has forgotten the start: the blob is the square
            assert on_tracked > 0.9 > on_copied + 0.1
    # grouping does not matter
    for t, boxes in enumerate(network_boxes(combined(stride=6, carry="motion")[0], frames, [5, 1, 11, 7])):
        np.testing.assert_array_equal(boxes, tracked[t])


def test_moved_by_blobs_keeps_boxes_without_a_blob():
    boxes = np.array([[10, 10, 20, 30, 0.9, 0], [100, 100, 110, 120, 0.9, 0]], np.float32)
    before = np.array([[9, 9, 21, 31, 1, -1]], np.float32)
    after = before + np.array([2, -1, 2, -1, 0, 0], np.float32)
    moved = moved_by_blobs(boxes, before, after)
    np.testing.assert_array_equal(moved[0, :4], [12, 9, 22, 29])
    np.testing.assert_array_equal(moved[1], boxes[1])  # no blob under it
    np.testing.assert_array_equal(moved_by_blobs(boxes, before, after[:0]), boxes)
    grown = after.copy()
    grown[0, 2] += 10  # merged with a neighbour's blob: its centre says nothing about this box
    np.testing.assert_array_equal(moved_by_blobs(boxes, before, grown), boxes)


def test_gating_skips_the_network_when_nothing_moves():
    still = [square_video(frames=1)[0][0]] * 30
    detector, network = combined(stride=100, gate=0.2, motion="diff")
    detector.detect_video(still)
    assert network.runs == 1  # frame 0 only: the mask never changes
    moving, _ = square_video(frames=30)
    detector, network = combined(stride=100, gate=0.9, motion="diff")
    detector.detect_video(moving)
    assert 1 < network.runs < 30  # the square moves on: the network runs again, not on every frame
    detector, network = combined(stride=5, gate=0.99, motion="diff")
    detector.detect_video(still)
    assert network.runs == 6  # the max stride still applies


def test_mask_change():
    a = np.zeros((10, 10), bool)
    b = a.copy()
    assert mask_change(a, b) == 0.0
    a[:4] = True
    b[2:6] = True
    assert mask_change(a, b) == pytest.approx(1 - 2 / 6)
    assert mask_change(a, None) == 1.0


def test_default_config_validates_and_builds_the_keyframe_settings():
    validate(DEFAULTS)
    for name in ("ped2", "ped2_boxes"):
        validate(load_config(name))
    cfg = load_config("ped2")["detector"]
    assert cfg["yolox"]["carry"] in ("copy", "motion") and 0 <= cfg["yolox"]["gate"] <= 1
    with pytest.raises(ConfigError, match="carry"):
        validate(load_config("ped2", overrides={"detector.yolox.carry": "kalman"}))
    with pytest.raises(ConfigError, match="carry"):
        build_detector({"name": "yolox", "yolox": {"input_size": [128, 96], "carry": "kalman"}})
    with pytest.raises(ConfigError, match="gate"):
        build_detector({"name": "yolox", "yolox": {"input_size": [128, 96], "gate": 2}})
    built = build_detector({**cfg, "name": "yolox+motion", "yolox": {**cfg["yolox"], "input_size": [128, 96]}})
    assert built.schedule.stride == cfg["yolox"]["stride"] and built.carrier.carry == cfg["yolox"]["carry"]


def test_a_model_file_from_before_keeps_its_copied_keyframes(tmp_path):
    """A model trained on boxes copied between keyframes gets those boxes again, whatever today's
    defaults say (its stored config predates ``carry`` and ``gate``)."""
    from seqvad.api import Detector, stored_detector_settings

    old = load_config("ped2")
    for key in ("carry", "gate"):
        del old["detector"]["yolox"][key]
    old["detector"]["yolox"]["stride"] = 2
    cfg = Detector(stored_detector_settings(old)).config["detector"]["yolox"]
    assert (cfg["carry"], cfg["gate"], cfg["stride"]) == ("copy", 0.0, 2)
    new = load_config("ped2")
    assert stored_detector_settings(new) is new  # a file that names them keeps them
    results = Path(__file__).resolve().parents[1] / "results"
    older = results / "archive" / "ped2-1c92332" / "model.pt"  # saved before carry existed
    if older.is_file():
        assert Detector.load(older, device="cpu").config["detector"]["yolox"]["carry"] == "copy"
    shipped = results / "ped2" / "model.pt"  # trained with today's keyframes: keeps them
    if shipped.is_file():
        assert Detector.load(shipped, device="cpu").config["detector"]["yolox"]["carry"] == "motion"
