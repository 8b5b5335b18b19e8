"""Trainer: run folder, exact resume after a kill, NaN stop, refused resumes, checkpoint files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from seqvad.errors import ConfigError, DataError
from seqvad.train import (Trainer, TrainingError, epoch_permutation, load_checkpoint, load_model,
                          split_batches)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: these models are tiny, and on a shared 2-core machine several threads
    per process spin against each other (a 10x slowdown measured under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(epochs=(1, 1, 1), **train) -> dict:
    """A model small enough that a whole 3-phase run takes well under a second."""
    return {
        "model": {"blocks": 2, "width": 4, "latent": 8, "projection": 8, "hidden": 16},
        "schedule": {"order": "pre,rec,cls", "epochs": list(epochs), "lr": 1e-3},
        "train": {"batch_size": 16, "seed": 0, "checkpoint_minutes": 0, **train},
    }


def tiny_cubes(n: int = 64, seed: int = 0) -> np.ndarray:
    """Random uint8 cubes (N, 9, 1, 32, 32): they move a lot, so no cube counts as static."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, 9, 1, 32, 32), dtype=np.uint8)


class Killed(Exception):
    """Raised from the step callback to simulate the process dying."""


def kill_at(global_step: int):
    def on_step(info):
        if info["global_step"] == global_step:
            raise Killed(global_step)
    return on_step


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def without_seconds(rows):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def test_fit_writes_the_run_folder(tmp_path):
    store = tmp_path / "cubes.npy"
    np.save(store, tiny_cubes())
    cubes = np.load(store, mmap_mode="r")  # the cube store hands over a memmap
    run = tmp_path / "run"
    summary = Trainer(tiny_config(), cubes, run, progress=False).fit()

    assert (run / "config.yaml").is_file()
    rows = json.loads((run / "log.json").read_text())
    assert [(r["phase"], r["phase_name"], r["epoch"]) for r in rows] == [
        (1, summary["phases"][0]["name"], 1), (2, summary["phases"][1]["name"], 1),
        (3, summary["phases"][2]["name"], 1)]
    assert {"pre", "grd", "loss", "lr", "seconds"} <= set(rows[0]) and "rec" not in rows[0]
    assert {"pre", "grd", "rec", "cls", "con"} <= set(rows[2])
    header = (run / "log.csv").read_text().splitlines()[0].split(",")
    assert {"phase", "epoch", "pre", "rec", "cls", "con", "lr", "seconds"} <= set(header)

    assert summary["global_steps"] == 12  # 3 phases x 64/16 steps
    for k, phase in enumerate(summary["phases"], start=1):
        assert phase["checkpoint"] == str(run / "checkpoints" / f"phase{k}.pt")
        assert np.isfinite(phase["losses"]["loss"])
    model, config, info = load_model(run / "checkpoints" / "phase3.pt")
    assert not model.training and info["phase"] == 3 and "cls" in info["tasks"]
    assert info["channels"] == 1 and info["window"] == 4 and info["size"] == 32
    assert config["train"]["batch_size"] == 16
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert last["position"]["phase"] == 3 and last["position"]["global_step"] == 12
    assert_same_state(model.state_dict(), last["model"])


def check_kill_and_resume(tmp_path, device: str = "cpu", atol: float = 0.0) -> None:
    """epochs [1, 2, 1], 4 steps per epoch: phase 1 = steps 1-4, phase 2 = 5-12, phase 3 = 13-16.
    last.pt every 3 steps (and at epoch/phase ends). Kill 1 at step 11 resumes from step 9
    (mid-epoch, mid-phase); kill 2 at step 14 resumes from step 12 (the phase 2 -> 3 boundary,
    where the optimiser is reset). The final weights must equal those of a run without kills."""
    config = tiny_config(epochs=(1, 2, 1), checkpoint_every_steps=3, device=device)
    config["schedule"]["reset_optimizer"] = True
    cubes = tiny_cubes()
    Trainer(config, cubes, tmp_path / "straight", progress=False).fit()

    run = tmp_path / "killed"
    with pytest.raises(Killed):
        Trainer(config, cubes, run, progress=False, on_step=kill_at(11)).fit()
    assert load_checkpoint(run / "checkpoints" / "last.pt")["position"] == {
        "phase": 1, "epoch": 1, "step": 1, "global_step": 9}
    with pytest.raises(Killed):
        Trainer(config, cubes, run, progress=False, on_step=kill_at(14)).fit(resume=True)
    Trainer(config, cubes, run, progress=False).fit(resume=True)

    def same(a, b):
        assert a.keys() == b.keys()
        for key in a:
            assert torch.allclose(a[key].double(), b[key].double(), rtol=0, atol=atol), key

    straight = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")
    resumed = load_checkpoint(run / "checkpoints" / "last.pt")
    same(straight["model"], resumed["model"])
    for k in (1, 2, 3):
        same(load_checkpoint(tmp_path / "straight" / "checkpoints" / f"phase{k}.pt")["model"],
             load_checkpoint(run / "checkpoints" / f"phase{k}.pt")["model"])
    assert len(json.loads((run / "log.json").read_text())) == 4
    if atol == 0:
        assert without_seconds(straight["history"]) == without_seconds(resumed["history"])


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    check_kill_and_resume(tmp_path, "cpu", atol=0.0)  # bit-identical: CPU kernels are deterministic


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_resume_after_kill_on_cuda(tmp_path, monkeypatch):
    # cuDNN picks kernels per call; ask for deterministic ones, and allow float rounding anyway.
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    check_kill_and_resume(tmp_path, "cuda", atol=1e-5)


class NanAfter(nn.Module):
    """Wraps a task; from call ``n + 1`` on, its first loss is NaN."""

    def __init__(self, task: nn.Module, n: int):
        super().__init__()
        self.task, self.n, self.calls = task, n, 0

    @property
    def keys(self):  # the snippets the wrapped task needs (for the shared encoder pass)
        return self.task.keys

    def make_snippet(self, key, cubes):
        return self.task.make_snippet(key, cubes)

    def forward(self, model, cubes, shared=None):
        self.calls += 1
        losses = self.task(model, cubes, shared=shared)
        if self.calls > self.n:
            first = next(iter(losses))
            losses[first] = losses[first] * float("nan")
        return losses


def test_nan_loss_stops_training_and_keeps_last_good_checkpoint(tmp_path):
    trainer = Trainer(tiny_config(checkpoint_every_steps=1), tiny_cubes(), tmp_path, progress=False)
    trainer.runner.tasks["pre"] = NanAfter(trainer.runner.tasks["pre"], n=3)
    with pytest.raises(TrainingError, match=r"loss .*pre.* became nan in phase 1, epoch 1, step 4"):
        trainer.fit()
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert last["position"]["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())
    # The NaN step was not applied: the parameters in memory are still the checkpointed ones.
    # (Only BatchNorm's running statistics saw the bad forward pass; last.pt has the good ones.)
    assert_same_state(dict(trainer.runner.model.named_parameters()),
                      {name: last["model"][name] for name, _ in trainer.runner.model.named_parameters()})


def test_resume_with_a_different_config_is_refused_naming_the_keys(tmp_path):
    cubes = tiny_cubes(32)
    config = tiny_config(epochs=(1,))
    config["schedule"]["order"] = "pre"
    Trainer(config, cubes, tmp_path, progress=False).fit()

    changed = json.loads(json.dumps(config))
    changed["train"]["batch_size"] = 8
    changed["schedule"]["lr"] = 0.01
    with pytest.raises(ConfigError, match=r"schedule\.lr.*train\.batch_size"):
        Trainer(changed, cubes, tmp_path, progress=False).fit(resume=True)

    harmless = json.loads(json.dumps(config))
    harmless["train"]["checkpoint_minutes"] = 5
    harmless["scoring"] = {"median_window": 9}  # not a training section
    summary = Trainer(harmless, cubes, tmp_path, progress=False).fit(resume=True)
    assert summary["global_steps"] == 2

    with pytest.raises(DataError, match="cube array differs"):
        Trainer(config, tiny_cubes(32, seed=1), tmp_path, progress=False).fit(resume=True)


def test_fresh_fit_into_a_used_folder_is_refused(tmp_path):
    config = tiny_config(epochs=(1,))
    config["schedule"]["order"] = "pre"
    Trainer(config, tiny_cubes(32), tmp_path, progress=False).fit()
    with pytest.raises(ConfigError, match="already holds a training run"):
        Trainer(config, tiny_cubes(32), tmp_path, progress=False).fit()
    (tmp_path / "checkpoints" / "phase2.pt").write_bytes(b"left by an older, longer run")
    Trainer(config, tiny_cubes(32), tmp_path, progress=False).fit(overwrite=True)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last.pt", "phase1.pt"]
    with pytest.raises(DataError, match="nothing to resume"):
        Trainer(config, tiny_cubes(32), tmp_path / "other", progress=False).fit(resume=True)


def test_bad_cube_arrays_are_refused(tmp_path):
    with pytest.raises(DataError, match="empty"):
        Trainer(tiny_config(), np.zeros((0, 9, 1, 32, 32), np.uint8), tmp_path)
    with pytest.raises(DataError, match="uint8"):
        Trainer(tiny_config(), np.zeros((4, 9, 1, 32, 32), np.float32), tmp_path)
    with pytest.raises(DataError, match="shape"):
        Trainer(tiny_config(), np.zeros((4, 1, 32, 32), np.uint8), tmp_path)


def test_missing_corrupt_and_foreign_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(DataError, match="corrupt"):
        load_checkpoint(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": 99, "model": {}, "seqvad_version": "9.0"}, foreign)
    with pytest.raises(DataError, match="format 99"):
        load_model(foreign)
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    with pytest.raises(DataError, match="not a seqvad checkpoint"):
        load_checkpoint(plain)


def test_unknown_device_and_missing_gpu_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown device"):
        Trainer(tiny_config(), tiny_cubes(8), tmp_path, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            Trainer(tiny_config(), tiny_cubes(8), tmp_path, device="cuda")


def test_epoch_order_is_seeded_and_batches_avoid_single_cube_tails():
    a = epoch_permutation(100, seed=0, phase=1, epoch=2)
    assert torch.equal(a, epoch_permutation(100, seed=0, phase=1, epoch=2))
    assert not torch.equal(a, epoch_permutation(100, seed=0, phase=1, epoch=3))
    assert sorted(a.tolist()) == list(range(100))
    assert [len(b) for b in split_batches(torch.arange(33), 16)] == [16, 16]  # tail of 1 dropped
    assert [len(b) for b in split_batches(torch.arange(34), 16)] == [16, 16, 2]


def test_memory_model_trains_the_sparsity_loss_in_every_phase(tmp_path):
    config = tiny_config(epochs=(1, 1))
    config["schedule"]["order"] = "pre,rec"
    config["model"]["memory"] = {"items": 10}
    summary = Trainer(config, tiny_cubes(32), tmp_path, progress=False).fit()
    assert [phase["tasks"] for phase in summary["phases"]] == [["pre", "sps"], ["pre", "rec", "sps"]]
    assert all("sps" in phase["losses"] for phase in summary["phases"])
