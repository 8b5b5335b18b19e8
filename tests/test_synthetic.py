"""The built-in synthetic scene: sizes, labels vs masks, determinism, difficulty, disk layout."""

from __future__ import annotations

import pickle
from dataclasses import replace

import cv2
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from seqvad.data.synthetic import ANOMALY_KINDS, SceneConfig, SyntheticScene, make_scene, write_scene
from seqvad.data.videos import Video
from seqvad.errors import ConfigError


@pytest.fixture(scope="module")
def tiny():
    return SyntheticScene(SceneConfig.tiny())


@pytest.fixture(scope="module")
def demo():
    return SyntheticScene(SceneConfig.demo())  # planning only: frames are rendered on demand


def test_tiny_sizes_are_as_configured(tiny):
    c = tiny.config
    train, test = tiny.train_videos(), tiny.test_videos()
    assert (len(train), len(test)) == (c.train_videos, c.test_videos)
    for video in train + test:
        assert len(video) == c.frames_per_video == len(video.labels)
        frame = video.frame(len(video) - 1)
        assert frame.shape == (c.height, c.width, 3) and frame.dtype == np.uint8
        assert video.fps == c.fps
    assert len({v.name for v in train + test}) == len(train) + len(test)  # names usable as file names


def test_train_videos_are_normal(tiny):
    for video in tiny.train_videos():
        assert not video.labels.any()
        assert not any(actor.abnormal for actor in video.reader.actors)
        assert any(actor.kind == "walker" for actor in video.reader.actors)


def test_labels_match_masks(tiny):
    for video in tiny.test_videos():
        from_masks = np.array([video.mask(i).any() for i in range(len(video))], dtype=np.uint8)
        np.testing.assert_array_equal(video.labels, from_masks)
        assert 0 < video.labels.sum() < len(video)  # both classes in each test video
        mask = video.mask(int(np.argmax(video.labels)))
        assert mask.dtype == bool and mask.shape == video.shape[:2]


def test_masks_cover_the_drawn_object(tiny):
    """Inside the mask the frame departs from the empty background far more than outside."""
    background = tiny.background.astype(np.float32)
    for video in tiny.test_videos():
        i = int(np.argmax(video.labels))
        mask = video.mask(i)
        difference = np.abs(video.frame(i).astype(np.float32) - background).mean(axis=2)
        assert difference[mask].mean() > 3 * np.median(difference[~mask]) + 10


def test_same_seed_same_scene_other_seed_other_scene(tiny):
    again = SyntheticScene(SceneConfig.tiny())
    other = SyntheticScene(replace(SceneConfig.tiny(), seed=1))
    for a, b, c in zip(tiny.test_videos(), again.test_videos(), other.test_videos()):
        np.testing.assert_array_equal(a.labels, b.labels)
        for i in (0, len(a) // 2, len(a) - 1):
            np.testing.assert_array_equal(a.frame(i), b.frame(i))
            np.testing.assert_array_equal(a.mask(i), b.mask(i))
        assert not np.array_equal(a.frame(len(a) // 2), c.frame(len(c) // 2))


def test_frames_are_random_access_and_picklable(tiny):
    video = tiny.test_videos()[0]
    late, early = video.frame(30).copy(), video.frame(3).copy()
    fresh = SyntheticScene(SceneConfig.tiny()).test_videos()[0]
    np.testing.assert_array_equal(fresh.frame(3), early)  # read order does not matter
    np.testing.assert_array_equal(fresh.frame(30), late)
    copy = pickle.loads(pickle.dumps(video))  # worker processes receive videos by pickling
    np.testing.assert_array_equal(copy.frame(30), late)
    np.testing.assert_array_equal(copy.mask(30), video.mask(30))
    # consecutive frames differ (sensor noise), never identical copies
    assert not np.array_equal(video.frame(10), video.frame(11))


def test_every_anomaly_kind_in_the_demo_test_set(demo):
    assert {event.kind for event in demo.events} == set(ANOMALY_KINDS)
    labels = np.concatenate([v.labels for v in demo.test_videos()])
    assert 0.25 <= labels.mean() <= 0.55
    for event in demo.events:  # each event is labelled over its visible span
        video = next(v for v in demo.test_videos() if v.name == event.video)
        assert video.labels[event.first_frame:event.last_frame + 1].all()


def test_demo_crowd_varies_so_object_count_does_not_give_labels_away(demo):
    """Some normal frames hold more objects than some abnormal ones."""
    normal, abnormal = [], []
    for video in demo.test_videos():
        counts = np.array([len(boxes) for boxes in demo.object_boxes(video)])
        normal.append(counts[video.labels == 0])
        abnormal.append(counts[video.labels == 1])
    normal, abnormal = np.concatenate(normal), np.concatenate(abnormal)
    assert normal.max() > abnormal.min() + 2
    assert len(np.unique(normal)) >= 4


def test_fast_kinds_are_faster_than_walkers(demo):
    speeds = {}
    for video in demo.train_videos() + demo.test_videos():
        for actor in video.reader.actors:
            kind = actor.event or actor.kind
            speeds.setdefault(kind, []).append(float(np.hypot(*actor.velocity)))
    walking = np.median(speeds["walker"])
    assert 0.5 <= walking <= 1.6  # px/frame at 240 rows
    assert min(speeds["bike"]) > 2.5 * walking and min(speeds["runner"]) > 2 * walking


def test_naive_motion_baseline_is_far_from_perfect():
    """Frame score = mean absolute frame difference must not solve the scene."""
    _, test = make_scene("quick")
    scores, labels = [], []
    for video in test:
        gray = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in video]).astype(np.float32)
        motion = np.abs(np.diff(gray, axis=0)).mean(axis=(1, 2))
        scores.append(np.r_[motion[0], motion])
        labels.append(video.labels)
    auc = roc_auc_score(np.concatenate(labels), np.concatenate(scores))
    assert auc < 0.85


def test_presets_and_config_errors():
    train, test = make_scene("tiny")
    assert len(train) == 2 and all(isinstance(v, Video) for v in train + test)
    assert SceneConfig.demo().height == 240 and SceneConfig.quick().height < 240
    with pytest.raises(ConfigError, match="unknown synthetic scene"):
        make_scene("huge")
    with pytest.raises(ConfigError, match="anomaly_kinds"):
        SyntheticScene(replace(SceneConfig.tiny(), anomaly_kinds=("meteor",)))
    with pytest.raises(ConfigError, match="pedestrians"):
        SyntheticScene(replace(SceneConfig.tiny(), pedestrians=(4, 2)))


def test_only_the_requested_kinds_appear():
    scene = SyntheticScene(replace(SceneConfig.tiny(), anomaly_kinds=("bike",), test_videos=3))
    assert {e.kind for e in scene.events} == {"bike"}


def test_write_scene_folder_layout(tmp_path):
    config = replace(SceneConfig.tiny(), train_videos=1, test_videos=1, frames_per_video=12)
    root = write_scene(tmp_path / "scene", config)
    train, test = make_scene(config)
    frames = sorted((root / "training" / train[0].name).glob("*.png"))
    assert [p.name for p in frames[:2]] == ["000.png", "001.png"] and len(frames) == 12
    back = Video.from_folder(root / "testing" / test[0].name)
    np.testing.assert_array_equal(back.frame(7), test[0].frame(7))  # PNG is lossless
    labels = np.load(root / "labels" / f"{test[0].name}.npy")
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, test[0].labels)
    assert not (root / "labels" / f"{train[0].name}.npy").exists()
