"""Progress you can see: under a pipe, long commands print one line per epoch / per video to stderr;
``--quiet`` silences them (seqvad.progress)."""

from __future__ import annotations

import logging
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import write_avi
from seqvad.progress import Progress, duration

EPOCHS = [2, 1]


def moving_square(frames: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.full((frames, 48, 64, 3), 120, np.uint8)
    for t in range(frames):
        x = (int(rng.integers(0, 8)) + 2 * t) % 50
        out[t, 20:32, x:x + 10] = 30
    return out


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("progress")
    for i in range(2):
        write_avi(root / "normal" / f"v{i}.avi", moving_square(30, i))
    config = {"detector": {"name": "motion", "motion": {"warmup": 5}},
              "model": {"width": 4, "latent": 8, "projection": 8},
              "schedule": {"order": "pre,rec", "epochs": EPOCHS}, "train": {"batch_size": 16, "threads": 1}}
    (root / "tiny.yaml").write_text(yaml.safe_dump(config))
    return root


def run_train(root, out, *extra):
    command = [sys.executable, "-m", "seqvad.cli", "train", "--folder", str(root / "normal"), "--config",
               str(root / "tiny.yaml"), "--out", str(out), "--workers", "1", *extra]
    # stdout and stderr are pipes here, as under nohup or `| tee`
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_train_under_a_pipe_prints_a_line_per_epoch_and_quiet_silences_it(tiny_folder, tmp_path):
    done = run_train(tiny_folder, tmp_path / "run")
    assert done.returncode == 0, done.stderr
    epoch_lines = [l for l in done.stderr.splitlines() if re.search(r"phase \d/2 \S+ epoch \d/\d: .* cubes/s.*ETA", l)]
    assert len(epoch_lines) == sum(EPOCHS), done.stderr
    assert re.search(r"detect train: video 2/2 v1, 60/60 frames, .*frames/s", done.stderr), done.stderr
    assert "\r" not in done.stderr  # no bar redrawn in a file
    quiet = run_train(tiny_folder, tmp_path / "quiet", "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert "epoch" not in quiet.stderr and "frames/s" not in quiet.stderr


def test_progress_lines_name_items_rate_and_eta(caplog):
    caplog.set_level(logging.INFO, logger="seqvad.progress")
    bar = Progress(100, "detect x", "frame", terminal=False, every=1e9)
    bar.update(10)  # no item, and `every` not reached: no line
    bar.update(40, item="video 1/2 a")
    bar.close()
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("detect x: video 1/2 a, 50/100 frames, ") and "frames/s" in line and "ETA" in line
    caplog.clear()
    quiet = Progress(10, "y", enabled=False, terminal=False)
    quiet.update(5, item="z")
    assert not caplog.records and quiet.done == 5
    assert duration(3725) == "1:02:05" and duration(65) == "1:05"
