"""How the prediction error of a crop is pooled: the mean over all pixels (the paper) or its worst part.

    python benchmarks/error_pooling.py runs/sel-base --split val      # choices: validation only

A cyclist's wheels may be predicted badly while the rest of the crop is fine, and the mean over
the 32x32 crop dilutes that. For every phase checkpoint of a run this scores the split's objects by
the squared prediction error pooled five ways (mean; the worst 8x8 or 16x16 window; the mean of
the worst 10 % or 25 % of pixels), takes the frame maximum and the median filter as the Scorer
does, and writes micro AUC per pooling to RUN/error_pooling_<split>.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from seqvad import pipeline
from seqvad.atomic import write_json
from seqvad.checkpoint import load_model
from seqvad.scoring import Scorer, micro_auc
from seqvad.scoring.errors import cubes_to_tensor


def pooled_errors(model, cubes: np.ndarray, batch_size: int = 1024) -> dict[str, np.ndarray]:
    import torch
    import torch.nn.functional as F

    from seqvad.tasks import backward_snippet, forward_snippet, target_frame

    out: dict[str, list] = {name: [] for name in ("mean", "window8_max", "window16_max", "top10", "top25")}
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(cubes), batch_size):
            batch = cubes_to_tensor(cubes[start:start + batch_size])
            prediction = model.predict(forward_snippet(batch), backward_snippet(batch))
            error = (prediction - target_frame(batch)).pow(2).mean(1, keepdim=True)  # (B, 1, S, S)
            ranked = error.flatten(1).sort(1, descending=True).values
            out["mean"].append(error.flatten(1).mean(1))
            out["window8_max"].append(F.avg_pool2d(error, 8, 4).flatten(1).max(1).values)
            out["window16_max"].append(F.avg_pool2d(error, 16, 8).flatten(1).max(1).values)
            out["top10"].append(ranked[:, : ranked.shape[1] // 10].mean(1))
            out["top25"].append(ranked[:, : ranked.shape[1] // 4].mean(1))
    return {name: torch.cat(values).double().numpy() for name, values in out.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--split", default="val", choices=["val", "test"])
    args = parser.parse_args(argv)
    store = pipeline.load_store(args.run_dir, args.split)
    labels = pipeline.test_labels(args.run_dir, store, args.split)
    scorer = Scorer({})  # frame maximum + the default median filter
    result = {}
    for path in pipeline.phase_checkpoints(args.run_dir):
        model, _, _ = load_model(path)
        aucs = {}
        for name, values in pooled_errors(model, store.cubes).items():
            _, smoothed = scorer.frame_scores(values, store.index, store.frame_counts)
            aucs[name] = round(micro_auc(labels, smoothed), 4)
        result[path.stem] = aucs
        print(path.stem, aucs, flush=True)
    write_json(args.run_dir / f"error_pooling_{args.split}.json",
               {"command": f"python benchmarks/error_pooling.py {args.run_dir} --split {args.split}",
                "git_commit": pipeline.git_commit(), "machine": pipeline.machine(), "split": args.split,
                "micro_auc": result})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
