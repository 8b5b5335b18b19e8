"""Detectors: motion on synthetic moving objects, box hygiene, box files, the bundled YOLOX."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from seqvad.data.videos import Video
from seqvad.errors import ConfigError, DataError
from seqvad.objects.detectors import (COCO_CLASSES, MotionDetector, PrecomputedBoxes, YoloxDetector,
                                      box_iou, build_detector, bundled_model_path, finalize_boxes,
                                      load_box_file, merge_boxes)

DATA = Path(os.environ.get("SEQVAD_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
PED2_FRAME = DATA / "ped2" / "testing" / "frames" / "01" / "000.jpg"


def moving_scene(num_frames: int = 40, height: int = 120, width: int = 160, seed: int = 0):
    """A textured static background with a textured rectangle moving right and a textured
    ellipse moving left (texture moves with the object, as a walker's clothes do); returns
    BGR frames (N, H, W, 3) and the true boxes per frame."""
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (height, width)).astype(np.float32), (0, 0), 2)
    background = cv2.normalize(texture, None, 60, 190, cv2.NORM_MINMAX)
    skin = rng.integers(0, 2, (28, 21)).astype(np.float32) * 200 + 25  # object texture, black/white cells
    frames, truth = [], []
    for t in range(num_frames):
        frame = background + rng.normal(0, 2, background.shape)
        x = 10 + 2 * t  # rectangle 14 x 28 at rows 30..57
        frame[30:58, x:x + 14] = skin[:, :14]
        cx = 140 - 2 * t  # ellipse, half axes 10 x 8, centred on row 90
        mask = np.zeros((height, width), np.uint8)
        cv2.ellipse(mask, (cx, 90), (10, 8), 0, 0, 360, 1, thickness=-1)
        patch = frame[82:99, cx - 10:cx + 11]
        patch[mask[82:99, cx - 10:cx + 11] > 0] = skin[:17, :21][mask[82:99, cx - 10:cx + 11] > 0]
        frames.append(cv2.cvtColor(np.clip(frame, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR))
        truth.append(np.array([[x, 30, x + 14, 58], [cx - 10, 82, cx + 11, 99]], np.float32))
    return np.stack(frames), truth


@pytest.mark.parametrize("method", ["mog2", "knn"])
def test_motion_detector_finds_moving_objects(method):
    frames, truth = moving_scene()
    video = Video.from_array(frames, name="scene")
    detector = MotionDetector(method=method, history=100, var_threshold=16 if method == "mog2" else 200,
                              min_area=40, kernel=3, warmup=20)
    boxes = detector.detect_video(video)
    assert len(boxes) == len(frames)
    assert all(b.dtype == np.float32 and b.shape[1] == 6 for b in boxes)
    warm = range(5, len(frames))
    hits = [box_iou(truth[t], boxes[t]).max(axis=1) > 0.5 if len(boxes[t]) else np.zeros(2, bool) for t in warm]
    hit_rate = np.mean(hits, axis=0)
    assert (hit_rate >= 0.8).all(), f"IoU>0.5 rate per object {hit_rate}"
    assert np.all(np.concatenate(boxes)[:, 5] == -1) and np.all(np.concatenate(boxes)[:, 4] == 1.0)


def test_motion_detector_static_scene_has_no_boxes():
    frames, _ = moving_scene(num_frames=1)
    video = Video.from_array(np.repeat(frames, 15, axis=0), name="still")
    boxes = MotionDetector(warmup=5).detect_video(video)
    assert sum(len(b) for b in boxes) == 0


def test_finalize_boxes_clips_and_drops():
    raw = np.array([
        [-5, -5, 20, 30, 0.9, 0],     # partly outside: clipped to (0,0,20,30)
        [150, 100, 200, 150, 0.8, 2],  # partly outside bottom-right of a 160x120 frame
        [10, 10, 10, 40, 0.7, 0],     # zero width
        [50, 50, 52, 52, 0.6, 0],     # area 4 < min_area
        [170, 10, 190, 40, 0.5, 0],   # fully outside: zero width after clipping
    ], np.float32)
    out = finalize_boxes(raw, height=120, width=160, min_area=10)
    np.testing.assert_array_equal(out[:, :4], [[0, 0, 20, 30], [150, 100, 160, 120]])
    np.testing.assert_allclose(out[:, 4:], [[0.9, 0], [0.8, 2]], rtol=1e-6)
    four = finalize_boxes(np.array([[1, 2, 5, 8]]), 120, 160)
    np.testing.assert_array_equal(four, [[1, 2, 5, 8, 1, -1]])
    assert finalize_boxes(np.zeros((0, 4)), 10, 10).shape == (0, 6)


def test_merge_keeps_only_novel_motion_boxes():
    detected = np.array([[0, 0, 10, 20, 0.9, 0]], np.float32)
    motion = np.array([[1, 1, 10, 20, 1, -1],      # same object: dropped
                       [50, 50, 60, 70, 1, -1]], np.float32)  # something YOLOX missed: kept
    merged = merge_boxes(detected, motion, merge_iou=0.3)
    np.testing.assert_array_equal(merged, np.vstack([detected, motion[1:]]))
    np.testing.assert_array_equal(merge_boxes(np.zeros((0, 6), np.float32), motion, 0.3), motion)


def _object_array(arrays):
    out = np.empty(len(arrays), dtype=object)
    out[:] = arrays
    return out


def test_npy_boxes_split_per_video_and_need_allow_pickle(tmp_path):
    per_frame = [np.array([[i, i, i + 5, i + 8]], np.float32) for i in range(5)]
    path = tmp_path / "boxes.npy"
    np.save(path, _object_array(per_frame), allow_pickle=True)
    with pytest.raises(ConfigError, match="pickled object array"):
        load_box_file(path, [("a", 2), ("b", 3)])
    boxes = load_box_file(path, [("a", 2), ("b", 3)], allow_pickle=True)
    assert [len(v) for v in boxes] == [2, 3]
    np.testing.assert_array_equal(boxes[1][0], per_frame[2])
    with pytest.raises(DataError) as err:
        load_box_file(path, [("a", 2), ("b", 4)], allow_pickle=True)
    message = str(err.value)
    assert str(path) in message and "5 frames" in message and "6 frames" in message


def test_csv_boxes(tmp_path):
    path = tmp_path / "boxes.csv"
    path.write_text("video,frame,x1,y1,x2,y2,score,class\n"
                    "a,1,0,0,10,10,0.5,0\n"
                    "a,1,5,5,20,20,0.7,2\n"
                    "b,0,1,2,3,4\n")
    boxes = load_box_file(path, [("a", 3), ("b", 1)])
    assert [len(f) for f in boxes[0]] == [0, 2, 0]
    np.testing.assert_allclose(boxes[0][1][1], [5, 5, 20, 20, 0.7, 2], rtol=1e-6)
    np.testing.assert_array_equal(boxes[1][0], [[1, 2, 3, 4, 1, -1]])
    with pytest.raises(DataError, match="frame 1 but the video has 1 frames"):
        load_box_file(path, [("a", 1), ("b", 1)])
    detector = build_detector({"name": "precomputed", "boxes": str(path)}, video_name="a")
    video = Video.from_array(np.zeros((3, 30, 15, 1), np.uint8), name="a")
    out = detector.detect_video(video)
    np.testing.assert_allclose(out[1][1], [5, 5, 15, 20, 0.7, 2], rtol=1e-6)  # clipped to the 15-pixel width


def test_precomputed_detector_checks_frame_count():
    detector = PrecomputedBoxes([np.zeros((0, 4))] * 3, source="boxes.npy")
    with pytest.raises(DataError, match="boxes.npy: boxes for 3 frames but video v has 4 frames"):
        detector.detect_video(Video.from_array(np.zeros((4, 8, 8), np.uint8), name="v"))


def test_build_detector_rejects_unknown_names():
    with pytest.raises(ConfigError, match="detector.name"):
        build_detector({"name": "sift"})
    with pytest.raises(ConfigError, match="multiples of 32"):
        build_detector({"name": "yolox", "yolox": {"input_size": [400, 300]}})
    with pytest.raises(ConfigError, match="unknown COCO class"):
        build_detector({"name": "yolox", "yolox": {"classes": ["pedestrian"]}})


def test_missing_and_corrupt_model_files(tmp_path):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(DataError, match=f"{missing}: YOLOX model file does not exist"):
        YoloxDetector(model_path=missing)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(bundled_model_path().read_bytes()[:5000])  # a truncated download
    with pytest.raises(DataError, match=str(corrupt)):
        YoloxDetector(model_path=corrupt, input_size=(416, 416))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model at all" * 100)
    with pytest.raises(DataError, match=str(garbage)):
        YoloxDetector(model_path=garbage, input_size=(480, 320))


def test_yolox_runs_offline_on_synthetic_frame():
    assert bundled_model_path().is_file()
    detector = YoloxDetector(input_size=(224, 160), classes=COCO_CLASSES, batch=2, threads=1)
    frames = [np.full((90, 120, 3), 128, np.uint8), np.zeros((90, 120, 1), np.uint8)]
    out = detector.detect(frames)
    assert len(out) == 2 and all(b.shape[1] == 6 and b.dtype == np.float32 for b in out)


@pytest.mark.skipif(not PED2_FRAME.is_file(), reason=f"UCSD Ped2 frames not found at {PED2_FRAME}")
def test_yolox_finds_people_in_ped2_frame():
    frames = [cv2.imread(str(PED2_FRAME)), cv2.imread(str(PED2_FRAME.with_name("100.jpg")))]
    single = YoloxDetector(input_size=(416, 416), classes=["person"], threads=1).detect(frames)
    people = single[0]
    assert len(people) >= 5, "Ped2 test 01 frame 0 shows about ten walkers"
    assert (people[:, 5] == 0).all() and (people[:, 4] >= 0.25).all()
    assert (people[:, 2] <= 360).all() and (people[:, 3] <= 240).all()
    # the batched graph (symbolic batch dim, edited Reshape targets) gives the same boxes
    batched = YoloxDetector(input_size=(416, 416), classes=["person"], batch=2, threads=1).detect(frames)
    for a, b in zip(single, batched):
        np.testing.assert_allclose(a, b, atol=1e-2)


def test_yolox_keyframe_stride_reuses_the_last_keyframes_boxes():
    """stride k: the network sees frames 0, k, 2k, ... of a video; the others get the latest
    keyframe's boxes, whatever the grouping of frames into detect() calls."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(7)]
    settings = dict(input_size=(128, 96), classes=COCO_CLASSES, score_threshold=0.01, threads=1)
    every = YoloxDetector(**settings).detect(frames)
    assert sum(len(b) for b in every) > 0, "the test needs frames with boxes"
    assert not all(np.array_equal(every[0], b) for b in every[1:]), "frames must differ"
    strided = YoloxDetector(**settings, stride=3)
    expected = [every[i - i % 3] for i in range(len(frames))]
    for groups in ([7], [1] * 7, [2, 4, 1]):
        strided.reset()
        got, start = [], 0
        for size in groups:
            got += strided.detect(frames[start:start + size])
            start += size
        assert len(got) == len(frames)
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)
    strided.reset()  # a new video starts with a keyframe
    np.testing.assert_array_equal(strided.detect(frames[1:2])[0], every[1])
    assert build_detector({"name": "yolox", "yolox": {"input_size": [128, 96], "stride": 2}}).stride == 2
    with pytest.raises(ConfigError, match="stride"):
        YoloxDetector(**settings, stride=0)
