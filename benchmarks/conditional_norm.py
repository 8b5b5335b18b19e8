"""Does normalising the object score by a nuisance (``scoring.normalize_by``) raise AUC on a split?

    python benchmarks/conditional_norm.py runs/val-A0 --split val     # model selection: validation only
    python benchmarks/conditional_norm.py runs/val-A0 --split val --terms pre,order

For each phase checkpoint, micro AUC after the median filter of the object score as it is, and
normalised by each nuisance of :mod:`seqvad.scoring.nuisance` and by both (``height``: the score in
units of the training objects of a similar height; ``count``: each frame's maximum less the
training frames' expected maximum at its object count). Everything is fitted on the run's training
objects by :meth:`seqvad.scoring.Scorer.fit_nuisance`, the code ``seqvad evaluate`` runs (the
scores before normalisation computed once per phase and shared by the variants). The object
score is the paper's prediction error, or with ``--terms`` the sum of the named terms, each in units
of its training median / IQR (``scoring.terms``); a term whose head the phase did not train is left
out, as ``seqvad evaluate`` leaves it out. Writes RUN/conditional_norm_<split>[_<terms>].json.
Choose on ``--split val``; read ``--split test`` only for a setting already chosen.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from seqvad import pipeline
from seqvad.atomic import write_json
from seqvad.checkpoint import load_model
from seqvad.provenance import command_line, git_commit, machine
from seqvad.scoring import Scorer, micro_auc

VARIANTS = {"paper": [], "count": ["count"], "height": ["height"], "height+count": ["height", "count"]}


def evaluate(run_dir: Path, split: str, terms: list[str]) -> dict:
    config = pipeline.read_run_config(run_dir)
    store, train = pipeline.load_store(run_dir, split), pipeline.load_store(run_dir, "train")
    labels = pipeline.test_labels(run_dir, store, split)
    out = {}
    for path in pipeline.phase_checkpoints(run_dir):
        started = time.perf_counter()
        model, _, info = load_model(path)
        tasks = (info or {}).get("tasks") or []
        trained = {t: 1.0 for t in terms if pipeline.TERM_TASKS.get(t) in (None, *tasks)}
        section = {**config["scoring"], "terms": trained, "normalize": False, "context": {"enabled": False}}
        plain = Scorer(section)  # the object scores before normalisation, computed once
        if plain.needs_stats:
            plain.fit_terms(model, train.cubes)
        values = {"train": plain.object_scores(model, train.cubes), "scored": plain.object_scores(model, store.cubes)}
        phase = {}
        for name, nuisances in VARIANTS.items():
            scorer = Scorer({**section, "normalize_by": nuisances})
            scorer.fit_nuisance(model, train.cubes, train.index, train.frame_counts, values=values["train"])
            scores = scorer.normalise_objects(values["scored"], store.index)
            _, smoothed = scorer.frame_scores(scores, store.index, store.frame_counts)
            phase[name] = round(micro_auc(labels, smoothed), 4)
        phase["seconds"] = round(time.perf_counter() - started, 1)
        out[path.stem] = phase
        print(path.stem, phase, flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--split", choices=["val", "test"], default="val")
    parser.add_argument("--terms", default="pre", help="comma-separated: pre, rec, order (default: pre)")
    args = parser.parse_args(argv)
    terms = [t.strip() for t in args.terms.split(",") if t.strip()]
    if "pre" not in terms or not set(terms) <= {"pre", "rec", "order"}:
        parser.error("--terms: pre and optionally rec, order")
    result = {"command": command_line(), "git_commit": git_commit(), "machine": machine(), "split": args.split,
              "terms": terms, "micro_auc": evaluate(args.run, args.split, terms)}
    suffix = "" if terms == ["pre"] else "_" + "+".join(terms)
    write_json(args.run / f"conditional_norm_{args.split}{suffix}.json", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
