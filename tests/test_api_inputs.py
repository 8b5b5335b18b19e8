"""seqvad.api.Detector takes paths, lists of paths, numpy arrays (T, H, W[, C]) and Videos;
predict and events agree with score and the model's threshold."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import write_avi, write_frames
from seqvad.api import Detector
from seqvad.data.inputs import as_video, as_videos
from seqvad.errors import DataError
from seqvad.scoring.events import Event
from test_detect import ANOMALY, TEST_FRAMES, TINY_CONFIG, scene


@pytest.fixture(scope="module")
def model():
    # grey arrays (T, H, W): the (T, H, W, C) case is every other test
    train = [scene(40, seed)[..., 0] for seed in range(3)]
    return Detector(TINY_CONFIG).fit(train, progress=False, workers=1)


def test_a_path_a_frame_folder_and_an_array_score_alike(model, tmp_path):
    frames = scene(TEST_FRAMES, seed=7, anomaly=ANOMALY)
    folder = write_frames(tmp_path / "clip", frames)
    from_array, from_folder = model.score(frames), model.score(str(folder))
    assert from_array.shape == (TEST_FRAMES,)
    np.testing.assert_allclose(from_array, from_folder, rtol=1e-6)
    both = model.score([frames, folder])
    assert isinstance(both, list) and len(both) == 2
    np.testing.assert_allclose(both[1], from_folder, rtol=1e-6)


def test_predict_and_events_follow_the_threshold(model):
    frames = scene(TEST_FRAMES, seed=7, anomaly=ANOMALY)
    scores, flags = model.score(frames), model.predict(frames)
    assert flags.dtype == np.uint8 and set(np.unique(flags)) <= {0, 1}
    np.testing.assert_array_equal(flags, (scores > model.threshold).astype(np.uint8))
    events = model.events(frames)
    assert all(isinstance(e, Event) for e in events)
    for event in events:
        assert flags[event.start] == 1 and event.peak_score == pytest.approx(scores[event.peak_frame])
    assert any(e.start < ANOMALY[1] and e.end >= ANOMALY[0] for e in events)


def test_inputs_are_checked_and_a_folder_of_videos_is_many(tmp_path):
    with pytest.raises(DataError, match="uint8"):
        as_video(np.zeros((4, 8, 8), np.float32))
    with pytest.raises(DataError, match=r"\(T, H, W\)"):
        as_video(np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match="cannot read a video from a dict"):
        as_video({})
    for i in range(2):
        write_avi(tmp_path / "videos" / f"v{i}.avi", scene(5, i))
    write_frames(tmp_path / "videos" / "frames3", scene(5, 3))
    assert [v.name for v in as_videos(tmp_path / "videos")] == ["frames3", "v0", "v1"]
    assert [len(v) for v in as_videos(tmp_path / "videos" / "frames3")] == [5]  # a frame folder is one video
    assert [v.name for v in as_videos([scene(5, 0), scene(5, 1)])] == ["array0", "array1"]
