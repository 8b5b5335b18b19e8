"""Seeds and intervals: per-phase micro AUC over several runs of one configuration.

    python benchmarks/summary.py runs/ped2-s0 runs/ped2-s1 runs/ped2-s2 --out results/ped2/summary.json

Reads each run's ``scores.csv`` (smoothed frame scores per phase, labels) and ``metrics.json``.
Per phase: every seed's micro and macro AUC, their mean and standard deviation, and a 95 %
bootstrap interval of the mean micro AUC over test videos (videos drawn with replacement,
the same draw for every seed, 2000 draws; a video is the unit because its frames are not
independent). The runs must share their config apart from ``train.seed``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from seqvad.atomic import write_json
from seqvad.config import diff
from seqvad.pipeline import read_scores_csv
from seqvad.studies.stats import DRAWS, bootstrap_mean_auc


def summarise(run_dirs: list[Path]) -> dict:
    metrics = [json.loads((run / "metrics.json").read_text()) for run in run_dirs]
    base = metrics[0]["config"]
    for run, m in zip(run_dirs[1:], metrics[1:]):
        other = [line for line in diff(base, m["config"]) if not line.startswith(("train.seed", "data.label_source"))]
        if other:
            raise SystemExit(f"{run}: config differs from {run_dirs[0]} beyond train.seed: {other[:3]}")
    scores = [read_scores_csv(run / "scores.csv") for run in run_dirs]
    videos, labels, _ = scores[0]
    phases = {}
    for phase in scores[0][2]:
        micro = [m["phases"][phase]["micro_auc"] for m in metrics]
        macro = [m["phases"][phase]["macro_auc"] for m in metrics]
        low, high = bootstrap_mean_auc(videos, labels, [s[2][phase] for s in scores])
        phases[phase] = {"micro_auc_per_seed": micro, "micro_auc_mean": float(np.mean(micro)),
                         "micro_auc_std": float(np.std(micro, ddof=1)) if len(micro) > 1 else 0.0,
                         "micro_auc_mean_95ci_over_videos": [low, high],
                         "macro_auc_per_seed": macro, "macro_auc_mean": float(np.mean(macro))}
    return {"runs": [str(r) for r in run_dirs], "seeds": [m["config"]["train"]["seed"] for m in metrics],
            "detector": base["detector"]["name"], "git_commits": [m["git_commit"] for m in metrics],
            "machine": metrics[0]["machine"], "commands": [m["command"] for m in metrics],
            "bootstrap": f"{DRAWS} draws of the test videos with replacement; percentile interval",
            "phases": phases}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    result = {"command": " ".join(["python benchmarks/summary.py", *map(str, args.runs), "--out", str(args.out)]),
              **summarise(args.runs)}
    write_json(args.out, result)
    for name, phase in result["phases"].items():
        low, high = phase["micro_auc_mean_95ci_over_videos"]
        print(f"{name}: micro AUC {phase['micro_auc_mean']:.4f} +- {phase['micro_auc_std']:.4f} "
              f"(seeds {', '.join(f'{v:.4f}' for v in phase['micro_auc_per_seed'])}; 95% CI {low:.4f}-{high:.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
