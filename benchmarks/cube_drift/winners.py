import numpy as np, pickle
from seqvad.data.datasets import load_dataset
from seqvad.objects.detectors.boxes import box_iou
data = load_dataset("ped2", "/work/shared/data/ped2"); vids = data.test
O = pickle.load(open('old_test_native.pkl','rb'))['videos']; N = pickle.load(open('new_test_native.pkl','rb'))['videos']
fo = np.load('frames_old.npz')
print('video frames max-is-motion-share(old cubes)  motion boxes of old matched IoU>=0.9 in new: <60 / >=60')
out = {}
for vi, v in enumerate(vids):
    s = fo['video']==vi
    mot = np.concatenate([b[:,5]==-1 for b in O[v.name]['merged']])
    sc = fo['scores'][s]; fr = fo['frame'][s]
    n = len(v); winner = []
    for t in range(n):
        k = np.flatnonzero(fr==t)
        if len(k): winner.append(mot[k[np.argmax(sc[k])]])
    def match(A, B, lo, hi):
        m = tot = 0
        for t in range(lo, min(hi, n)):
            a, b = A[t], B[t]; tot += len(a)
            if len(a) and len(b): m += int((box_iou(a, b).max(1) >= 0.9).sum())
        return m / max(tot, 1)
    row = [round(float(np.mean(winner)), 3), round(match(O[v.name]['motion'], N[v.name]['motion'], 0, 60), 3), round(match(O[v.name]['motion'], N[v.name]['motion'], 60, 999), 3)]
    out[v.name] = row
    print(v.name, n, *row)
import json; json.dump(out, open('winners.json','w'))
