import subprocess
import sys

import numpy as np
import pytest

from conftest import random_frames, require_data, write_frames
from seqvad.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "seqvad.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", ["demo", "datasets", "prepare", "train", "evaluate", "experiment"])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: seqvad " + command in capsys.readouterr().out


def test_datasets_check_counts_folder_dataset(tmp_path, capsys):
    write_frames(tmp_path / "cam" / "training" / "a", random_frames(5))
    write_frames(tmp_path / "cam" / "testing" / "b", random_frames(3))
    assert main(["datasets", "check", "--dataset", "folder", "--root", str(tmp_path / "cam"), "-v"]) == 0
    out = capsys.readouterr().out
    assert "train: 1 videos, 5 frames" in out and "test: 1 videos, 3 frames" in out


@pytest.mark.parametrize("case", ["missing_root", "empty_folder", "unknown_dataset", "bad_video",
                                  "mixed_sizes", "label_count"])
def test_bad_input_one_line_error_nonzero_exit(case, tmp_path, capsys):
    root = tmp_path / "cam"
    name = "folder"
    if case == "missing_root":
        expected = "dataset root does not exist"
    elif case == "empty_folder":
        (root / "training" / "empty").mkdir(parents=True)
        expected = "no image frames"
    elif case == "unknown_dataset":
        root.mkdir()
        name, expected = "kitti", "unknown dataset"
    elif case == "bad_video":
        (root / "training").mkdir(parents=True)
        (root / "training" / "broken.avi").write_bytes(b"\x00" * 100)
        expected = "broken.avi"
    elif case == "mixed_sizes":
        folder = write_frames(root / "training" / "v", random_frames(3))
        import cv2
        cv2.imwrite(str(folder / "003.png"), np.zeros((8, 8, 3), np.uint8))
        expected = "differs"
    else:
        write_frames(root / "training" / "v", random_frames(3))
        write_frames(root / "testing" / "w", random_frames(4))
        (root / "labels").mkdir()
        np.save(root / "labels" / "w.npy", np.zeros(5, np.uint8))
        expected = "5 labels for video w with 4 frames"
    code = main(["datasets", "check", "--dataset", name, "--root", str(root)])
    captured = capsys.readouterr()
    assert code != 0
    text = captured.err + captured.out
    assert expected in text
    error_lines = [line for line in captured.err.splitlines() if line.startswith("seqvad: error")]
    if error_lines:  # a load failure: exactly one line naming the path
        assert len(error_lines) == 1 and (str(tmp_path) in error_lines[0] or name in error_lines[0])


def test_datasets_check_real_ped2():
    root = require_data("ped2")
    result = run_cli("datasets", "check", "--dataset", "ped2", "--root", str(root), "--no-decode")
    assert result.returncode == 0, result.stderr
    assert "train: 16 videos, 2550 frames" in result.stdout
    assert "test: 12 videos, 2010 frames, 1648 abnormal" in result.stdout
