"""Micro AUC of the Ped2 phase-3 seed-0 model on test cubes cut from given per-frame boxes (diagnosis
only: test labels choose nothing).  Usage: score_boxes.py NAME=SPEC ...  SPEC: a pickle from
detect_boxes.py (combined mode), or mix:A.pkl:B.pkl:N (A's boxes in frames < N, B's after), or
vid:A.pkl:B.pkl:11,12 (A's boxes in the listed videos, B's elsewhere), or cache:DIR (a cube cache)."""
import sys, json, pickle, time
import numpy as np
import torch
from seqvad.config import load_config
from seqvad.data.datasets import load_dataset
from seqvad.objects.cubes import extract_cubes
from seqvad.checkpoint import load_model
from seqvad import scoring

torch.set_num_threads(1)
MODEL = "/work/main/results/ped2/phase3_seed0.pt"
cfg = load_config("ped2")
data = load_dataset("ped2", "/work/shared/data/ped2")
videos = data.test
labels = [v.labels for v in videos]
model, _, info = load_model(MODEL)
engine = sys.argv[1].split("=", 1)[1] if sys.argv[1].startswith("engine=") else None
args = sys.argv[2:] if engine else sys.argv[1:]
sc_cfg = dict(cfg.get("scoring") or {})
if engine:
    sc_cfg["engine"] = engine
scorer = scoring.Scorer(sc_cfg)

def merged(path):
    return {n: v["merged"] for n, v in pickle.load(open(path, "rb"))["videos"].items()}

def boxes_for(spec):
    if spec.startswith("mix:"):
        _, a, b, n = spec.split(":"); A, B = merged(a), merged(b); n = int(n)
        return {k: A[k][:n] + B[k][n:] for k in B}
    if spec.startswith("vid:"):
        _, a, b, names = spec.split(":"); A, B = merged(a), merged(b); names = names.split(",")
        return {k: (A[k] if k in names else B[k]) for k in B}
    return merged(spec)

out = {}
for arg in args:
    name, spec = arg.split("=", 1)
    t0 = time.time()
    if spec.startswith("cache:"):
        from seqvad.objects.cubes import CubeStore
        store = CubeStore.load(spec[6:])
        cubes, index, counts = np.asarray(store.cubes), store.index, store.frame_counts
    else:
        boxes = boxes_for(spec)
        parts, idx = [], []
        for i, v in enumerate(videos):
            c, ix = extract_cubes(v, boxes[v.name], window=4, size=32, channels=1)
            ix["video"][:] = i
            parts.append(c); idx.append(ix)
        cubes = np.concatenate(parts)
        index = {k: np.concatenate([ix[k] for ix in idx]) for k in idx[0]}
        counts = [len(v) for v in videos]
    terms = scorer.terms(model, cubes)
    scores = scorer.combine(terms, None)
    raw, smoothed = scorer.frame_scores(scores, index, counts)
    m = scoring.evaluate_scores(labels, smoothed).as_dict()
    m["micro_auc_unsmoothed"] = scoring.micro_auc(labels, raw)
    m["objects"] = int(len(cubes))
    out[name] = m
    np.savez(f"/work/drift/frames_{name}.npz", raw=np.concatenate(raw), smoothed=np.concatenate(smoothed),
             scores=scores, **{k: index[k] for k in ("video", "frame")})
    print(name, json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()}),
          f"{time.time()-t0:.0f}s", flush=True)
json.dump(out, open(f"/work/drift/auc_{'_'.join(a.split('=')[0] for a in args)}.json", "w"), indent=1)
