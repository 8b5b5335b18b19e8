"""Fig. 3 of the paper, ours: object crops, the bidirectional prediction and its difference map.

    python benchmarks/fig3_difference_maps.py results/ped2/phase3_seed0.pt \
        --run runs/studies/work/prepared --root ../shared/data/ped2 --out results/studies/fig3_difference_maps.png

One row per pick (test video, frame, what it shows): the object of that frame that overlaps the
pixel-level ground truth most (or, for the normal row, the largest object outside it). Columns:
the four past frames, the target middle frame, the prediction from both sides, |target -
prediction| (one colour scale for every row) and the object's score. The picks were made by
looking at the test frames: a figure, not a choice of anything the model or its scores depend on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from seqvad import pipeline  # noqa: E402
from seqvad.checkpoint import load_model  # noqa: E402
from seqvad.report import _pyplot  # noqa: E402
from seqvad.tasks import backward_snippet, forward_snippet, target_frame  # noqa: E402
from seqvad.train import to_float_cubes  # noqa: E402

# (test video, frame numbered from 0, caption, abnormal?)
PICKS = [("06", 100, "bicycle", True), ("04", 100, "cart", True), ("12", 120, "skateboard (irregular motion)", True),
         ("04", 100, "walking (normal)", False)]


def mask_of(root: Path, video: str, frame: int) -> np.ndarray:
    import cv2

    path = root / "ground_truth" / "pixel_masks" / f"Test{int(video):03d}_gt" / f"{frame + 1:03d}.png"
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise SystemExit(f"{path}: cannot read the pixel mask")
    return mask > 0


def pick_object(store, root: Path, video: str, frame: int, abnormal: bool) -> int:
    index = store.index
    rows = np.flatnonzero((index["video"] == store.videos.index(video)) & (index["frame"] == frame))
    if not len(rows):
        raise SystemExit(f"video {video} frame {frame}: no objects in the cube store")
    mask = mask_of(root, video, frame)
    overlap, area = [], []
    for row in rows:
        x1, y1, x2, y2 = (int(round(float(index[k][row]))) for k in ("x1", "y1", "x2", "y2"))
        overlap.append(mask[max(y1, 0):y2, max(x1, 0):x2].mean() if x2 > x1 and y2 > y1 else 0.0)
        area.append((x2 - x1) * (y2 - y1))
    overlap, area = np.asarray(overlap), np.asarray(area)
    if abnormal:
        return int(rows[np.argmax(overlap)])
    outside = np.flatnonzero(overlap == 0)
    return int(rows[outside[np.argmax(area[outside])]] if len(outside) else rows[np.argmin(overlap)])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a phase checkpoint (phaseK.pt)")
    parser.add_argument("--run", type=Path, required=True, help="a run folder holding the test cubes of the model's config")
    parser.add_argument("--root", type=Path, required=True, help="the Ped2 folder (for the pixel masks)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    model, _, _ = load_model(args.model)
    store = pipeline.load_store(args.run, "test")
    rows = [pick_object(store, args.root, video, frame, abnormal) for video, frame, _, abnormal in PICKS]
    cubes = to_float_cubes(torch.from_numpy(np.array(store.cubes[rows])))
    with torch.no_grad():
        prediction = model.predict(forward_snippet(cubes), backward_snippet(cubes))
    target = target_frame(cubes)
    difference = (target - prediction).abs()
    errors = difference.pow(2).flatten(1).mean(1)
    top = float(difference.max())
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), 7, figsize=(10, 1.65 * len(rows)), squeeze=False)
    window = cubes.shape[1] // 2
    for r, (pick, row_axes) in enumerate(zip(PICKS, axes)):
        panels = [*(cubes[r, t, 0] for t in range(window)), target[r, 0], prediction[r, 0]]
        titles = [f"t-{window - t}" for t in range(window)] + ["target t", "prediction"]
        for ax, image, title in zip(row_axes, panels, titles):
            ax.imshow(image.numpy(), cmap="gray", vmin=-1, vmax=1)
            ax.set_title(title, fontsize=7)
        shown = row_axes[-1].imshow(difference[r, 0].numpy(), cmap="inferno", vmin=0, vmax=top)
        row_axes[-1].set_title(f"|difference|, MSE {float(errors[r]):.4f}", fontsize=7)
        row_axes[0].set_ylabel(f"{pick[2]}\nvideo {pick[0]}, frame {pick[1]}", fontsize=7)
        for ax in row_axes:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.subplots_adjust(left=0.08, right=0.9, top=0.88, bottom=0.02, hspace=0.35)
    fig.colorbar(shown, cax=fig.add_axes([0.92, 0.1, 0.012, 0.7]))
    fig.suptitle(f"Prediction difference maps ({args.model.name}, Ped2 test objects)", fontsize=9)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=130)
    plt.close(fig)
    print(f"wrote {args.out}: MSE " + ", ".join(f"{p[2]} {float(e):.4f}" for p, e in zip(PICKS, errors)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
