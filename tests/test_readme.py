"""The README's Python example runs (on small made videos, with a shortened schedule), and the API's
default config is the one `seqvad train --folder` builds."""

from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import REPO, write_avi
from seqvad.api import Detector
from seqvad.cli import build_parser
from seqvad.cli.train import folder_config
from seqvad.config import DEFAULTS


def readme_python_block() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def walker(frames: int, seed: int, block: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.full((frames, 64, 96, 3), 110, np.uint8)
    for t in range(frames):
        x = (int(rng.integers(0, 10)) + t) % 80
        out[t, 30:46, x:x + 8] = 40
        if block and 20 <= t < 40:
            bx = (t - 20) * 6 % 70
            out[t, 4:28, bx:bx + 24] = 250
    return out


def test_detector_defaults_equal_train_folder():
    args = build_parser().parse_args(["train", "--folder", "somewhere"])
    assert Detector().config == folder_config(args)
    assert Detector().config["detector"]["name"] == "yolox+motion"
    # an explicit choice is kept
    chosen = build_parser().parse_args(["train", "--folder", "x", "--set", "detector.name=motion"])
    assert folder_config(chosen)["detector"]["name"] == "motion"


@pytest.mark.slow
def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    for seed in range(2):
        write_avi(tmp_path / "normal" / f"cam{seed}.avi", walker(40, seed))
    write_avi(tmp_path / "new.avi", walker(60, 9, block=True))
    # the example's defaults (yolox+motion boxes), shrunk to seconds: a tiny network, one epoch per phase
    monkeypatch.setitem(DEFAULTS, "model", {**DEFAULTS["model"], "width": 4, "latent": 8, "projection": 8})
    monkeypatch.setitem(DEFAULTS, "schedule", {**DEFAULTS["schedule"], "epochs": [1, 1, 1]})
    monkeypatch.setitem(DEFAULTS, "train", {**DEFAULTS["train"], "batch_size": 32})
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_python_block(), "README.md", "exec"), {})
    assert (tmp_path / "model.pt").is_file()
    out = capsys.readouterr().out
    assert all(line.startswith("event ") for line in out.splitlines())
