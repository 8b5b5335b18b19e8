"""Two recipes, several seeds each, on one split: is B better than A beyond the noise?

    python benchmarks/compare_recipes.py --a runs/val-A0 runs/val-A1 runs/val-A2 \
        --b runs/val-B0 runs/val-B1 runs/val-B2 --split val --out results/ped2/selection_runs/X.json

The k-th run of each arm must share its seed (paired by seed). Reads each run's
``metrics[_val].json`` and ``scores[_val].csv``; per phase: each arm's micro AUC per seed and mean,
and B minus A paired by seed, with a 95 % interval of the mean difference resampling the videos
and seeds (:func:`seqvad.studies.stats.paired_comparison`). With ``--split val`` the resampled
unit is one injected copy of a held-out video (``04-val0``...); the copies of one video share its
normal frames, so the interval is, if anything, too narrow. Made for model selection on the
validation split, where test labels are never read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from seqvad.atomic import write_json
from seqvad.config import diff
from seqvad.pipeline import read_scores_csv
from seqvad.studies.stats import paired_comparison

SUFFIX = {"test": "", "val": "_val"}


def arm(runs: list[Path], split: str) -> tuple[list[dict], list[tuple]]:
    metrics = [json.loads((run / f"metrics{SUFFIX[split]}.json").read_text()) for run in runs]
    scores = [read_scores_csv(run / f"scores{SUFFIX[split]}.csv") for run in runs]
    return metrics, scores


def compare(runs_a: list[Path], runs_b: list[Path], split: str) -> dict:
    if len(runs_a) != len(runs_b):
        raise SystemExit(f"--a has {len(runs_a)} runs and --b {len(runs_b)}: pair them by seed")
    metrics_a, scores_a = arm(runs_a, split)
    metrics_b, scores_b = arm(runs_b, split)
    seeds_a = [m["config"]["train"]["seed"] for m in metrics_a]
    seeds_b = [m["config"]["train"]["seed"] for m in metrics_b]
    if seeds_a != seeds_b:
        raise SystemExit(f"the arms' seeds differ in order: {seeds_a} vs {seeds_b}")
    videos, labels, _ = scores_a[0]
    for run, (other_videos, other_labels, _) in zip(runs_a[1:] + runs_b, scores_a[1:] + scores_b):
        if other_videos != videos or not np.array_equal(other_labels, labels):
            raise SystemExit(f"{run}: scored other frames than {runs_a[0]}")
    phases = {}
    for phase in scores_a[0][2]:
        micro_a = [m["phases"][phase]["micro_auc"] for m in metrics_a]
        micro_b = [m["phases"][phase]["micro_auc"] for m in metrics_b]
        paired = paired_comparison(videos, labels, [s[2][phase] for s in scores_b],
                                   [s[2][phase] for s in scores_a])
        phases[phase] = {"a_micro_auc_per_seed": micro_a, "a_mean": float(np.mean(micro_a)),
                         "b_micro_auc_per_seed": micro_b, "b_mean": float(np.mean(micro_b)),
                         "b_minus_a": paired}
    change = [line for line in diff(metrics_a[0]["config"], metrics_b[0]["config"])
              if not line.startswith("train.seed")]
    return {"split": split, "seeds": seeds_a, "a": [str(r) for r in runs_a], "b": [str(r) for r in runs_b],
            "b_config_change": change, "git_commits": sorted({m["git_commit"] for m in metrics_a + metrics_b}),
            "machine": metrics_a[0].get("machine"), "phases": phases}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", nargs="+", type=Path, required=True, help="arm A's runs, one per seed")
    parser.add_argument("--b", nargs="+", type=Path, required=True, help="arm B's runs, the same seeds in order")
    parser.add_argument("--split", choices=sorted(SUFFIX), default="val")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    result = {"command": " ".join(["python benchmarks/compare_recipes.py", "--a", *map(str, args.a),
                                   "--b", *map(str, args.b), "--split", args.split, "--out", str(args.out)]),
              **compare(args.a, args.b, args.split)}
    write_json(args.out, result)
    for name, phase in result["phases"].items():
        paired = phase["b_minus_a"]
        low, high = paired["ci95"]
        print(f"{name}: A {phase['a_mean']:.4f}  B {phase['b_mean']:.4f}  B-A {paired['difference_mean']:+.4f} "
              f"(95% {low:+.4f}..{high:+.4f}, B wins {paired['wins']}/{paired['seeds']} seeds): {paired['verdict']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
