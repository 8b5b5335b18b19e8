import pickle, sys, json
import numpy as np

def load(p):
    return pickle.load(open(p, "rb"))

def same(a, b):
    return a.shape == b.shape and np.allclose(a, b, atol=1e-3)

def compare(pa, pb, parts=("yolox", "motion", "merged"), early=60):
    A, B = load(pa)["videos"], load(pb)["videos"]
    out = {}
    for part in parts:
        rows = {}
        tot = {"frames": 0, "differ": 0, "differ_lt60": 0, "differ_ge60": 0, "boxes_a": 0, "boxes_b": 0}
        for name in A:
            if name not in B: continue
            fa, fb = A[name][part], B[name][part]
            if not fa or not fb: continue
            d = [not same(x, y) for x, y in zip(fa, fb)]
            idx = np.flatnonzero(d)
            rows[name] = {"frames": len(fa), "differ": int(len(idx)), "differ_lt60": int((idx < early).sum()),
                          "differ_ge60": int((idx >= early).sum()), "boxes_a": sum(map(len, fa)), "boxes_b": sum(map(len, fb)),
                          "boxes_a_ge60": sum(len(x) for x in fa[early:]), "boxes_b_ge60": sum(len(x) for x in fb[early:])}
            for k in tot: tot[k] += rows[name][k]
        if rows:
            out[part] = {"total": tot, "videos": rows}
    return out

if __name__ == "__main__":
    r = compare(sys.argv[1], sys.argv[2])
    for part, v in r.items():
        print(part, v["total"])
        for n, row in v["videos"].items():
            print("   ", n, row)
