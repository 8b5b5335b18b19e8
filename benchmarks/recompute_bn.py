"""Re-score a ``train.ema_decay`` run trained before its BatchNorm statistics were recomputed.

    python benchmarks/recompute_bn.py runs/val-E0 --into runs/val-E0-bn

DIR gets the run's config, training cubes and validation split (hard links) and its phase
checkpoints with the BatchNorm statistics recomputed on the training cubes
(:func:`seqvad.averaging.recompute_batchnorm`, as ``Trainer`` now does when it saves an averaged
checkpoint); the weights are the run's own. ``seqvad evaluate DIR --split val`` then runs. The
training trajectory does not depend on the recomputation, so this equals training again.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from seqvad import pipeline
from seqvad.checkpoint import load_checkpoint, save_checkpoint
from seqvad.model import build_model
from seqvad.averaging import recompute_batchnorm


def recompute(run_dir: Path, into: Path) -> dict:
    if into.exists():
        raise SystemExit(f"{into}: exists; choose a new folder for --into")
    into.mkdir(parents=True)
    shutil.copy2(run_dir / "config.yaml", into / "config.yaml")
    for part in ("cubes/train", "cubes/val"):
        shutil.copytree(run_dir / part, into / part, copy_function=os.link)
    cubes = torch.from_numpy(np.array(pipeline.load_store(run_dir, "train").cubes))  # a copy: the cache is read only
    (into / "checkpoints").mkdir()
    for path in pipeline.phase_checkpoints(run_dir):
        state = load_checkpoint(path)
        geometry, config = state["cube_geometry"], state["config"]
        model = build_model(config["model"], geometry["channels"], geometry["window"], geometry["size"])
        model.load_state_dict(state["model"])
        recompute_batchnorm(model, cubes, int(config["train"]["batch_size"]))
        save_checkpoint({**state, "model": model.state_dict()}, into / "checkpoints" / path.name)
    return pipeline.evaluate(into, split="val", progress=False, report=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--into", type=Path, required=True)
    args = parser.parse_args(argv)
    result = recompute(args.run, args.into)
    print(args.run, " / ".join(f"{p['micro_auc']:.4f}" for p in result["phases"].values()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
