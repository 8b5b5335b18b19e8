"""Cube extraction (layout, crop positions, border clamping) and the on-disk cube cache."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest

from seqvad.config import DEFAULTS
from seqvad.data.videos import Video
from seqvad.errors import ConfigError, DataError
from seqvad.objects.cubes import CUBES_FILE, INDEX_FILE, MANIFEST_FILE, CubeStore, extract_cubes, window_indices
from seqvad.objects.prepare import prepare_split


def random_frames(num_frames=12, height=48, width=64, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (num_frames, height, width, channels), dtype=np.uint8)


def test_window_indices_clamp_at_borders():
    np.testing.assert_array_equal(window_indices(1, 4, 12), [0, 0, 0, 0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(window_indices(10, 4, 12), [6, 7, 8, 9, 10, 11, 11, 11, 11])
    np.testing.assert_array_equal(window_indices(0, 2, 1), [0, 0, 0, 0, 0])


def test_cube_layout_crop_positions_and_clamping():
    frames = random_frames()
    video = Video.from_array(frames, name="v")
    boxes = [np.zeros((0, 6), np.float32) for _ in frames]
    # 32x32 boxes: no resizing, so every crop must equal the frame pixels exactly
    boxes[1] = np.array([[10, 5, 42, 37, 0.9, 0]], np.float32)
    boxes[6] = np.array([[0, 0, 32, 32, 0.8, 2], [32, 16, 64, 48, 0.7, 7]], np.float32)
    boxes[11] = np.array([[20, 10, 52, 42, 1.0, -1]], np.float32)
    cubes, index = extract_cubes(video, boxes, window=4, size=32, channels=3)
    assert cubes.shape == (4, 9, 3, 32, 32) and cubes.dtype == np.uint8
    np.testing.assert_array_equal(index["frame"], [1, 6, 6, 11])
    np.testing.assert_array_equal(index["cls"], [0, 2, 7, -1])
    np.testing.assert_allclose(index["score"], [0.9, 0.8, 0.7, 1.0])
    for row, (t, box) in enumerate([(1, boxes[1][0]), (6, boxes[6][0]), (6, boxes[6][1]), (11, boxes[11][0])]):
        x1, y1, x2, y2 = box[:4].astype(int)
        for j, source in enumerate(window_indices(t, 4, len(frames))):
            expected = frames[source, y1:y2, x1:x2].transpose(2, 0, 1)  # HWC -> CHW
            np.testing.assert_array_equal(cubes[row, j], expected, err_msg=f"cube {row} position {j}")
    np.testing.assert_array_equal(cubes[0, 0], cubes[0, 3])  # frame 1, window clamped at frame 0


def test_grayscale_and_single_channel_sources():
    frames = random_frames(num_frames=3)
    boxes = [np.array([[8, 8, 40, 40]], np.float32)] * 3
    gray, _ = extract_cubes(Video.from_array(frames), boxes, window=1, size=32, channels=1)
    assert gray.shape == (3, 3, 1, 32, 32)
    np.testing.assert_array_equal(gray[1, 1, 0], cv2.cvtColor(frames[1], cv2.COLOR_BGR2GRAY)[8:40, 8:40])
    mono = frames[..., :1]
    kept, _ = extract_cubes(Video.from_array(mono), boxes, window=1, size=32, channels=1)
    np.testing.assert_array_equal(kept[2, 0, 0], mono[1, 8:40, 8:40, 0])
    colour, _ = extract_cubes(list(mono), boxes, window=1, size=32, channels=3)  # a plain frame list works too
    assert colour.shape == (3, 3, 3, 32, 32)
    np.testing.assert_array_equal(colour[0, 1, 0], colour[0, 1, 2])


def test_resize_and_fractional_boxes():
    frames = np.zeros((2, 60, 80, 1), np.uint8)
    frames[:, 10:40, 20:35] = 200  # a 15 x 30 object, like a Ped2 walker
    boxes = [np.array([[19.6, 9.5, 35.2, 40.0]], np.float32), np.zeros((0, 4), np.float32)]
    cubes, index = extract_cubes(Video.from_array(frames), boxes, window=4, size=16, channels=1)
    assert cubes.shape == (1, 9, 1, 16, 16)
    assert cubes[0, 4].mean() > 150, "the object fills the crop"
    np.testing.assert_allclose([index["x1"][0], index["y2"][0]], [19.6, 40.0])


def test_frame_count_mismatch_is_an_error():
    with pytest.raises(DataError, match="2 box lists for 3 frames"):
        extract_cubes(Video.from_array(random_frames(3)), [np.zeros((0, 4))] * 2)


# -- the cache ------------------------------------------------------------------------

def csv_boxes(tmp_path, rows):
    path = tmp_path / "boxes.csv"
    path.write_text("video,frame,x1,y1,x2,y2,score,class\n" + "".join(f"{r}\n" for r in rows))
    return path


def config_for(boxes_file, **cubes):
    return {"detector": {"name": "precomputed", "boxes": str(boxes_file)},
            "cubes": {**DEFAULTS["cubes"], **cubes}}


@pytest.fixture
def two_videos():
    return [Video.from_array(random_frames(8, seed=1), name="a"), Video.from_array(random_frames(5, seed=2), name="b")]


def test_store_round_trip_and_reuse(tmp_path, two_videos, caplog):
    boxes = csv_boxes(tmp_path, ["a,0,1,2,30,40,0.5,0", "a,7,-10,5,20,60,0.9,0", "b,3,10,10,20,30,1,-1"])
    cache = tmp_path / "cache"
    store = prepare_split(two_videos, config_for(boxes), cache, workers=1, progress=False)
    assert len(store) == 3 and store.cubes.shape == (3, 9, 1, 32, 32)
    assert store.videos == ["a", "b"] and store.frame_counts == [8, 5]
    np.testing.assert_array_equal(store.index["video"], [0, 0, 1])
    np.testing.assert_array_equal(store.index["frame"], [0, 7, 3])
    np.testing.assert_array_equal(store.index["x1"], [1, 0, 10])  # clipped to the frame
    np.testing.assert_array_equal(store.index["y2"], [40, 48, 30])
    expected, _ = extract_cubes(two_videos[1], [np.zeros((0, 4))] * 3 + [np.array([[10, 10, 20, 30]])] + [np.zeros((0, 4))],
                                channels=1)
    np.testing.assert_array_equal(store.cubes[2], expected[0])
    manifest = json.loads((cache / MANIFEST_FILE).read_text())
    assert manifest["detector"] == "precomputed" and manifest["count"] == 3
    assert [v["frames"] for v in manifest["videos"]] == [8, 5]
    assert {"cache_key", "seqvad_version", "created"} <= set(manifest)
    assert store.summary()["frames_without_objects"] == 13 - 3

    loaded = CubeStore.load(cache)
    assert isinstance(loaded.cubes, np.memmap)
    np.testing.assert_array_equal(loaded.cubes, store.cubes)

    stamp = (cache / CUBES_FILE).stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="seqvad"):
        again = prepare_split(two_videos, config_for(boxes), cache, workers=1, progress=False)
    assert (cache / CUBES_FILE).stat().st_mtime_ns == stamp, "same settings must reuse the cache"
    assert "reusing" in caplog.text and len(again) == 3


def test_changed_config_rebuilds(tmp_path, two_videos, caplog):
    boxes = csv_boxes(tmp_path, ["a,2,1,2,30,40"])
    cache = tmp_path / "cache"
    prepare_split(two_videos, config_for(boxes), cache, workers=1, progress=False)
    with caplog.at_level(logging.WARNING):
        store = prepare_split(two_videos, config_for(boxes, size=16), cache, workers=1, progress=False)
    assert "settings changed" in caplog.text
    assert store.cubes.shape == (1, 9, 1, 16, 16)
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # the boxes file content is part of the key as well
        boxes.write_text(boxes.read_text() + "b,1,1,2,30,40\n")
        store = prepare_split(two_videos, config_for(boxes, size=16), cache, workers=1, progress=False)
    assert "settings changed" in caplog.text and len(store) == 2


def test_another_draw_of_the_synthetic_scene_rebuilds(tmp_path, caplog):
    """Same video names and lengths, other frames (data.scene_seed): the cache must not be reused."""
    from seqvad.data.synthetic import make_scene, scene_from_config

    config = {"detector": {"name": "motion", "motion": {"warmup": 0}}, "cubes": DEFAULTS["cubes"]}
    first = make_scene(scene_from_config({"scene": "tiny"}))[0]
    again = make_scene(scene_from_config({"scene": "tiny", "scene_seed": 0}))[0]
    other = make_scene(scene_from_config({"scene": "tiny", "scene_seed": 5}))[0]
    assert [v.name for v in first] == [v.name for v in other]
    cache = tmp_path / "cache"
    prepare_split(first, config, cache, workers=1, progress=False)
    with caplog.at_level(logging.WARNING):
        prepare_split(again, config, cache, workers=1, progress=False)  # the same scene: reused
    assert "rebuilding" not in caplog.text
    with caplog.at_level(logging.WARNING):
        prepare_split(other, config, cache, workers=1, progress=False)
    assert "other content" in caplog.text


def test_truncated_cube_file_is_rebuilt(tmp_path, two_videos, caplog):
    boxes = csv_boxes(tmp_path, ["a,2,1,2,30,40", "a,3,1,2,30,40"])
    cache = tmp_path / "cache"
    first = np.array(prepare_split(two_videos, config_for(boxes), cache, workers=1, progress=False).cubes)
    data = (cache / CUBES_FILE).read_bytes()
    (cache / CUBES_FILE).write_bytes(data[: len(data) - 1000])  # an interrupted copy
    with pytest.raises(DataError, match=CUBES_FILE):
        CubeStore.load(cache)
    with caplog.at_level(logging.WARNING):
        store = prepare_split(two_videos, config_for(boxes), cache, workers=1, progress=False)
    assert "damaged cache" in caplog.text
    np.testing.assert_array_equal(store.cubes, first)
    (cache / INDEX_FILE).unlink()  # a missing file is damage too
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        prepare_split(two_videos, config_for(boxes), cache, workers=1, progress=False)
    assert "damaged cache" in caplog.text and CubeStore.load(cache).cubes.shape[0] == 2


def test_video_without_objects_gives_empty_store(tmp_path, caplog):
    still = Video.from_array(np.full((10, 40, 40, 3), 90, np.uint8), name="still")
    config = {"detector": {**DEFAULTS["detector"], "name": "motion"}, "cubes": DEFAULTS["cubes"]}
    with caplog.at_level(logging.WARNING):
        store = prepare_split([still], config, tmp_path / "cache", workers=1, progress=False)
    assert len(store) == 0 and store.cubes.shape == (0, 9, 1, 32, 32)
    assert "no objects" in caplog.text
    reloaded = CubeStore.load(tmp_path / "cache")
    assert reloaded.frame_counts == [10] and len(reloaded.index["frame"]) == 0


def test_worker_processes_match_inline(tmp_path):
    from test_detectors import moving_scene

    videos = [Video.from_array(moving_scene(num_frames=20, seed=s)[0], name=f"v{s}") for s in (0, 1)]
    config = {"detector": {**DEFAULTS["detector"], "name": "motion"}, "cubes": DEFAULTS["cubes"]}
    inline = prepare_split(videos, config, tmp_path / "one", workers=1, progress=False)
    pooled = prepare_split(videos, config, tmp_path / "two", workers=2, progress=False)
    assert len(inline) > 20
    np.testing.assert_array_equal(inline.cubes, pooled.cubes)
    for name in inline.index:
        np.testing.assert_array_equal(inline.index[name], pooled.index[name])


def test_precomputed_npy_split_file_through_prepare(tmp_path, two_videos, monkeypatch):
    from seqvad.objects.detectors import precomputed

    monkeypatch.setattr(precomputed, "_PICKLE_ALLOWED", set())
    per_frame = np.empty(13, dtype=object)  # 8 + 5 frames of the split, joined in order
    per_frame[:] = [np.zeros((0, 4), np.float32)] * 13
    per_frame[9] = np.array([[4, 4, 36, 36]], np.float32)  # video b, frame 1
    np.save(tmp_path / "boxes_test.npy", per_frame, allow_pickle=True)
    config = {"data": {"root": str(tmp_path)},
              "detector": {"name": "precomputed", "boxes": "boxes_{split}.npy", "allow_pickle": True},
              "cubes": DEFAULTS["cubes"]}
    # pickles load only for a file named on the command line (--allow-pickle), never by a config
    with pytest.raises(ConfigError, match="pickled object array"):
        prepare_split(two_videos, config, tmp_path / "cache2", split="test", workers=1, progress=False)
    precomputed.allow_pickle_for(tmp_path / "boxes_test.npy")
    store = prepare_split(two_videos, config, tmp_path / "cache", split="test", workers=1, progress=False)
    np.testing.assert_array_equal(store.index["video"], [1])
    np.testing.assert_array_equal(store.index["frame"], [1])
    assert store.manifest["boxes_file"] == str(tmp_path / "boxes_test.npy")
