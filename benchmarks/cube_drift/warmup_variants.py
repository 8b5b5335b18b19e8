"""Motion warm-up variants on the Ped2 *training* split (no test label is read): recall of the
reference boxes at IoU 0.3 and spurious boxes (matching no reference box at IoU 0.3), of the
yolox+motion boxes as `seqvad prepare` makes them with today's detector defaults, overall and in
each video's first 60 frames (where a warm-up's ghosts live).

  python benchmarks/cube_drift/warmup_variants.py span100 whole clean100 ... --out results/ped2/warmup_variants.json

Variants patch only MotionDetector.prime / warmup_frames:
  spanN     20 frames spread over the first N (span100 = the default, WARMUP_SPAN 5)
  whole     20 frames spread over the whole video (the warm-up before decode-once: a second read)
  cleanN    as spanN, but in each warm-up frame the pixels that differ from the per-pixel median of
            the 20 frames by more than CLEAN_GREY grey levels (an object passing through) are
            replaced by that median before the background model learns the frame
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


def patch(variant: str) -> None:
    motion_mod.MotionDetector.prime = ORIGINAL_PRIME
    motion_mod.MotionDetector.warmup_frames = ORIGINAL_FRAMES
    if variant == "whole":
        span = 10 ** 6
    elif variant.startswith("span") or variant.startswith("clean"):
        span = int(variant.lstrip("spanclean"))
    else:
        raise SystemExit(f"unknown variant {variant}")
    motion_mod.MotionDetector.warmup_frames = property(lambda self: span if self.method != "diff" else 0)
    if variant.startswith("clean"):
        def prime(self, frames):
            if self.model is None or not len(frames) or self.warmup <= 0:
                return
            picks = np.unique(np.linspace(0, len(frames) - 1, min(self.warmup, len(frames))).round().astype(int))
            grays = np.stack([self._gray(frames[int(i)]) for i in picks])
            median = np.median(grays, axis=0).astype(np.uint8)
            for gray in grays:
                moving = cv2.absdiff(gray, median) > CLEAN_GREY
                moving = cv2.dilate(moving.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
                self.model.apply(np.where(moving, median, gray))
                self._seen += 1
        motion_mod.MotionDetector.prime = prime


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


ORIGINAL_PRIME = motion_mod.MotionDetector.prime
ORIGINAL_FRAMES = motion_mod.MotionDetector.warmup_frames
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
        patch(variant)
        started = time.time()
        det = CombinedDetector.from_config(cfg["detector"], threads=1)
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
