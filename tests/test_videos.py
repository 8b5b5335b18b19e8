import numpy as np
import pytest

from conftest import random_frames, write_avi, write_frames
from seqvad.data.videos import Video
from seqvad.errors import DataError


def test_frame_folder_natural_order_and_lazy_read(tmp_path):
    frames = random_frames(12)
    folder = tmp_path / "v"
    folder.mkdir()
    import cv2
    for i, frame in enumerate(frames):  # unpadded names: 'f10' must follow 'f9'
        cv2.imwrite(str(folder / f"f{i}.png"), frame)
    video = Video.from_folder(folder)
    assert video.name == "v" and len(video) == 12
    assert video.frame(10).dtype == np.uint8 and video.frame(10).shape == (24, 32, 3)
    np.testing.assert_array_equal(video.frame(10), frames[10])
    np.testing.assert_array_equal(video[-1], frames[-1])
    with pytest.raises(IndexError):
        video.frame(12)


def test_video_file_random_access(tmp_path):
    frames = np.zeros((20, 32, 48, 3), np.uint8)
    for i in range(20):
        frames[i, :, :, :] = i * 10  # flat frames survive MJPG almost exactly
    video = Video.from_file(write_avi(tmp_path / "clip.avi", frames, fps=12))
    assert len(video) == 20 and video.fps == pytest.approx(12)
    for i in (5, 3, 19, 0, 7):  # backwards and forwards jumps
        assert abs(int(video.frame(i).mean()) - i * 10) <= 2


def test_labels_must_match_frames(tmp_path):
    folder = write_frames(tmp_path / "v", random_frames(5))
    with pytest.raises(DataError, match="5 frames"):
        Video.from_folder(folder, labels=np.zeros(4))
    assert Video.from_folder(folder, labels=[0, 1, 1, 0, 0]).labels.sum() == 2


def test_mixed_frame_sizes_are_refused(tmp_path):
    folder = write_frames(tmp_path / "v", random_frames(3))
    import cv2
    cv2.imwrite(str(folder / "003.png"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(DataError, match=r"003.png.*differs"):
        Video.from_folder(folder).check()


def test_empty_folder_and_missing_paths(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image frames"):
        Video.from_folder(tmp_path / "empty")
    with pytest.raises(DataError, match="no such video"):
        Video.open(tmp_path / "nothing.avi")


def test_unreadable_and_truncated_video_files(tmp_path):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"this is not a video")
    with pytest.raises(DataError, match="bad.avi"):
        Video.from_file(bad)
    good = write_avi(tmp_path / "good.avi", random_frames(30, 64, 64))
    data = good.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    try:
        video = Video.from_file(cut)
    except DataError as exc:  # some builds refuse the cut file outright: also a clear error
        assert "cut.avi" in str(exc)
        return
    with pytest.raises(DataError, match="cut.avi.*truncated"):
        video.check()
