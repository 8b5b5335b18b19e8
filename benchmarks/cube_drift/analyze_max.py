import numpy as np, pickle, sys
from seqvad.data.datasets import load_dataset
from seqvad.objects.detectors.boxes import box_iou
data = load_dataset("ped2", "/work/shared/data/ped2"); names = [v.name for v in data.test]
labels = {v.name: v.labels for v in data.test}
O = pickle.load(open('old_test_native.pkl','rb'))['videos']; N = pickle.load(open('new_test_native.pkl','rb'))['videos']
fo = np.load('frames_old.npz'); fn = np.load('frames_new.npz')
def obj(f, vi, t):
    s = (f['video']==vi)&(f['frame']==t); return f['scores'][s]
for name in sys.argv[1:]:
    vi = names.index(name)
    print('video', name, 'frames', len(O[name]['merged']), 'abnormal frames', int(labels[name].sum()), 'first abnormal', int(np.argmax(labels[name])))
    for t in range(len(O[name]['merged'])):
        bo, bn = O[name]['merged'][t], N[name]['merged'][t]
        so, sn = obj(fo, vi, t), obj(fn, vi, t)
        mo, mn = (so.max() if len(so) else 0), (sn.max() if len(sn) else 0)
        if abs(mo-mn) <= 1e-4*max(mo,1e-3): continue
        # which set holds the winner and does the other set have a matching box
        if mn > mo:
            k = sn.argmax(); b = bn[k]; other = bo; side = 'new'
        else:
            k = so.argmax(); b = bo[k]; other = bn; side = 'old'
        iou = box_iou(b[None], other).max() if len(other) else 0
        print(f"  t={t:3d} lab={labels[name][t]} old_max={mo:.4f} new_max={mn:.4f} winner={side} cls={int(b[5])} box={np.round(b[:4]).astype(int).tolist()} bestIoU_other={iou:.2f}")
