"""How the motion-context settings (k neighbours, weight) were chosen: on validation scenes only.

Usage:
    seqvad demo --out runs/val1 --set data.scene_seed=1     # another draw of the demo scene
    seqvad demo --out runs/val2 --set data.scene_seed=2
    python benchmarks/context_validation.py runs/val1 runs/val2 --out results/demo/context_validation.json

For every phase checkpoint of each run, micro AUC (median-filtered) of the paper's score alone,
the context score alone, and normalised prediction error + weight x context score for a small
grid of k and weight. The demo's own scene (seed 0) is never scored here. (The committed
results came from runs made with ``--set train.threads=1`` added, two runs side by side.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seqvad import pipeline, scoring
from seqvad.checkpoint import load_model
from seqvad.context import ContextModel, object_features

KS = (5, 10)
WEIGHTS = (0.5, 1.0, 2.0)


def micro(store, labels, object_values, scorer) -> float:
    _, smoothed = scorer.frame_scores(object_values, store.index, store.frame_counts)
    return round(scoring.micro_auc(labels, smoothed), 4)


def validate(run_dir: Path) -> dict:
    config = pipeline.read_run_config(run_dir)
    train, test = pipeline.load_store(run_dir, "train"), pipeline.load_store(run_dir, "test")
    labels = pipeline.test_labels(run_dir, test)
    scorer = scoring.Scorer({**config["scoring"], "context": {"enabled": False}, "normalize": True})
    train_features, test_features = object_features(train.cubes, train.index), object_features(test.cubes, test.index)
    context = {k: ContextModel(k=k).fit(train_features).score(test_features) for k in KS}
    out = {"scene_seed": config["data"].get("scene_seed"),
           "context_only": {f"k{k}": micro(test, labels, context[k], scorer) for k in KS}, "phases": {}}
    for path in pipeline.phase_checkpoints(run_dir):
        model, _, _ = load_model(path)
        model.eval()
        scorer.fit_terms(model, train.cubes)
        terms = scorer.terms(model, test.cubes)
        errors, normalised = terms["pre"], scorer.combine(terms)
        row = {"prediction_only": micro(test, labels, errors, scorer)}
        for k in KS:
            for weight in WEIGHTS:
                row[f"k{k}_weight{weight}"] = micro(test, labels, normalised + weight * context[k], scorer)
        out["phases"][path.stem] = row
        print(run_dir, path.stem, row, file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished demo runs of other scene seeds")
    parser.add_argument("--out", type=Path, default=Path("results/demo/context_validation.json"))
    args = parser.parse_args()
    result = {"command": " ".join(["python", *sys.argv]), "git_commit": pipeline.git_commit(),
              "machine": pipeline.machine(), "runs": {}}
    for run in args.runs:
        seed = pipeline.read_run_config(run)["data"].get("scene_seed")
        if seed in (None, 0):
            sys.exit(f"{run}: scene seed {seed} is the demo's own scene; validate on other seeds")
        result["runs"][str(run)] = validate(run)
    pipeline.write_json(args.out, result)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
