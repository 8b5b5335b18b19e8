"""Which per-object terms (``scoring.terms``) raise AUC on a split, for every phase of a run.

    python benchmarks/score_terms.py runs/sel-A --split val     # model selection: validation only

For each phase checkpoint: a :class:`seqvad.scoring.Scorer` with every term weighted is fitted
on the training objects (each term's median/IQR; the kNN index of the training codes, whose own
statistics are leave-one-out), then the split's frames are scored by each term alone and by the
paper's prediction error plus each other term at weight 1, and by all of them; micro AUC after
the median filter (the Scorer's ``combine`` with those weights: what ``scoring.terms`` ships). Writes
RUN/score_terms_<split>.json. Use ``--split val`` for choices; ``--split test`` only to report
the chosen setting after choosing it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from seqvad import pipeline
from seqvad.atomic import write_json
from seqvad.checkpoint import load_model
from seqvad.scoring import TERMS, Scorer, micro_auc

COMBINATIONS = {"pre": {"pre": 1}, "rec": {"rec": 1}, "order": {"order": 1}, "knn": {"knn": 1},
                "pre+rec": {"pre": 1, "rec": 1}, "pre+order": {"pre": 1, "order": 1},
                "pre+knn": {"pre": 1, "knn": 1}, "pre+rec+order+knn": {t: 1 for t in TERMS}}
CONTEXT_WEIGHTS = (0.25, 0.5, 1.0, 2.0)


def evaluate_terms(run_dir: Path, split: str, max_train: int = 20000, k: int = 10) -> dict:
    config = pipeline.read_run_config(run_dir)
    store, train = pipeline.load_store(run_dir, split), pipeline.load_store(run_dir, "train")
    labels = pipeline.test_labels(run_dir, store, split)
    scoring = {**config["scoring"], "terms": {t: 1.0 for t in TERMS}, "knn_k": k,
               "context": {"enabled": False}}
    started = time.perf_counter()
    context = Scorer({**scoring, "context": {"enabled": True, "k": k}}).fit_context(train.cubes, train.index)
    context_values = context.context_scores(store.cubes, store.index)
    out = {"context": {"context": _auc(context, context_values, store, labels),
                       "seconds": round(time.perf_counter() - started, 1)}}
    print("context", out["context"], flush=True)
    for path in pipeline.phase_checkpoints(run_dir):
        started = time.perf_counter()
        model, _, info = load_model(path)
        scorer = Scorer(scoring).fit_terms(model, train.cubes, max_cubes=max_train)
        values = scorer.terms(model, store.cubes)
        phase = {}
        for label, weights in COMBINATIONS.items():
            if "order" in weights and "cls" not in (info.get("tasks") or []):
                continue  # the order classifier is untrained before the phase that learns it
            if "rec" in weights and "rec" not in (info.get("tasks") or []):
                continue
            _, smoothed = scorer.frame_scores(scorer.combine(values, weights=weights), store.index,
                                              store.frame_counts)
            phase[label] = round(micro_auc(labels, smoothed), 4)
        prediction = scorer.combine(values, weights={"pre": 1})  # normalised by its training median/IQR
        for weight in CONTEXT_WEIGHTS:
            phase[f"pre+context*{weight:g}"] = _auc(scorer, prediction + weight * context_values, store, labels)
        phase["seconds"] = round(time.perf_counter() - started, 1)
        out[path.stem] = phase
        print(path.stem, phase, flush=True)
    return out


def _auc(scorer: Scorer, object_values, store, labels) -> float:
    _, smoothed = scorer.frame_scores(object_values, store.index, store.frame_counts)
    return round(micro_auc(labels, smoothed), 4)


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
