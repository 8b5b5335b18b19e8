import numpy as np
import pytest
import scipy.io

from conftest import random_frames, require_data, write_avi, write_frames
from seqvad.data import datasets as D
from seqvad.data.labels import read_ucsd_m
from seqvad.errors import DataError


# -- fixtures in the official and re-packaged layouts ------------------------------------------

def make_ped2(root, counts=(6, 8), train_counts=(5,)):
    for i, n in enumerate(train_counts, 1):
        write_frames(root / "training" / "frames" / f"{i:02d}", random_frames(n, seed=i), ".jpg")
    gt_lines = ["TestVideoFile = {};"]
    for i, n in enumerate(counts, 1):
        write_frames(root / "testing" / "frames" / f"{i:02d}", random_frames(n, seed=10 + i), ".jpg")
        gt_lines.append(f"TestVideoFile{{end+1}}.gt_frame = [2:{n - 1}];")
        masks = np.zeros((n, 24, 32), np.uint8)
        masks[1:n - 1, 5:9, 5:9] = 255
        write_frames(root / "ground_truth" / "pixel_masks" / f"Test{i:03d}_gt", masks, ".png")
    (root / "ground_truth").mkdir(parents=True, exist_ok=True)
    (root / "ground_truth" / "UCSDped2.m").write_text("\n".join(gt_lines) + "\n")
    return root


def test_ped2_repackaged_layout_with_masks(tmp_path):
    data = D.load_dataset("ped2", make_ped2(tmp_path / "ped2"))
    assert [len(v) for v in data.test] == [6, 8] and len(data.train) == 1
    assert [int(v.labels.sum()) for v in data.test] == [4, 6]  # [2:n-1] in 1-based frames
    assert data.test[0].labels[0] == 0 and data.test[0].labels[1] == 1  # 1-based -> 0-based
    for video in data.test:
        for i in range(len(video)):
            assert video.mask(i).any() == bool(video.labels[i])


def test_ped2_all_three_label_files_agree(tmp_path):
    root = make_ped2(tmp_path / "ped2")
    base = D.load_dataset("ped2", root)
    joined = np.concatenate([v.labels for v in base.test])[None].astype(np.int64)
    np.save(root / "ground_truth" / "frame_labels_ped2.npy", joined)
    cell = np.empty((1, 2), dtype=object)
    cell[0, 0], cell[0, 1] = np.array([[2], [5]]), np.array([[2], [7]])
    scipy.io.savemat(root / "ground_truth" / "ped2.mat", {"gt": cell})
    for name in ("frame_labels_ped2.npy", "ped2.mat"):
        other = D.load_dataset("ped2", root, labels=root / "ground_truth" / name)
        for a, b in zip(base.test, other.test):
            np.testing.assert_array_equal(a.labels, b.labels)


def test_ped2_official_layout(tmp_path):
    root = tmp_path / "UCSDped2"
    write_frames(root / "Train" / "Train001", random_frames(4), ".tif")
    write_frames(root / "Test" / "Test001", random_frames(5), ".tif")
    (root / "Test" / "UCSDped2.m").write_text("TestVideoFile{end+1}.gt_frame = [1:2, 4:5];\n")
    data = D.load_dataset("ped2", tmp_path)  # the parent of UCSDped2/ works too
    assert data.test[0].labels.tolist() == [1, 1, 0, 1, 1] and len(data.train[0]) == 4


def test_label_count_different_from_frame_count(tmp_path):
    root = make_ped2(tmp_path / "ped2")
    (root / "ground_truth" / "UCSDped2.m").write_text("TestVideoFile{end+1}.gt_frame = [1:3];\n")
    with pytest.raises(DataError, match=r"UCSDped2.m: labels for 1 videos but 2 test videos"):
        D.load_dataset("ped2", root)
    np.save(root / "ground_truth" / "bad.npy", np.zeros(13, np.int64))
    with pytest.raises(DataError, match=r"bad.npy: 13 labels but the videos have 14 frames"):
        D.load_dataset("ped2", root, labels=root / "ground_truth" / "bad.npy")


def make_avenue_official(root, counts=(6, 4)):
    for i, n in enumerate(counts, 1):
        write_avi(root / "training_videos" / f"{i:02d}.avi", random_frames(n + 2, 32, 48, seed=i))
        write_avi(root / "testing_videos" / f"{i:02d}.avi", random_frames(n, 32, 48, seed=20 + i))
        cells = np.empty((1, n), dtype=object)
        for f in range(n):
            mask = np.zeros((32, 48), np.uint8)
            if f % 2:
                mask[3:6, 3:6] = 1
            cells[0, f] = mask
        gt = root / "ground_truth_demo" / "testing_label_mask"
        gt.mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(gt / f"{i}_label.mat", {"volLabel": cells})
    return root


def test_avenue_official_layout_masks_and_intervals(tmp_path):
    root = make_avenue_official(tmp_path / "avenue")
    data = D.load_dataset("avenue", root)
    assert [len(v) for v in data.test] == [6, 4] and [len(v) for v in data.train] == [8, 6]
    assert data.test[0].labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert "masks" in data.label_source
    assert data.test[1].mask(1).sum() == 9 and not data.test[1].mask(0).any()
    np.save(root / "ground_truth_demo" / "frame_labels_avenue.npy", np.ones((1, 10), np.int8))
    intervals = D.load_dataset("avenue", root, avenue_labels="intervals")
    assert "intervals" in intervals.label_source
    assert all(v.labels.all() for v in intervals.test)


def test_shanghaitech_layout(tmp_path):
    root = tmp_path / "shanghaitech"
    write_avi(root / "training" / "videos" / "01_001.avi", random_frames(5, 32, 48))
    for name, n in (("01_0014", 4), ("01_0015", 3)):
        write_frames(root / "testing" / "frames" / name, random_frames(n), ".jpg")
        (root / "testing" / "test_frame_mask").mkdir(parents=True, exist_ok=True)
        np.save(root / "testing" / "test_frame_mask" / f"{name}.npy", np.r_[np.zeros(n - 1), 1].astype(np.uint8))
    data = D.load_dataset("shanghaitech", root)
    assert [v.name for v in data.test] == ["01_0014", "01_0015"]
    assert [int(v.labels.sum()) for v in data.test] == [1, 1] and len(data.train[0]) == 5


def test_folder_dataset_with_interval_csv(tmp_path):
    root = tmp_path / "cam"
    write_avi(root / "training" / "monday.avi", random_frames(6, 32, 48))
    write_frames(root / "training" / "tuesday", random_frames(4))
    write_frames(root / "testing" / "wednesday", random_frames(7))
    labels = tmp_path / "labels.csv"
    labels.write_text("video,start,end\nwednesday,2,4\n")
    data = D.load_dataset("folder", root, labels=labels)
    assert [v.name for v in data.train] == ["monday", "tuesday"]
    assert data.test[0].labels.tolist() == [0, 0, 1, 1, 1, 0, 0]
    labels.write_text("video,start,end\nwednesday,2,9\n")
    with pytest.raises(DataError, match="labels.csv: line 2"):
        D.load_dataset("folder", root, labels=labels)


def test_bad_roots_and_names(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="dataset root does not exist"):
        D.load_dataset("ped2", tmp_path / "missing")
    with pytest.raises(DataError, match="unknown dataset"):
        D.load_dataset("ped3", tmp_path)
    (tmp_path / "folder" / "training").mkdir(parents=True)
    with pytest.raises(DataError, match="training: no videos"):
        D.load_dataset("folder", tmp_path / "folder")
    monkeypatch.delenv("SEQVAD_DATA", raising=False)
    with pytest.raises(DataError, match="SEQVAD_DATA"):
        D.load_dataset("ped2")


# -- the real label files and Ped2 frames --------------------------------------------------------

def test_real_ped2_counts_and_labels():
    root = require_data("ped2")
    data = D.load_dataset("ped2", root)
    assert (len(data.train), sum(map(len, data.train))) == (16, 2550)
    assert (len(data.test), sum(map(len, data.test))) == (12, 2010)
    gt = root / "ground_truth"
    by_file = {}
    for name in ("UCSDped2.m", "frame_labels_ped2.npy", "ped2.mat"):
        loaded = D.load_dataset("ped2", root, labels=gt / name)
        by_file[name] = np.concatenate([v.labels for v in loaded.test])
        assert by_file[name].sum() == 1648
    assert (by_file["UCSDped2.m"] == by_file["frame_labels_ped2.npy"]).all()
    assert (by_file["UCSDped2.m"] == by_file["ped2.mat"]).all()
    for video in data.test:  # pixel masks agree with frame labels
        derived = np.array([video.mask(i).any() for i in range(len(video))], np.uint8)
        np.testing.assert_array_equal(derived, video.labels)


def test_real_avenue_labels_both_conventions():
    gt = require_data("avenue", "ground_truth")
    masks, source, _ = D.avenue_test_labels(gt, "masks")
    assert (len(masks), sum(map(len, masks)), int(sum(m.sum() for m in masks))) == (21, 15324, 3712)
    intervals, source2, _ = D.avenue_test_labels(gt, "intervals")
    assert sum(map(len, intervals)) == 15324 and int(sum(m.sum() for m in intervals)) == 3867
    assert "masks" in source and "intervals" in source2
    # the pixel masks themselves give the same labels as avenue.mat (checked on the short video 8)
    from seqvad.data.labels import read_vol_label
    np.testing.assert_array_equal(read_vol_label(gt / "testing_label_mask" / "8_label.mat")[0], masks[7])


def test_real_shanghaitech_labels():
    root = require_data("shanghaitech")
    labels, _ = D.shanghaitech_test_labels(root)
    assert len(labels) == 107
    assert sum(map(len, labels.values())) == 40791
    assert int(sum(v.sum() for v in labels.values())) == 17326
    joined = np.load(root / "ground_truth" / "frame_labels_shanghai.npy")
    np.testing.assert_array_equal(np.concatenate(list(labels.values())), joined)


def test_ucsd_m_parser_multiple_ranges(tmp_path):
    path = tmp_path / "x.m"
    path.write_text("TestVideoFile{end+1}.gt_frame = [5:90, 140:200];\n")
    assert read_ucsd_m(path) == [[(5, 90), (140, 200)]]
