"""Where a detector loses: how many abnormal Ped2 frames have their abnormal region under a box,
and the AUC on the frames where it is.

    python benchmarks/detector_coverage.py runs/ped2-s0 runs/ped2-precomputed-s0 --out results/ped2/detector_coverage.json

For every run (its test cube store holds the boxes; its scores.csv the smoothed frame scores):

* an abnormal frame is **covered** when at least half of its abnormal pixels (UCSD pixel masks)
  lie inside the union of that frame's boxes;
* coverage = covered abnormal frames / abnormal frames (frames whose mask is empty but whose
  frame label is 1 count as not covered);
* the AUC of each phase on all frames, and restricted to normal frames + covered abnormal
  frames (how well the model ranks what the detector lets it see).

A diagnosis, not a knob: nothing here chooses a detector setting (those are chosen on
training-split recall, results/detect_ped2.json).
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from seqvad import pipeline
from seqvad.atomic import write_json
from seqvad.data.datasets import load_dataset

COVER_FRACTION = 0.5
REPO = Path(__file__).resolve().parents[1]


def covered_frames(store, test_videos) -> np.ndarray:
    """1 where the frame's abnormal pixels are at least half under its boxes, per test frame."""
    out = []
    index = store.index
    for number, video in enumerate(test_videos):
        rows = np.flatnonzero(index["video"] == number)
        by_frame: dict[int, list[int]] = {}
        for row in rows:
            by_frame.setdefault(int(index["frame"][row]), []).append(row)
        flags = np.zeros(len(video), np.uint8)
        for frame in np.flatnonzero(video.labels):
            mask = video.mask(int(frame))
            if mask is None or not mask.any():
                continue
            under = np.zeros_like(mask, dtype=bool)
            for row in by_frame.get(int(frame), []):
                x1, y1 = int(np.floor(index["x1"][row])), int(np.floor(index["y1"][row]))
                x2, y2 = int(np.ceil(index["x2"][row])), int(np.ceil(index["y2"][row]))
                under[max(0, y1):y2 + 1, max(0, x1):x2 + 1] = True
            flags[frame] = (under & mask).sum() >= COVER_FRACTION * mask.sum()
        out.append(flags)
    return np.concatenate(out)


def run_coverage(run_dir: Path, test_videos) -> dict:
    store = pipeline.load_store(run_dir, "test")
    if store.videos != [v.name for v in test_videos]:
        raise SystemExit(f"{run_dir}: test videos differ from the dataset's")
    covered = covered_frames(store, test_videos)
    labels = np.concatenate([v.labels for v in test_videos])
    with open(run_dir / "scores.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    keep = (labels == 0) | (covered == 1)
    phases = {}
    for key in rows[0]:
        if key.endswith("_smoothed"):
            scores = np.array([float(r[key]) for r in rows])
            phases[key[: -len("_smoothed")]] = {
                "micro_auc_all_frames": float(roc_auc_score(labels, scores)),
                "micro_auc_covered_abnormal_only": float(roc_auc_score(labels[keep], scores[keep])),
                "micro_auc_uncovered_abnormal_only": float(roc_auc_score(labels[~keep | (labels == 0)],
                                                                         scores[~keep | (labels == 0)]))
                if (~keep).any() else None}
    config = pipeline.read_run_config(run_dir)
    return {"run": str(run_dir), "detector": config["detector"]["name"], "objects": int(len(store.cubes)),
            "abnormal_frames": int(labels.sum()), "covered_abnormal_frames": int(covered.sum()),
            "coverage": float(covered.sum() / labels.sum()), "phases": phases}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--root", default=None, help="Ped2 folder (default: $SEQVAD_DATA/ped2 or ../shared/data/ped2)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    root = args.root or Path(os.environ.get("SEQVAD_DATA", REPO.parent / "shared" / "data")) / "ped2"
    test_videos = load_dataset("ped2", root).test
    result = {"command": "python benchmarks/detector_coverage.py " + " ".join(map(str, args.runs)),
              "rule": f"an abnormal frame is covered when >= {COVER_FRACTION:.0%} of its abnormal pixels "
                      "(UCSD pixel masks) lie inside the union of its boxes",
              "git_commit": pipeline.git_commit(), "runs": [run_coverage(run, test_videos) for run in args.runs]}
    write_json(args.out, result)
    for run in result["runs"]:
        last = list(run["phases"].values())[-1]
        print(f"{run['detector']}: coverage {run['coverage']:.3f}; last phase AUC all {last['micro_auc_all_frames']:.4f}, "
              f"covered-only {last['micro_auc_covered_abnormal_only']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
