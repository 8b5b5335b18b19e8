"""A video is decoded once per command: no counting pass, no warm-up seeking across the file."""

import cv2
import numpy as np
import pytest

from conftest import write_avi
from seqvad.data import videos as videos_module
from seqvad.data.videos import Video
from seqvad.errors import ConfigError, DataError
from seqvad.objects.detectors import motion as motion_module
from seqvad.objects.detectors.motion import MotionDetector
from seqvad.stream import sources as sources_module

FRAMES = 30


def moving_block(n=FRAMES, h=48, w=64):
    frames = np.full((n, h, w, 3), 120, np.uint8)
    for t in range(n):
        frames[t, 10:22, t % (w - 12):t % (w - 12) + 12] = 20
    return frames


class Decodes:
    """Counts the frames every cv2.VideoCapture decodes (read and grab that succeed)."""

    def __init__(self):
        self.count = 0
        counter, real = self, cv2.VideoCapture

        class Counting:  # a wrapper: a Python subclass of cv2.VideoCapture crashes in garbage collection
            def __init__(self, *args):
                self._capture = real(*args)

            def read(self, *args):
                ok, frame = self._capture.read(*args)
                counter.count += bool(ok)
                return ok, frame

            def grab(self):
                ok = self._capture.grab()
                counter.count += bool(ok)
                return ok

            def __getattr__(self, name):
                return getattr(self._capture, name)

        self.capture = Counting


@pytest.fixture
def decodes(monkeypatch):
    counter = Decodes()
    monkeypatch.setattr(videos_module.cv2, "VideoCapture", counter.capture)
    return counter


@pytest.fixture
def avi(tmp_path):
    return write_avi(tmp_path / "clip.avi", moving_block())


def test_detect_video_reads_a_file_once_and_learns_its_length(avi, decodes):
    video = Video.from_file(avi)  # decodes frame 0 to check the file, then closes it
    boxes = MotionDetector(warmup=10).detect_video(video)
    # one pass, no counting pass, no warm-up seeks (frame 0 is decoded again when reading starts)
    assert len(boxes) == FRAMES and decodes.count == FRAMES + 1
    assert len(video) == FRAMES and decodes.count == FRAMES + 1  # the true length, learnt at the end


def test_prepare_reads_each_video_file_once(tmp_path, decodes):
    from seqvad.objects.prepare import prepare_split

    paths = [write_avi(tmp_path / f"v{i}.avi", moving_block()[i:]) for i in range(2)]
    config = {"detector": {"name": "motion", "motion": {"warmup": 10}}}
    videos = [Video.from_file(p) for p in paths]
    opened = decodes.count
    store = prepare_split(videos, config, tmp_path / "cubes", workers=1, progress=False)
    assert store.frame_counts == [FRAMES, FRAMES - 1] and len(store) > 0
    # boxes and cubes from one read of each file (frame 0 again when reading starts), no counting pass
    assert decodes.count - opened == FRAMES + (FRAMES - 1)
    again = decodes.count
    reused = prepare_split([Video.from_file(p) for p in paths], config, tmp_path / "cubes", workers=1, progress=False)
    assert len(reused) == len(store) and decodes.count - again == 2  # the check decodes frame 0 only


@pytest.mark.parametrize("warmup", [4, 10])  # a span of 20 frames, and one longer than the video
def test_motion_warm_up_learns_from_the_first_frames(warmup):
    frames = moving_block()
    primed = MotionDetector(warmup=warmup)
    assert primed.warmup_frames == motion_module.WARMUP_SPAN * warmup
    primed.reset()
    primed.prime(frames[:primed.warmup_frames])
    expected = primed.detect(list(frames))
    got = MotionDetector(warmup=warmup).detect_video(Video.from_array(frames))
    assert len(got) == FRAMES and all(np.array_equal(a, b) for a, b in zip(got, expected))
    assert sum(len(b) for b in got) > FRAMES // 2  # the block is found


def test_streaming_a_file_decodes_each_frame_once(avi, decodes, monkeypatch, tmp_path):
    from test_compact import tiny_model

    from seqvad.api import Detector
    from seqvad.stream import open_source, stream_scores

    monkeypatch.setattr(sources_module.cv2, "VideoCapture", decodes.capture)
    model = Detector({"detector": {"name": "motion", "motion": {"warmup": 10}},
                      "model": {"width": 4, "latent": 8, "projection": 8}}, device="cpu")
    model.model = tiny_model()
    source = open_source(avi)
    scored = list(stream_scores(model, source.frames))
    assert [s.index for s in scored] == list(range(FRAMES))
    assert decodes.count == FRAMES
    np.testing.assert_allclose([s.raw for s in scored], model.score(Video.from_file(avi), smoothed=False),
                               rtol=1e-5, atol=1e-9)  # and the scores are batch scoring's


@pytest.mark.parametrize("length", [1, 3, 9, 20])
def test_cutting_while_reading_equals_cutting_the_whole_video(length):
    from seqvad.objects.cubes import extract_cubes
    from seqvad.objects.cutter import cut_stream

    rng = np.random.default_rng(length)
    frames = rng.integers(0, 256, (length, 40, 56, 3), dtype=np.uint8)
    boxes = [np.array([[x, 5, x + 20, 30, 0.9, 0]], np.float32) if rng.random() < 0.6 else np.zeros((0, 6), np.float32)
             for x in rng.integers(0, 30, length)]
    boxes[0] = boxes[-1] = np.array([[0, 0, 12, 9, 0.5, 2], [30, 20, 56, 40, 0.4, 1]], np.float32)  # the borders
    expected, expected_index = extract_cubes(Video.from_array(frames), boxes)
    cubes, index = cut_stream(zip(frames, boxes))
    np.testing.assert_array_equal(cubes, expected)
    for name in expected_index:
        assert index[name].dtype == expected_index[name].dtype
        np.testing.assert_array_equal(index[name], expected_index[name])


def test_labels_are_checked_against_the_container_count_without_decoding(avi, decodes):
    video = Video.from_file(avi, labels=np.zeros(FRAMES))
    assert decodes.count == 1  # frame 0, to check the file
    with pytest.raises(DataError, match=f"{FRAMES + 1} labels for {FRAMES} frames"):
        Video.from_file(avi, labels=np.zeros(FRAMES + 1))  # a disagreement is counted, then refused
    assert len(video.labels) == FRAMES


def test_an_object_standing_through_the_first_seconds_leaves_no_ghost():
    """A block stands still for the first 60 frames (2.4 s at 25 frames/s), then walks away. A warm-up
    spread over only those 60 frames learns the block as background, and its empty starting place
    then comes out as a moving "ghost" box for most of the video (30 of frames 75..119 with the
    earlier span of 3); the warm-up span must reach past it (results/ped2/cube_drift.json)."""
    rng = np.random.default_rng(0)
    frames = []
    for t in range(120):
        image = np.full((64, 96), 90, np.uint8) + rng.integers(0, 4, (64, 96), dtype=np.uint8)
        x = 16 if t < 60 else 16 + 2 * (t - 60)
        image[24:40, x:x + 12] = 220
        frames.append(image)
    boxes = MotionDetector(warmup=20).detect_video(Video.from_array(np.stack(frames)))
    ghosts = [t for t in range(75, 120) if any(b[0] < 28 and b[2] > 16 for b in boxes[t])]
    assert ghosts == []
    assert all(any(b[0] >= 16 + 2 * (t - 60) - 2 for b in boxes[t]) for t in range(75, 95))  # the block is found (it leaves at 100)


def standing_then_walking(stand: int, frames: int = 160) -> np.ndarray:
    rng = np.random.default_rng(0)
    out = []
    for t in range(frames):
        image = np.full((64, 96), 90, np.uint8) + rng.integers(0, 4, (64, 96), dtype=np.uint8)
        x = 16 if t < stand else min(16 + 2 * (t - stand), 80)
        image[24:40, x:x + 12] = 220
        out.append(image)
    return np.stack(out)


def test_a_cleaned_warm_up_does_not_learn_who_stands_in_it_as_background():
    """A block stands for the first 30 frames of the 100-frame warm-up span (6 of its 20 frames), then
    walks away. Learnt as it is, it becomes background: while it stands, nothing is found there (on
    Ped2: people at the start cut into fragment boxes). With ``warmup_clean`` the frames it covers
    are painted over by the per-pixel median (the scene without it, as it covers those pixels in
    fewer than half the frames), so it is found from frame 0 until the model absorbs it standing.
    Limit: an object covering a pixel in more than half the warm-up frames is the median there."""
    frames = standing_then_walking(stand=30)

    def found_standing(boxes):
        return [t for t in range(30) if any(b[0] <= 17 and b[2] >= 27 and b[1] <= 25 and b[3] >= 39 for b in boxes[t])]

    plain = MotionDetector(warmup=20).detect_video(Video.from_array(frames))
    cleaned = MotionDetector(warmup=20, warmup_clean=25).detect_video(Video.from_array(frames))
    assert found_standing(plain) == []  # the failure the cleaning is for
    assert found_standing(cleaned)[:10] == list(range(10))
    walking = range(40, 60)  # and the walking block is found with or without the cleaning
    assert all(any(b[2] >= 16 + 2 * (t - 30) + 10 for b in boxes[t]) for boxes in (plain, cleaned) for t in walking)


def test_clean_of_passers_by_keeps_the_sensor_noise():
    rng = np.random.default_rng(1)
    grays = [np.clip(100 + rng.normal(0, 3, (20, 30)), 0, 255).astype(np.uint8) for _ in range(9)]
    grays[2][5:10, 5:10] = 250  # something passing in one frame of nine
    cleaned = motion_module.clean_of_passers_by(grays, 25)
    median = np.median(np.stack(grays), axis=0).astype(np.uint8)
    assert np.array_equal(cleaned[2][5:10, 5:10], median[5:10, 5:10])
    assert all(np.array_equal(c[15:, 20:], g[15:, 20:]) for c, g in zip(cleaned, grays))  # far from it: untouched
    with pytest.raises(ConfigError, match="warmup_clean"):
        MotionDetector(warmup_clean=-1)


def test_a_model_file_from_before_the_cleaning_keeps_the_plain_warm_up():
    """A model trained on boxes of the plain warm-up gets those boxes again (its stored config has no
    ``warmup_clean``); a file that names it keeps its value."""
    from seqvad.api import Detector, stored_detector_settings
    from seqvad.config import load_config

    old = load_config("ped2")
    del old["detector"]["motion"]["warmup_clean"]
    assert Detector(stored_detector_settings(old)).config["detector"]["motion"]["warmup_clean"] == 0
    new = load_config("ped2")
    assert new["detector"]["motion"]["warmup_clean"] > 0 and stored_detector_settings(new) is new
