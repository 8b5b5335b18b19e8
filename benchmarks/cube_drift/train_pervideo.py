import json, pickle, numpy as np
from seqvad.data.datasets import load_dataset
from seqvad.objects.detectors.boxes import box_iou, merge_boxes
from seqvad.objects.detectors.precomputed import load_box_file
data = load_dataset("ped2", "/work/shared/data/ped2"); vids = data.train
ref = load_box_file("/work/boxes/ped2_bboxes_train.npz", [(v.name, len(v)) for v in vids])
Y = pickle.load(open("tr_new_native.pkl", "rb"))["videos"]
V = {"head": {k: v["motion"] for k, v in Y.items()}}
for t in ("whole", "span100", "span120"):
    V[t] = {k: v["motion"] for k, v in pickle.load(open(f"tr_m_{t}.pkl", "rb"))["videos"].items()}
out = {}
for t, M in V.items():
    per, small = [], 0
    for v, r in zip(vids, ref):
        s = 0
        for f in range(min(60, len(v))):
            d = merge_boxes(Y[v.name]["yolox"][f], M[v.name][f], 0.3)
            if not len(d): continue
            bad = np.ones(len(d), bool) if not len(r[f]) else box_iou(d, r[f]).max(1) < 0.3
            s += int(bad.sum())
            area = (d[:, 2] - d[:, 0]) * (d[:, 3] - d[:, 1])
            small += int((bad & (area < 150)).sum())
        per.append(s)
    out[t] = {"spurious_lt60_per_video": per, "spurious_lt60_small_area_lt150": small}
    print(t, per, "small(<150px2):", small)
for t in ("whole", "span100", "span120"):
    d = np.array(out["head"]["spurious_lt60_per_video"]) - np.array(out[t]["spurious_lt60_per_video"])
    print(f"head minus {t}: videos with more spurious under head {int((d>0).sum())}/16, fewer {int((d<0).sum())}, sum {int(d.sum())}")
    out[f"head_minus_{t}"] = {"more": int((d>0).sum()), "fewer": int((d<0).sum()), "sum": int(d.sum())}
json.dump(out, open("train_pervideo.json", "w"), indent=1)
