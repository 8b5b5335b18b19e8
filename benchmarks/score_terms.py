"""Which per-object terms (seqvad.terms) raise AUC on a split, for every phase of a run.

    python benchmarks/score_terms.py runs/sel-A --split val     # model selection: validation only

For each phase checkpoint: the training objects' terms give each term's median/IQR (and the
kNN index, fitted on half of the training codes and normalised on the other half), then the
split's frames are scored by each term alone and by the paper's prediction error plus each
other term at weight 1, and by all of them; micro AUC after the median filter. Writes
RUN/score_terms_<split>.json. Use ``--split val`` for choices; ``--split test`` only to report
the chosen setting after choosing it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from seqvad import pipeline, scoring
from seqvad.atomic import write_json
from seqvad.terms import TERMS, LatentDensity, combine, object_terms, robust_stats
from seqvad.checkpoint import load_model

COMBINATIONS = {"pre": {"pre": 1}, "rec": {"rec": 1}, "order": {"order": 1}, "knn": {"knn": 1},
                "pre+rec": {"pre": 1, "rec": 1}, "pre+order": {"pre": 1, "order": 1},
                "pre+knn": {"pre": 1, "knn": 1}, "pre+rec+order+knn": {t: 1 for t in TERMS}}


def evaluate_terms(run_dir: Path, split: str, max_train: int = 20000, k: int = 10) -> dict:
    config = pipeline.read_run_config(run_dir)
    store, train = pipeline.load_store(run_dir, split), pipeline.load_store(run_dir, "train")
    labels = pipeline.test_labels(run_dir, store, split)
    step = max(1, len(train.cubes) // max_train)
    train_cubes = train.cubes[::step]
    out = {}
    for path in pipeline.phase_checkpoints(run_dir):
        started = time.perf_counter()
        model, _, info = load_model(path)
        reference, values = object_terms(model, train_cubes), object_terms(model, store.cubes)
        half = np.arange(len(train_cubes)) % 2 == 0
        density = LatentDensity(k).fit(reference["knn"][half])
        reference["knn"], values["knn"] = density.score(reference["knn"][~half]), density.score(values["knn"])
        stats = {name: robust_stats(reference[name]) for name in TERMS}
        phase = {}
        for label, weights in COMBINATIONS.items():
            if "order" in weights and "cls" not in (info.get("tasks") or []):
                continue  # the order classifier is untrained before the phase that learns it
            if "rec" in weights and "rec" not in (info.get("tasks") or []):
                continue
            _, smoothed = pipeline.store_frame_scores(combine(values, stats, weights), store, config)
            phase[label] = round(scoring.micro_auc(labels, smoothed), 4)
        phase["seconds"] = round(time.perf_counter() - started, 1)
        out[path.stem] = phase
        print(path.stem, phase, flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--split", default="val", choices=["val", "test"])
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args(argv)
    result = {"command": " ".join(["python benchmarks/score_terms.py", str(args.run_dir), "--split", args.split]),
              "git_commit": pipeline.git_commit(), "machine": pipeline.machine(), "split": args.split,
              "k": args.k, "micro_auc": evaluate_terms(args.run_dir, args.split, k=args.k)}
    write_json(args.run_dir / f"score_terms_{args.split}.json", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
