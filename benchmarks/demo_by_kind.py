"""Frame-level AUC of each synthetic anomaly kind against all normal frames, per phase.

Usage: python benchmarks/demo_by_kind.py [RUN_DIR] [--out results/demo/by_kind.json]
RUN_DIR is a finished `seqvad demo` run (default runs/demo); its scene config is re-built from the
run's config, so the events (video, kind, frames) are the ones that run was scored on.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from seqvad.data.synthetic import SyntheticScene, scene_from_config
from seqvad.pipeline import git_commit, machine, read_run_config, write_json


def auc_by_kind(run_dir: Path) -> dict:
    config = read_run_config(run_dir)
    scene = SyntheticScene(scene_from_config(config["data"]))
    with open(run_dir / "scores.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    phases = [c[: -len("_smoothed")] for c in rows[0] if c.endswith("_smoothed")]
    labels = {(r["video"], int(r["frame"])): int(r["label"]) for r in rows}
    result = {}
    for phase in phases:
        score = {(r["video"], int(r["frame"])): float(r[f"{phase}_smoothed"]) for r in rows}
        normal = np.array([s for key, s in score.items() if labels[key] == 0])
        per_kind = {}
        for kind in sorted({e.kind for e in scene.events}):
            abnormal = np.array([score[(e.video, f)] for e in scene.events if e.kind == kind
                                 for f in range(e.first_frame, e.last_frame + 1) if (e.video, f) in score])
            y = np.r_[np.zeros(len(normal)), np.ones(len(abnormal))]
            per_kind[kind] = {"auc": round(float(roc_auc_score(y, np.r_[normal, abnormal])), 4),
                              "frames": int(len(abnormal))}
        result[phase] = per_kind
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", default="runs/demo")
    parser.add_argument("--out", default="results/demo/by_kind.json")
    args = parser.parse_args(argv)
    result = auc_by_kind(Path(args.run_dir))
    for phase, kinds in result.items():
        print(phase, {k: v["auc"] for k, v in kinds.items()})
    write_json(Path(args.out), {"command": "python " + " ".join(sys.argv), "run_dir": args.run_dir,
                                "git_commit": git_commit(), "machine": machine(), "auc_by_kind": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
