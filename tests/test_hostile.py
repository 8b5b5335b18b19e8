"""seqvad used as a careless or hostile user would (issue 12): one test per finding.

Each test failed on main before the fix (except where a docstring says the finding was already
fixed there; the test then guards it). Everything runs on a tiny folder dataset made here: two
normal training clips and three test clips named ``file.avi``, ``allow_pickle.avi`` and ``a,b.avi``
(names that once broke ``np.savez`` and ``scores.csv``), a width-4 model trained for one epoch.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from conftest import write_avi
from seqvad.cli import main
from seqvad.errors import ConfigError, DataError

TEST_NAMES = ["file", "allow_pickle", "a,b"]
TINY = {
    "name": "tiny",
    "data": {"dataset": "folder"},
    "detector": {"name": "motion", "motion": {"warmup": 5}},
    "model": {"width": 4, "latent": 8, "projection": 8},
    "schedule": {"order": "pre", "epochs": [1]},
    "train": {"batch_size": 32, "threads": 1, "checkpoint_minutes": 0},
    "scoring": {"median_window": 3},
}


def clip(frames: int, seed: int, anomaly: tuple[int, int] | None = None, h: int = 48, w: int = 64) -> np.ndarray:
    """A textured background, a dark walker at 1 px/frame, optionally a bright block racing across."""
    rng = np.random.default_rng(seed)
    background = cv2.GaussianBlur(rng.integers(70, 170, (h, w)).astype(np.uint8), (0, 0), 2).astype(np.float32)
    out = []
    for t in range(frames):
        image = background.copy()
        image[24:34, 4 + t % (w - 10):10 + t % (w - 10)] = 35
        if anomaly and anomaly[0] <= t < anomaly[1]:
            x = (t - anomaly[0]) * 6 % (w - 16)
            image[4:20, x:x + 16] = 250
        out.append(cv2.cvtColor(np.clip(image + rng.normal(0, 1.5, image.shape), 0, 255).astype(np.uint8),
                                cv2.COLOR_GRAY2BGR))
    return np.stack(out)


def make_root(root: Path, names=TEST_NAMES, labelled=None) -> Path:
    for seed in range(2):
        write_avi(root / "training" / f"normal{seed}.avi", clip(30, seed))
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        write_avi(root / "testing" / f"{name}.avi", clip(24, 10 + i, anomaly=(8, 16)))
        if labelled is None or name in labelled:
            labels = np.zeros(24, np.uint8)
            labels[8:16] = 1
            np.save(root / "labels" / f"{name}.npy", labels)
    return root


def one_error_line(capsys) -> str:
    """The command said what went wrong in exactly one line, with no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("seqvad: error")]
    assert len(lines) == 1, err
    return lines[0]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) -> sha256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


class RunsCode:
    """Unpickling this runs code: it writes the file named by ``marker``."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('code ran')",)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A trained and evaluated tiny run, its config file and dataset, and a model file."""
    base = tmp_path_factory.mktemp("hostile")
    root = make_root(base / "cam")
    config = base / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    run = base / "run"
    common = ["--config", str(config), "--root", str(root), "--workers", "1", "--quiet"]
    assert main(["train", *common, "--out", str(run)]) == 0
    assert main(["evaluate", str(run), "--no-report"]) == 0
    from seqvad.api import Detector

    model = Detector.from_run(run, device="cpu").save(base / "model.pt")
    return {"base": base, "root": root, "config": config, "run": run, "common": common, "model": model}


def copy_run(tiny, tmp_path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(tiny["run"], target)
    return target


# -- 1. code execution -------------------------------------------------------------------------

def test_crafted_model_file_runs_no_code_and_gives_one_line(tiny, tmp_path, capsys):
    """(Already weights-only on main: guarded here.)"""
    marker = tmp_path / "pwned"
    evil = tmp_path / "model.pt"
    torch.save({"format": "seqvad-model", "format_version": 2, "payload": RunsCode(marker)}, evil)
    assert main(["detect", str(evil), str(tiny["root"] / "testing" / "file.avi"), "--out", str(tmp_path / "o")]) == 2
    assert "model.pt" in one_error_line(capsys)
    assert not marker.exists()


def test_crafted_boxes_file_is_never_unpickled_by_a_config(tiny, tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = tmp_path / "boxes.npy"
    np.save(evil, np.array([RunsCode(marker)], dtype=object), allow_pickle=True)
    # the ped2 config used to say allow_pickle: true, so any --boxes file was unpickled
    code = main(["prepare", "--config", "ped2", "--dataset", "folder", "--root", str(tiny["root"]),
                 "--detector", "precomputed", "--boxes", str(evil), "--out", str(tmp_path / "r"), "--quiet"])
    assert code == 2
    line = one_error_line(capsys)
    assert "boxes.npy" in line and "seqvad boxes convert" in line
    assert not marker.exists()


def test_allow_pickle_in_a_config_is_refused(tiny, tmp_path, capsys):
    assert main(["prepare", *tiny["common"], "--out", str(tmp_path / "r"), "--set", "detector.allow_pickle=true"]) == 2
    assert "--allow-pickle" in one_error_line(capsys)


def test_allow_pickle_flag_names_the_file_and_convert_makes_a_safe_npz(tiny, tmp_path, capsys, caplog, monkeypatch):
    from seqvad.objects.detectors import load_box_file, precomputed

    monkeypatch.setattr(precomputed, "_PICKLE_ALLOWED", set())
    per_frame = np.empty(30 * 2, dtype=object)
    per_frame[:] = [np.array([[4.25, 20.5, 16.75, 40.0]], np.float32)] * len(per_frame)
    source = tmp_path / "boxes_train.npy"
    np.save(source, per_frame, allow_pickle=True)
    # convert needs the explicit flag, names the file in its warning, and the .npz loads as the .npy did
    assert main(["boxes", "convert", str(source), str(tmp_path / "boxes_train.npz")]) == 2
    assert "pickled object array" in one_error_line(capsys)
    assert main(["boxes", "convert", str(source), str(tmp_path / "boxes_train.npz"), "--allow-pickle"]) == 0
    assert f"{source}: unpickling" in caplog.text
    videos = [("normal0", 30), ("normal1", 30)]
    converted = load_box_file(tmp_path / "boxes_train.npz", videos)
    original = load_box_file(source, videos, allow_pickle=True)
    for a, b in zip(converted, original):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x[:, :4], y[:, :4])
    # a config naming the .npz while only the .npy exists says how to convert
    source_test = tmp_path / "boxes_test.npy"
    np.save(source_test, np.concatenate([per_frame, per_frame[:12]]), allow_pickle=True)  # 3 x 24 frames
    boxes = str(tmp_path / "boxes_{split}.npz")
    args = ["prepare", *tiny["common"], "--detector", "precomputed", "--boxes", boxes, "--out", str(tmp_path / "r")]
    assert main(args) == 2
    assert f"seqvad boxes convert {source_test}" in one_error_line(capsys)
    assert main(["boxes", "convert", str(source_test), str(tmp_path / "boxes_test.npz"), "--allow-pickle"]) == 0
    assert main(args) == 0


def test_reference_boxes_convert_losslessly(tmp_path):
    from conftest import require_data
    from seqvad.data.datasets import load_dataset
    from seqvad.objects.detectors import load_box_file
    from seqvad.objects.detectors.boxes import finalize_boxes
    from seqvad.objects.detectors.convert import convert_boxes

    root = require_data("ped2")
    source = root / "bboxes" / "ped2_bboxes_test.npy"
    if not source.is_file():
        pytest.skip(f"{source} is absent")
    videos = [(v.name, len(v)) for v in load_dataset("ped2", root).test]
    convert_boxes(source, tmp_path / "test.npz", allow_pickle=True)
    convert_boxes(source, tmp_path / "test.csv", allow_pickle=True, videos=videos)
    original = load_box_file(source, videos, allow_pickle=True)
    for kind in ("npz", "csv"):
        for a, b in zip(load_box_file(tmp_path / f"test.{kind}", videos), original):
            for x, y in zip(a, b):
                np.testing.assert_array_equal(finalize_boxes(x, 240, 360), finalize_boxes(y, 240, 360))


# -- 2. runs destroyed before anything is checked ----------------------------------------------

def fake_previous_run(folder: Path) -> dict[str, str]:
    for name, data in {"checkpoints/phase1.pt": b"weights", "checkpoints/last.pt": b"resume state",
                       "log.csv": b"phase,epoch\n1,1\n", "metrics.json": b"{}", "scores.csv": b"video\n",
                       "config.yaml": yaml.safe_dump({"name": "demo-quick"}).encode(),
                       "cubes/train/cubes.npy": b"cubes"}.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return snapshot(folder)


@pytest.mark.parametrize("bad", ["train.seed.x=1", "schedule=5", "trian.batch_size=8", "train.epochs=3",
                                 "train.batch_size=-1", "scoring.error=l1"])
def test_demo_with_a_bad_set_leaves_the_previous_run_byte_identical(tmp_path, capsys, bad):
    out = tmp_path / "demo"
    before = fake_previous_run(out)
    assert main(["demo", "--quick", "--quiet", "--out", str(out), "--set", bad]) == 2
    line = one_error_line(capsys)
    assert bad.split("=")[0].split(".")[0] in line
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_unknown_keys_name_the_closest_known_key(tiny, tmp_path, capsys):
    out = ["--out", str(tmp_path / "r")]
    assert main(["prepare", *tiny["common"], *out, "--set", "trian.batch_size=8"]) == 2
    assert "did you mean train" in one_error_line(capsys)
    assert main(["prepare", *tiny["common"], *out, "--set", "train.epochs=3"]) == 2
    assert "did you mean schedule.epochs" in one_error_line(capsys)
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump({**TINY, "scoring": {"median_windwo": 5}}))
    assert main(["prepare", "--config", str(typo), "--root", str(tiny["root"]), *out]) == 2
    assert "did you mean scoring.median_window" in one_error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_self_referencing_base_is_one_line(tmp_path, capsys):
    loop = tmp_path / "loop.yaml"
    loop.write_text(f"base: {loop}\n")
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(f"base: {b}\n")
    b.write_text(f"base: {a}\n")
    for config in (loop, a):
        assert main(["prepare", "--config", str(config), "--out", str(tmp_path / "r")]) == 2
        assert "refers back to itself" in one_error_line(capsys)


def test_fresh_fit_never_deletes_checkpoints_of_a_run_without_last_pt(tmp_path):
    from seqvad.train import Trainer

    phase1 = tmp_path / "checkpoints" / "phase1.pt"
    phase1.parent.mkdir(parents=True)
    phase1.write_bytes(b"an older run's weights")
    cubes = np.random.default_rng(0).integers(0, 256, (32, 9, 1, 32, 32), dtype=np.uint8)
    with pytest.raises(ConfigError, match="already holds a training run"):
        Trainer(TINY, cubes, tmp_path, progress=False).fit()
    assert phase1.read_bytes() == b"an older run's weights"


def test_prepare_refuses_to_rebuild_the_cubes_of_a_trained_run(tiny, tmp_path, capsys):
    run = copy_run(tiny, tmp_path)
    before = snapshot(run)
    assert main(["prepare", *tiny["common"], "--out", str(run), "--set", "cubes.size=16"]) == 2
    assert "other settings" in one_error_line(capsys) and "cubes.size" in capsys.readouterr().err + "cubes.size"
    assert snapshot(run) == before
    # train without --resume is refused the same way, before the cubes are touched
    assert main(["train", *tiny["common"], "--out", str(run)]) == 2
    assert "already holds a run" in one_error_line(capsys)
    assert snapshot(run) == before


def test_prepare_refuses_to_rebuild_a_trained_runs_cubes_from_other_videos(tiny, tmp_path, capsys):
    run = copy_run(tiny, tmp_path)
    other = tmp_path / "other"
    for seed in range(2):  # same names, other lengths: the settings match, the videos do not
        write_avi(other / "training" / f"normal{seed}.avi", clip(28, seed + 50))
    shutil.copytree(tiny["root"] / "testing", other / "testing")
    shutil.copytree(tiny["root"] / "labels", other / "labels")
    before = snapshot(run)
    args = ["prepare", "--config", str(tiny["config"]), "--root", str(other), "--workers", "1", "--quiet"]
    assert main([*args, "--out", str(run)]) == 2
    assert "cubes a run was trained on would be rebuilt" in one_error_line(capsys)
    assert snapshot(run) == before


def test_fresh_moves_the_old_run_aside_never_deletes(tiny, tmp_path, capsys):
    run = copy_run(tiny, tmp_path)
    before = snapshot(run)
    assert main(["prepare", *tiny["common"], "--out", str(run), "--set", "cubes.size=16", "--fresh"]) == 0
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(aside) == 1 and snapshot(aside[0]) == before
    assert f"moved the previous run in {run}" in capsys.readouterr().out


def test_second_writer_is_refused_and_a_dead_ones_lock_taken_over(tiny, tmp_path, capsys):
    run = copy_run(tiny, tmp_path)
    lock = run / ".seqvad.lock"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(json.dumps({"pid": live.pid, "host": socket.gethostname(), "command": "train"}))
        assert main(["prepare", *tiny["common"], "--out", str(run)]) == 2
        assert f"in use by `seqvad train` (process {live.pid}" in one_error_line(capsys)
    finally:
        live.kill()
        live.wait()
    # the same lock of a process that is gone: taken over, and released at the end
    assert main(["prepare", *tiny["common"], "--out", str(run)]) == 0
    assert not lock.exists()


# -- 3. poisoned "last good" state -------------------------------------------------------------

def test_diverged_run_writes_only_finite_checkpoints(tmp_path):
    from seqvad.checkpoint import load_checkpoint
    from seqvad.train import Trainer, TrainingError

    cubes = np.random.default_rng(0).integers(0, 256, (64, 9, 1, 32, 32), dtype=np.uint8)
    config = {**TINY, "schedule": {"order": "pre,rec", "epochs": [1, 2]},
              "train": {**TINY["train"], "batch_size": 16, "checkpoint_every_steps": 1}}
    trainer = Trainer(config, cubes, tmp_path, progress=False)

    def diverge(info):  # what a diverging lr does to BatchNorm: an infinite running variance
        if info["global_step"] == 6:
            norm = next(m for m in trainer.runner.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
            norm.running_var.fill_(float("inf"))
    trainer.on_step = diverge
    with pytest.raises(TrainingError, match="running_var.*NaN or infinite"):
        trainer.fit()
    written = sorted((tmp_path / "checkpoints").rglob("*.pt"))
    assert written
    for path in written:
        state = load_checkpoint(path)["model"]
        assert all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point()), path


def test_evaluate_refuses_a_checkpoint_with_nonfinite_values(tiny, tmp_path, capsys):
    run = copy_run(tiny, tmp_path)
    path = run / "checkpoints" / "phase1.pt"
    state = torch.load(path, weights_only=True)
    key = next(k for k in state["model"] if k.endswith("running_var"))
    state["model"][key].fill_(float("inf"))
    torch.save(state, path)
    assert main(["evaluate", str(run), "--no-report"]) == 2
    line = one_error_line(capsys)
    assert "phase1.pt" in line and "NaN or infinite" in line


# -- 4. silent wrong results, lost output ------------------------------------------------------

def test_odd_video_names_round_trip_through_labels_and_scores_csv(tiny):
    with open(tiny["run"] / "scores.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted({row["video"] for row in rows}) == sorted(TEST_NAMES)
    for name in TEST_NAMES:
        labels = [int(row["label"]) for row in rows if row["video"] == name]
        assert len(labels) == 24 and sum(labels) == 8


def test_partial_empty_and_missing_labels_are_errors(tmp_path, capsys):
    root = make_root(tmp_path / "cam", labelled=["file"])
    check = ["datasets", "check", "--dataset", "folder", "--root", str(root), "--no-decode"]
    assert main(check) == 2
    line = one_error_line(capsys)
    assert "allow_pickle" in line and "a,b" in line
    shutil.rmtree(root / "labels")
    empty = tmp_path / "labels.csv"
    empty.write_text("video,start,end\n")
    assert main([*check, "--labels", str(empty)]) == 2
    assert "no label rows" in one_error_line(capsys)
    assert main([*check, "--labels", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv: labels file does not exist" in one_error_line(capsys)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_detect_stopped_by_a_signal_leaves_complete_outputs(tiny, tmp_path, signum):
    video = write_avi(tmp_path / "long.avi", clip(1500, 3))
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "seqvad.cli", "detect", str(tiny["model"]), str(video),
                                "--out", str(out), "--quiet", "--device", "cpu"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        scores = out / "scores.csv"
        if scores.is_file() and len(scores.read_text().splitlines()) > 2:  # the first rows are out
            break
        time.sleep(0.02)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert f"stopped on request ({signal.Signals(signum).name})" in stdout
    with open(out / "scores.csv", newline="") as handle:
        frames = len(list(csv.DictReader(handle)))
    assert 0 < frames < 1500
    assert (out / "report.html").is_file()
    videos = [p for p in out.iterdir() if p.name.startswith("annotated.")]
    capture = cv2.VideoCapture(str(videos[0]))
    decoded = 0
    while capture.read()[0]:
        decoded += 1
    capture.release()
    assert decoded == frames


def test_detect_exits_nonzero_when_an_output_fails(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "report.html").mkdir(parents=True)  # the report cannot be written there
    assert main(["detect", str(tiny["model"]), str(tiny["root"] / "testing" / "file.avi"), "--out", str(out),
                 "--quiet", "--device", "cpu"]) == 2
    assert "report.html" in one_error_line(capsys)


# -- 5. device ---------------------------------------------------------------------------------

def test_model_trained_on_a_gpu_loads_on_this_machine(tiny, tmp_path):
    from seqvad.api import Detector

    payload = torch.load(tiny["model"], weights_only=True)
    payload["config"]["train"]["device"] = "cuda"  # what a GPU-trained model file records
    path = tmp_path / "gpu_model.pt"
    torch.save(payload, path)
    detector = Detector.load(path)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert detector.device == expected and next(detector.model.parameters()).device.type == expected
    assert Detector.load(path, device="cpu").device == "cpu"


# -- 7. tracebacks instead of messages ---------------------------------------------------------

@pytest.mark.parametrize("edit", ["size", "missing"])
def test_model_file_with_an_edited_config_is_one_line(tiny, tmp_path, capsys, edit):
    payload = torch.load(tiny["model"], weights_only=True)
    if edit == "size":
        payload["config"]["model"]["width"] = 8
    else:
        del payload["state_dict"]
    path = tmp_path / "edited.pt"
    torch.save(payload, path)
    assert main(["detect", str(path), str(tiny["root"] / "testing" / "file.avi"), "--out", str(tmp_path / "o")]) == 2
    line = one_error_line(capsys)
    assert "edited.pt" in line and ("do not fit" in line if edit == "size" else "state_dict" in line)


def test_unwritable_run_folder_is_one_line(tiny, tmp_path, capsys):
    run = copy_run(tiny, tmp_path)
    (run / "scores.csv").unlink()
    (run / "scores.csv").mkdir()  # a path evaluate cannot write, even as root
    assert main(["evaluate", str(run), "--no-report"]) == 2
    assert "scores.csv" in one_error_line(capsys)
    if os.geteuid() == 0:
        return  # root writes into read-only folders: the chmod check below needs a normal user
    run.chmod(0o555)
    try:
        assert main(["evaluate", str(run), "--no-report"]) == 2
        assert "not writable" in one_error_line(capsys)
    finally:
        run.chmod(0o755)


def test_gpu_asked_on_a_machine_without_one_is_one_line(tiny, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["detect", str(tiny["model"]), str(tiny["root"] / "testing" / "file.avi"), "--device", "cuda",
                 "--out", str(tmp_path / "o")]) == 2
    assert "no CUDA GPU" in one_error_line(capsys)
    assert main(["evaluate", str(tiny["run"]), "--device", "cuda"]) == 2
    assert "no CUDA GPU" in one_error_line(capsys)


def test_a_folder_named_like_a_builtin_config_does_not_hide_it(tmp_path, monkeypatch):
    """Found by benchmarks/hostile_probes.py: `seqvad demo` run beside a run folder named demo
    read that folder as the config file ("config file does not exist")."""
    from seqvad.config import load_config

    (tmp_path / "demo").mkdir()
    monkeypatch.chdir(tmp_path)
    assert load_config("demo")["name"] == "demo"
