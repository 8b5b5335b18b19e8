"""An experiment: prepare -> train -> evaluate in one run folder, resuming an interrupted run."""

from __future__ import annotations

import shutil
from pathlib import Path

from seqvad import pipeline


def run_experiment(config: dict, run_dir: Path, progress: bool = True, fresh: bool = False,
                   workers: int | None = None, validate: bool = False) -> dict:
    """prepare -> train -> evaluate in one run folder; resumes an interrupted run unless ``fresh``.

    ``validate``: a model-selection run. The videos named in ``validation.videos`` are held out
    of training and evaluated with injected anomalies (``seqvad.data.validation``); the test
    split is not prepared or scored at all."""
    run_dir = Path(run_dir)
    if fresh and (run_dir / "checkpoints").exists():
        shutil.rmtree(run_dir / "checkpoints")
        for name in ("log.csv", "log.json", "metrics.json", "scores.csv", "metrics_val.json", "scores_val.csv"):
            (run_dir / name).unlink(missing_ok=True)
    train_videos, test_videos, label_source = pipeline.load_videos(config)
    config.setdefault("data", {})["label_source"] = label_source
    if validate:
        train_videos, config = pipeline.prepare_validation(config, run_dir, train_videos, workers=workers,
                                                           progress=progress)
        pipeline.prepare(config, run_dir, {"train": train_videos}, workers=workers, progress=progress)
    else:
        pipeline.prepare(config, run_dir, {"train": train_videos, "test": test_videos}, workers=workers,
                         progress=progress)
        pipeline.save_labels(run_dir, test_videos)
    resume = (run_dir / "checkpoints" / "last.pt").exists()
    pipeline.train(config, run_dir, resume=resume, progress=progress)
    return pipeline.evaluate(run_dir, device=config["train"].get("device", "cpu"), progress=progress,
                             split="val" if validate else "test")
