"""Rebuild a selection run's validation split with the current ``validation`` settings and
re-score it (the trained weights do not depend on the validation split: only which videos are
held out does, and that must stay the same).

    python benchmarks/revalidate.py runs/sel-A runs/sel-B
    python benchmarks/revalidate.py runs/val-A0 --into runs/val-A0-rush --set validation.kinds=[rush] \\
        --boxes 'BOXES/ped2_bboxes_{split}.npz'

The run's config.yaml gets the dataset config's current ``validation`` section (plus any
``--set validation.KEY=VALUE``; the held-out videos must be unchanged), RUN/cubes/val is rebuilt
and ``seqvad evaluate RUN --split val`` runs.  With ``--into DIR`` the run is left as it is: DIR
gets the run's config, its checkpoints and training cubes (hard links, read only) and the new
validation split, so two validation kinds can be compared on the same weights.  ``--raw`` (with
``--into``) takes a ``train.ema_decay`` run's weights as trained (``checkpoints/raw/``) instead of
their moving average, so the two are compared on one training run.  ``--boxes`` names the
precomputed boxes when the dataset's default path does not hold them.

    python benchmarks/revalidate.py runs/val-E0 --into runs/val-E0-raw --raw
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import yaml

from seqvad import pipeline
from seqvad.atomic import write_bytes
from seqvad.cli.options import apply_overrides
from seqvad.config import deep_merge, load_config


def linked_copy(run_dir: Path, into: Path, raw: bool = False) -> None:
    """``into`` with ``run_dir``'s config, checkpoints (``raw``: those of ``checkpoints/raw/``)
    and training cubes, hard-linked (nothing here writes to them: evaluation reads, the
    validation split is written anew)."""
    if into.exists():
        raise SystemExit(f"{into}: exists; choose a new folder for --into")
    if raw and not any((run_dir / "checkpoints" / "raw").glob("phase*.pt")):
        raise SystemExit(f"{run_dir}: no checkpoints/raw/phase*.pt (trained without train.ema_decay)")
    into.mkdir(parents=True)
    shutil.copy2(run_dir / "config.yaml", into / "config.yaml")
    shutil.copytree(run_dir / "cubes" / "train", into / "cubes" / "train", copy_function=os.link)
    source = run_dir / "checkpoints" / ("raw" if raw else "")
    (into / "checkpoints").mkdir()
    for path in source.glob("phase*.pt"):
        os.link(path, into / "checkpoints" / path.name)


def revalidate(run_dir: Path, sets: list[str] | None = None, boxes: str | None = None,
               into: Path | None = None, raw: bool = False) -> dict:
    config = pipeline.read_run_config(run_dir)
    current = {"validation": load_config(config["name"])["validation"]}
    apply_overrides(current, sets or [], only="validation")
    current = current["validation"]
    if sorted(map(str, current["videos"])) != sorted(map(str, config["validation"]["videos"])):
        raise SystemExit(f"{run_dir}: held-out videos changed ({config['validation']['videos']} -> "
                         f"{current['videos']}); the run must be trained again")
    if into is not None:
        linked_copy(run_dir, into, raw)
        run_dir = into
    config["validation"] = current
    # the dataset's own boxes (the run's config points at its reduced training CSV)
    detector = {"name": config["detector"]["name"], **({"boxes": boxes} if boxes else {})}
    base = load_config(config["name"], deep_merge({"data": {"root": config["data"]["root"]},
                                                   "detector": detector}, {"validation": current}))
    train_videos, _, _ = pipeline.load_videos(base)
    pipeline.prepare_validation(base, run_dir, train_videos, workers=1, progress=False)
    write_bytes(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False).encode())
    return pipeline.evaluate(run_dir, split="val", progress=False, report=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--set", action="append", default=[], metavar="validation.KEY=VALUE")
    parser.add_argument("--boxes", help="precomputed boxes, {split} for train/test")
    parser.add_argument("--into", type=Path, help="write into this new folder (one run only)")
    parser.add_argument("--raw", action="store_true",
                        help="with --into: the weights as trained (checkpoints/raw/), not their moving average")
    args = parser.parse_args(argv)
    if args.into and len(args.runs) > 1:
        parser.error("--into takes one run")
    if args.raw and not args.into:
        parser.error("--raw needs --into (the run itself keeps its averaged weights)")
    for run in args.runs:
        result = revalidate(run, args.set, args.boxes, args.into, args.raw)
        print(run, " / ".join(f"{p['micro_auc']:.4f}" for p in result["phases"].values()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
