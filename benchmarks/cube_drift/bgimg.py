import numpy as np, cv2
from seqvad.data.datasets import load_dataset
from seqvad.objects.detectors.motion import MotionDetector
data = load_dataset("ped2", "/work/shared/data/ped2"); vids = {v.name: v for v in data.test}
rows = []
for name in ["01", "11", "12"]:
    v = vids[name]; n = len(v)
    imgs = [cv2.cvtColor(v.frame(0), cv2.COLOR_BGR2GRAY) if v.frame(0).shape[2]==3 else v.frame(0)[:,:,0]]
    stats = []
    for span in (n, 60):
        m = MotionDetector(); m.reset()
        picks = np.unique(np.linspace(0, min(span, n) - 1, 20).round().astype(int))
        m.prime([v.frame(int(i)) for i in picks])
        bg = m.model.getBackgroundImage()
        imgs.append(bg if bg.ndim == 2 else cv2.cvtColor(bg, cv2.COLOR_BGR2GRAY))
        # foreground pixels of frame 0 right after warm-up (before morphology)
        fg = m.model.apply(m._gray(v.frame(0)))
        stats.append(int((fg > 0).sum()))
    rows.append(np.hstack(imgs))
    print(name, "frame-0 foreground pixels after warm-up: whole-video", stats[0], "first-60", stats[1])
cv2.imwrite("bg_01_11_12.png", np.vstack(rows))
