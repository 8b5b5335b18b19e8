"""Rebuild a selection run's validation split with the current ``validation`` settings and
re-score it (the trained weights do not depend on the validation split: only which videos are
held out does, and that must stay the same).

    python benchmarks/revalidate.py runs/sel-A runs/sel-B

The run's config.yaml gets the dataset config's current ``validation`` section (the held-out
videos must be unchanged), RUN/cubes/val is rebuilt and ``seqvad evaluate RUN --split val`` runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from seqvad import pipeline
from seqvad.atomic import write_bytes
from seqvad.config import load_config


def revalidate(run_dir: Path) -> dict:
    config = pipeline.read_run_config(run_dir)
    current = load_config(config["name"])["validation"]
    if sorted(map(str, current["videos"])) != sorted(map(str, config["validation"]["videos"])):
        raise SystemExit(f"{run_dir}: held-out videos changed ({config['validation']['videos']} -> "
                         f"{current['videos']}); the run must be trained again")
    config["validation"] = current
    # the dataset's own boxes (the run's config points at its reduced training CSV)
    base = load_config(config["name"], {"data": {"root": config["data"]["root"]},
                                        "detector": {"name": config["detector"]["name"]},
                                        "validation": current})
    train_videos, _, _ = pipeline.load_videos(base)
    pipeline.prepare_validation(base, run_dir, train_videos, workers=1, progress=False)
    write_bytes(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False).encode())
    return pipeline.evaluate(run_dir, split="val", progress=False, report=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    for run in args.runs:
        result = revalidate(run)
        print(run, " / ".join(f"{p['micro_auc']:.4f}" for p in result["phases"].values()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
