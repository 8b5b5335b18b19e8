"""Training-split evidence: recall of the reference boxes (IoU 0.3, benchmarks/detect.py's recall) and
spurious boxes (matching no reference box at IoU 0.3), overall, frames < 60 and >= 60."""
import sys, json, pickle, importlib.util
import numpy as np
from seqvad.data.datasets import load_dataset
from seqvad.objects.detectors.boxes import box_iou, merge_boxes
from seqvad.objects.detectors.precomputed import load_box_file

from pathlib import Path
spec = importlib.util.spec_from_file_location("bench_detect", Path(__file__).resolve().parents[1] / "detect.py")
bench = importlib.util.module_from_spec(spec); spec.loader.exec_module(bench)
data = load_dataset("ped2", "/work/shared/data/ped2"); vids = data.train
ref = load_box_file("/work/boxes/ped2_bboxes_train.npz", [(v.name, len(v)) for v in vids])
EARLY = 60
Y = pickle.load(open("tr_new_native.pkl", "rb"))["videos"]

def spurious(refs, dets, iou=0.3):
    n = s = 0
    for r, d in zip(refs, dets):
        n += len(d)
        if len(d):
            s += int(len(d) if not len(r) else (box_iou(d, r).max(axis=1) < iou).sum())
    return s, n

def evaluate(motion):  # motion: name -> per-frame motion boxes
    res = {}
    for part in ("merged", "motion"):
        for lo, hi, tag in ((0, 10**9, "all"), (0, EARLY, "lt60"), (EARLY, 10**9, "ge60")):
            R, D = [], []
            for v, r in zip(vids, ref):
                m = motion[v.name]
                d = [merge_boxes(y, mm, 0.3) for y, mm in zip(Y[v.name]["yolox"], m)] if part == "merged" else m
                R += r[lo:hi]; D += d[lo:hi]
            s, n = spurious(R, D)
            res[f"{part}_{tag}"] = {"recall_iou30": round(bench.recall(R, D, 0.3), 4), "boxes": n, "spurious": s,
                                    "spurious_share": round(s / max(n, 1), 4), "frames": len(R),
                                    "ref_boxes": int(sum(map(len, R)))}
    return res

variants = {"new (first 60, span 3; HEAD)": {k: v["motion"] for k, v in Y.items()}}
for tag in sys.argv[1:]:
    variants[tag] = {k: v["motion"] for k, v in pickle.load(open(f"tr_m_{tag}.pkl", "rb"))["videos"].items()}
out = {}
for name, motion in variants.items():
    out[name] = evaluate(motion)
    r = out[name]
    print(f"{name:32s}", " ".join(f"{k}: R={r[k]['recall_iou30']:.4f} sp={r[k]['spurious']}/{r[k]['boxes']}={r[k]['spurious_share']:.3f}"
                                  for k in ("merged_all", "merged_lt60", "merged_ge60", "motion_lt60")), flush=True)
yolox = {k: {"recall_iou30": bench.recall(sum([r[lo:hi] for r in ref], []), sum([Y[v.name]["yolox"][lo:hi] for v in vids], []), 0.3)}
         for k, lo, hi in (("all", 0, 10**9), ("lt60", 0, EARLY), ("ge60", EARLY, 10**9))}
out["_yolox_only"] = yolox
print("yolox only", yolox)
json.dump(out, open("train_eval.json", "w"), indent=1)
