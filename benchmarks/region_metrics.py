"""Frame AUC, RBDC and TBDC of one trained model on a test cube cache with pixel masks (UCSD Ped2).

    python benchmarks/region_metrics.py results/ped2/phase3_seed0.pt \\
        --cubes runs/ped2/cubes/test --root ../shared/data/ped2 --out results/ped2/region_metrics.json

Scores every test object as `seqvad evaluate` does (the checkpoint's own scoring settings,
seqvad.scoring.Scorer and pipeline.score_with), then reports the frame-level micro AUC (median-
filtered, as the headline, and raw) and the region- and track-based detection criteria of the
per-object scores on their boxes (seqvad.scoring.regions: regions from the mask components,
tracks linked across frames, IoU 0.1, track fraction 0.1, areas to 1 false positive per frame).
The cache must have been cut with the checkpoint's detector and cube settings.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from seqvad.atomic import write_json
from seqvad.errors import DataError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a phase checkpoint (phaseK.pt) of a training run")
    parser.add_argument("--cubes", required=True, help="the test cube cache (a folder with manifest.json)")
    parser.add_argument("--train-cubes", help="the training cache, only for scorers that need training "
                                              "statistics or context (default: the sibling 'train' folder)")
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "ped2"))
    parser.add_argument("--dataset", default="ped2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", help="summary JSON (default: print only)")
    parser.add_argument("--note", default="", help="where the model and cubes came from, kept in the summary")
    args = parser.parse_args(argv)
    args.command = " ".join(["python benchmarks/region_metrics.py", *(sys.argv[1:] if argv is None else argv)])
    try:
        result = measure(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    phase = result["metrics"]
    print(f"micro AUC {phase['micro_auc']:.4f}  RBDC {phase['rbdc']:.4f}  TBDC {phase['tbdc']:.4f}  "
          f"({result['regions']['regions']} regions, {result['regions']['tracks']} tracks, "
          f"{result['objects']} objects, {result['frames']} frames)")
    if args.out:
        write_json(Path(args.out), result)
        print(f"wrote {args.out}")
    return 0


def measure(args) -> dict:
    from seqvad import scoring
    from seqvad.checkpoint import load_model
    from seqvad.data.datasets import load_dataset
    from seqvad.objects.cubes import CubeStore
    from seqvad.pipeline import score_with
    from seqvad.provenance import git_commit, machine
    from seqvad.scoring.regions import region_metrics, truth_from_masks

    model, config, info = load_model(args.model, map_location=args.device)
    store = CubeStore.load(args.cubes)
    made_with = store.manifest.get("config", {})
    for section in ("detector", "cubes"):
        if made_with.get(section) != config.get(section):
            raise DataError(f"{args.cubes}: cut with other {section} settings than {args.model} was trained with")
    dataset = load_dataset(args.dataset, args.root)
    by_name = {video.name: video for video in dataset.test}
    videos = [by_name.get(name) for name in store.videos]
    if any(v is None for v in videos):
        raise DataError(f"{args.root}: the cache's videos {store.videos} are not all test videos of {args.dataset}")
    if any(v.labels is None or v.mask_fn is None for v in videos):
        raise DataError(f"{args.root}: the test videos need frame labels and pixel masks")
    labels = [v.labels for v in videos]

    started = time.perf_counter()
    scorer = scoring.Scorer(config.get("scoring"), device=args.device)
    train_store = None
    if scorer.needs_stats or scorer.context["enabled"]:
        train_store = CubeStore.load(args.train_cubes or Path(args.cubes).parent / "train")
        scorer.fit_context(train_store.cubes, train_store.index)
    context_scores = scorer.context_scores(store.cubes, store.index)
    _, scores = score_with(scorer, model, train_store, store, context_scores)
    raw, smoothed = scorer.frame_scores(scores, store.index, store.frame_counts)
    score_seconds = time.perf_counter() - started

    started = time.perf_counter()
    truth = truth_from_masks(zip(store.frame_counts, (v.mask for v in videos)))
    index = store.index
    boxes = np.stack([index["x1"], index["y1"], index["x2"], index["y2"]], axis=1)
    found = region_metrics(truth, index["video"], index["frame"], boxes, scores)
    region_seconds = time.perf_counter() - started

    metrics = {**scoring.evaluate_scores(labels, smoothed).as_dict(),
               "micro_auc_unsmoothed": scoring.micro_auc(labels, raw),
               "rbdc": found["rbdc"], "tbdc": found["tbdc"],
               "max_rbdr": found["max_rbdr"], "max_tbdr": found["max_tbdr"]}
    return {"command": args.command, "note": args.note, "git_commit": git_commit(), "machine": machine(),
            "model": str(args.model), "phase": info.get("phase"), "tasks": info.get("tasks"),
            "cubes": str(args.cubes), "cache_key": store.manifest.get("cache_key"),
            "root": str(args.root), "dataset": args.dataset, "label_source": dataset.label_source,
            "frames": int(sum(store.frame_counts)), "objects": int(len(store.cubes)),
            "scoring": config.get("scoring"),
            "regions": {key: found[key] for key in ("regions", "tracks", "beta", "alpha", "max_fp_per_frame")},
            "region_rule": "regions: boxes of 8-connected pixel-mask components (>= 10 pixels); tracks: "
                           "overlapping boxes of consecutive frames linked one to one by decreasing IoU; "
                           "detections: every object box with its raw (unsmoothed) object score",
            "metrics": metrics, "score_seconds": round(score_seconds, 1),
            "region_seconds": round(region_seconds, 2)}


if __name__ == "__main__":
    sys.exit(main())
