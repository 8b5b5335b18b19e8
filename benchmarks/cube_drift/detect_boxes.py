"""Per-frame boxes of Ped2 videos with whichever seqvad is on PYTHONPATH, the YOLOX and motion parts
recorded apart.  Variants patch only the motion warm-up.

  python detect_boxes.py --split test --mode combined|motion --variant native|first60|whole|spanN|... --out X.npz
"""
import argparse, json, sys, time, pickle
import numpy as np
import cv2
import seqvad
from seqvad.config import load_config
from seqvad.data.datasets import load_dataset
from seqvad.objects.detectors import combined as comb_mod
from seqvad.objects.detectors import motion as motion_mod

p = argparse.ArgumentParser()
p.add_argument("--split", default="test")
p.add_argument("--videos", default="")
p.add_argument("--mode", default="combined")
p.add_argument("--variant", default="native")
p.add_argument("--threads1", action="store_true", help="cv2.setNumThreads(1) as a prepare worker does")
p.add_argument("--out", required=True)
a = p.parse_args()
if a.threads1:
    cv2.setNumThreads(1)
NEW = hasattr(motion_mod, "WARMUP_SPAN")
cfg = load_config("ped2")
dcfg = cfg["detector"]
data = load_dataset("ped2", "/work/shared/data/ped2")
videos = data.train if a.split == "training" else data.test
if a.videos:
    keep = set(a.videos.split(","))
    videos = [v for v in videos if v.name in keep]

v = a.variant
if v == "native":
    pass
elif NEW and v == "whole":  # new code, warm-up spread over the whole video (the pending list holds it all)
    motion_mod.WARMUP_SPAN = 10 ** 6
elif NEW and v.startswith("span"):  # new code, warm-up over the first N frames
    n = int(v[4:])
    motion_mod.MotionDetector.warmup_frames = property(lambda self: n if self.method != "diff" else 0)
elif NEW and v.startswith("seq"):  # new code: learn every one of the first N frames in order, then detect from 0
    n = int(v[3:])
    motion_mod.MotionDetector.warmup_frames = property(lambda self: n if self.method != "diff" else 0)
    def prime(self, frames):
        if self.model is None or not len(frames) or self.warmup <= 0:
            return
        for f in frames:
            self.model.apply(self._gray(f)); self._seen += 1
    motion_mod.MotionDetector.prime = prime
elif NEW and v.startswith("median"):  # new code: the per-pixel median of the first N frames, learnt warmup times
    n = int(v[6:])
    motion_mod.MotionDetector.warmup_frames = property(lambda self: n if self.method != "diff" else 0)
    def prime(self, frames):
        if self.model is None or not len(frames) or self.warmup <= 0:
            return
        med = np.median(np.stack([self._gray(f) for f in frames]), axis=0).astype(np.uint8)
        for _ in range(self.warmup):
            self.model.apply(med); self._seen += 1
    motion_mod.MotionDetector.prime = prime
elif not NEW and v.startswith("first"):  # old code, the new warm-up: warmup frames spread over the first N
    n = int(v[5:])
    def warm_up(self, video, n=n):
        m = min(n, len(video))
        if self.warmup > 0 and m > 0:
            picks = np.unique(np.linspace(0, m - 1, min(self.warmup, m)).round().astype(int))
            self.prime([video.frame(int(i)) for i in picks])
    motion_mod.MotionDetector.warm_up = warm_up
else:
    raise SystemExit(f"unknown variant {v} for {'new' if NEW else 'old'} code")

if a.mode == "combined":
    det = comb_mod.CombinedDetector.from_config(dcfg)
else:
    det = motion_mod.build_motion(dcfg.get("motion", {}))
rec = {"yolox": [], "motion": []}
def wrap(obj, key):
    f = obj.detect
    def g(frames):
        out = f(frames)
        rec[key].extend(out)
        return out
    obj.detect = g
if a.mode == "combined":
    wrap(det.detector, "yolox"); wrap(det.motion, "motion")
else:
    wrap(det, "motion")
result = {}
t0 = time.time()
for video in videos:
    rec["yolox"].clear(); rec["motion"].clear()
    merged = det.detect_video(video)
    result[video.name] = {"merged": merged, "yolox": list(rec["yolox"]), "motion": list(rec["motion"])}
    print(video.name, len(merged), sum(len(b) for b in merged), f"{time.time()-t0:.0f}s", flush=True)
meta = {"seqvad": seqvad.__file__, "new_code": NEW, "variant": v, "mode": a.mode, "split": a.split,
        "threads1": a.threads1, "detector": dcfg, "seconds": time.time() - t0}
with open(a.out, "wb") as h:
    pickle.dump({"meta": meta, "videos": result}, h)
print(json.dumps(meta))
