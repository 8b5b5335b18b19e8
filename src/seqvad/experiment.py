"""An experiment: prepare -> train -> evaluate in one run folder, resuming an interrupted run."""

from __future__ import annotations

from pathlib import Path

from seqvad import pipeline
from seqvad.runfolder import move_aside, run_markers


def run_experiment(config: dict, run_dir: Path, progress: bool = True, fresh: bool = False,
                   workers: int | None = None, validate: bool = False, keep_cubes: bool = False) -> dict:
    """prepare -> train -> evaluate in one run folder; resumes an interrupted run unless ``fresh``
    (which moves an existing run aside to ``NAME.old-TIMESTAMP``).

    ``validate``: a model-selection run. The videos named in ``validation.videos`` are held out
    of training and evaluated with injected anomalies (``seqvad.data.validation``); the test
    split is not prepared or scored at all. ``keep_cubes``: the folder holds a trained run, whose
    cube caches must not be rebuilt (seqvad.runfolder.Claim)."""
    run_dir = Path(run_dir)
    if fresh and run_markers(run_dir):  # moved aside, never deleted
        move_aside(run_dir)
    train_videos, test_videos, label_source = pipeline.load_videos(config)
    config.setdefault("data", {})["label_source"] = label_source
    if validate:
        train_videos, config = pipeline.prepare_validation(config, run_dir, train_videos, workers=workers,
                                                           progress=progress)
        pipeline.prepare(config, run_dir, {"train": train_videos}, workers=workers, progress=progress,
                         keep=keep_cubes)
    else:
        pipeline.prepare(config, run_dir, {"train": train_videos, "test": test_videos}, workers=workers,
                         progress=progress, keep=keep_cubes)
        pipeline.save_labels(run_dir, test_videos)
    resume = (run_dir / "checkpoints" / "last.pt").exists()
    pipeline.train(config, run_dir, resume=resume, progress=progress)
    return pipeline.evaluate(run_dir, device=config["train"].get("device", "cpu"), progress=progress,
                             split="val" if validate else "test")


# -- for the API: a run folder as the place a Detector is trained ------------------------------

def train_videos(config: dict, run_dir: Path, videos, workers: int | None = None, progress: bool = True):
    """Prepare the cubes of ``videos`` (normal footage) in ``run_dir`` and train the configured
    schedule; returns the last phase's checkpoint and the training cube store."""
    pipeline.prepare(config, run_dir, {"train": videos}, workers=workers, progress=progress)
    pipeline.train(config, run_dir, resume=False, progress=progress)
    return pipeline.phase_checkpoints(run_dir)[-1], pipeline.load_store(run_dir, "train")


def trained_run(run_dir: Path, phase: int | None = None):
    """The config of a run folder, the checkpoint of ``phase`` (the last by default) and the
    training cube store."""
    run_dir = Path(run_dir)
    config = pipeline.read_run_config(run_dir)
    checkpoints = pipeline.phase_checkpoints(run_dir)
    path = checkpoints[-1] if phase is None else run_dir / "checkpoints" / f"phase{phase}.pt"
    return config, path, pipeline.load_store(run_dir, "train")
