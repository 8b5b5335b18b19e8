"""Motion warm-up variants on the Ped2 *training* split (no test label is read): recall of the
reference boxes at IoU 0.3 and spurious boxes (matching no reference box at IoU 0.3), of the
yolox+motion boxes as `seqvad prepare` makes them with today's detector defaults, overall and in
each video's first 60 frames (where a warm-up's ghosts live).

  python benchmarks/cube_drift/warmup_variants.py span100 whole clean100 ... --out results/ped2/warmup_variants.json

Variants patch only MotionDetector.prime / warmup_frames:
  spanN     20 frames spread over the first N (span100 = the default, WARMUP_SPAN 5)
  whole     20 frames spread over the whole video (the warm-up before decode-once: a second read)
  cleanN    as spanN, with detector.motion.warmup_clean = --clean-grey (motion.clean_of_passers_by);
            the other variants run with warmup_clean 0
"""
import argparse
import importlib.util
import json
import time
from pathlib import Path

import cv2
import numpy as np

from seqvad.config import load_config
from seqvad.data.datasets import load_dataset
from seqvad.objects.detectors import motion as motion_mod
from seqvad.objects.detectors.boxes import box_iou
from seqvad.objects.detectors.combined import CombinedDetector
from seqvad.objects.detectors.precomputed import load_box_file
from seqvad.provenance import git_commit

HERE = Path(__file__).resolve()
spec = importlib.util.spec_from_file_location("bench_detect", HERE.parents[1] / "detect.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
EARLY = 60


def patch(variant: str) -> float:
    """Set the warm-up span of ``variant``; returns its ``detector.motion.warmup_clean``."""
    if variant == "whole":
        span = 10 ** 6
    elif variant.startswith("span") or variant.startswith("clean"):
        span = int(variant.lstrip("spanclean"))
    else:
        raise SystemExit(f"unknown variant {variant}")
    motion_mod.MotionDetector.warmup_frames = property(lambda self: span if self.method != "diff" else 0)
    return CLEAN_GREY if variant.startswith("clean") else 0  # the product's own cleaning, or none


def spurious(refs, dets, iou=0.3):
    """(spurious boxes, of them small (< 150 px2), all boxes)."""
    n = s = small = 0
    for r, d in zip(refs, dets):
        n += len(d)
        if len(d):
            lost = np.ones(len(d), bool) if not len(r) else box_iou(d, r).max(axis=1) < iou
            s += int(lost.sum())
            small += int((((d[:, 2] - d[:, 0]) * (d[:, 3] - d[:, 1]) < 150) & lost).sum())
    return s, small, n


CLEAN_GREY = 25

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("variants", nargs="+")
    p.add_argument("--root", default="../shared/data/ped2")
    p.add_argument("--boxes", default="/work/boxes/ped2_bboxes_train.npz")
    p.add_argument("--clean-grey", type=int, default=CLEAN_GREY)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    CLEAN_GREY = a.clean_grey
    cv2.setNumThreads(1)
    cfg = load_config("ped2")
    videos = load_dataset("ped2", a.root).train
    ref = load_box_file(a.boxes, [(v.name, len(v)) for v in videos])
    out = {"command": "python benchmarks/cube_drift/warmup_variants.py " + " ".join(a.variants)
           + f" --clean-grey {a.clean_grey} --out {a.out}",
           "git_commit": git_commit(), "split": "ped2 training (16 videos), reference boxes ped2_bboxes_train",
           "detector": cfg["detector"], "clean_grey": a.clean_grey, "variants": {}}
    for variant in a.variants:
        clean = patch(variant)
        started = time.time()
        detector_cfg = {**cfg["detector"], "motion": {**cfg["detector"]["motion"], "warmup_clean": clean}}
        det = CombinedDetector.from_config(detector_cfg, threads=1)
        boxes = {v.name: det.detect_video(v) for v in videos}
        row = {}
        for lo, hi, tag in ((0, 10 ** 9, "all"), (0, EARLY, "lt60"), (EARLY, 10 ** 9, "ge60")):
            R = [b for r in ref for b in r[lo:hi]]
            D = [b for v in videos for b in boxes[v.name][lo:hi]]
            s, small, n = spurious(R, D)
            row[tag] = {"recall_iou30": round(bench.recall(R, D, 0.3), 4), "boxes": n, "spurious": s,
                        "spurious_small_lt150px2": small}
        row["seconds"] = round(time.time() - started, 1)
        out["variants"][variant] = row
        print(variant, json.dumps(row), flush=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
