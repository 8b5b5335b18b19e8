"""End-to-end speed of ``seqvad detect`` on UCSD Ped2 test video 01 (180 frames, 240x360).

    .venv/bin/python benchmarks/detect_speed.py            # writes results/detect_speed.json

Runs the real streaming path (:func:`seqvad.stream.run_detection`: decode, boxes, cubes, model,
scores, annotated video, CSV files, report) with

* the model config's detector (``yolox+motion``, the Ped2 config and the built-in default of
  ``seqvad train --folder``), and
* the precomputed boxes shipped with the data (``bboxes/ped2_bboxes_test.npy``; its first 180
  frames are video 01),

beside decode-only frames/s measured in the same run, and where the time goes (seconds per
stage; ``warmup`` is building the detector and priming the motion model).  The model runs on one
torch thread, as ``seqvad detect`` does by default; the precomputed run is repeated with one
thread per core for comparison.

The model: the last phase checkpoint of ``runs/ped2`` when there is one (``--run``), else an
untrained model of the default width; speed does not depend on the weights.  The machine may be
busy (a training job ran beside the first measurement): the load average is written beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from seqvad.api import Detector  # noqa: E402
from seqvad.stream import open_source, run_detection  # noqa: E402
from seqvad.objects.detectors import PrecomputedBoxes  # noqa: E402
from seqvad.pipeline import git_commit, machine  # noqa: E402

DATA = Path(os.environ.get("SEQVAD_DATA", REPO.parent / "shared" / "data"))


def speed_model(run_dir: Path) -> tuple[Detector, str]:
    """A trained model from ``run_dir`` if it has a phase checkpoint, else an untrained one."""
    from seqvad.model import build_model
    from seqvad.train import load_model

    model = Detector("ped2")
    checkpoints = sorted((run_dir / "checkpoints").glob("phase*.pt"))
    if checkpoints:
        model.model, _, _ = load_model(checkpoints[-1])
        label = f"{checkpoints[-1].relative_to(REPO) if checkpoints[-1].is_relative_to(REPO) else checkpoints[-1]}"
    else:
        cubes = model.config["cubes"]
        model.model = build_model(model.config["model"], cubes["channels"], cubes["window"], cubes["size"]).eval()
        label = "untrained, default width (no phase checkpoint in %s yet)" % run_dir
    model.threshold = 0.01  # a nominal threshold: alarms change what is drawn, not the speed
    return model, label


def decode_only(folder: Path) -> dict:
    started = time.perf_counter()
    count = sum(1 for _ in open_source(folder).frames)
    seconds = time.perf_counter() - started
    return {"frames": count, "seconds": round(seconds, 3), "fps": round(count / seconds, 1)}


def precomputed_boxes(frames: int) -> PrecomputedBoxes:
    path = DATA / "ped2" / "bboxes" / "ped2_bboxes_test.npy"
    boxes = np.load(path, allow_pickle=True)  # the dataset's own object array (trusted file)
    return PrecomputedBoxes([np.asarray(b, np.float32) for b in boxes[:frames]], str(path))


def one_run(model: Detector, folder: Path, out: Path, box_detector=None) -> dict:
    load_before = os.getloadavg()[0]
    result = run_detection(model, open_source(folder), out, box_detector=box_detector, write_video=True)
    t = result.timings
    with open(result.files["objects"]) as handle:
        objects = sum(1 for _ in handle) - 1  # rows minus the header
    steady = t["wall"] - t["warmup"]
    stages = {k: t[k] for k in ("warmup", "decode", "detect", "crop", "model", "smooth", "write")}
    stages["other"] = round(t["wall"] - sum(stages.values()), 4)
    return {"frames": result.frames, "fps_end_to_end": t["fps"],
            "fps_after_warmup": round(result.frames / steady, 1) if steady > 0 else None,
            "wall_seconds": t["wall"], "stage_seconds": stages,
            "ms_per_frame": {k: round(1000 * v / max(result.frames, 1), 2) for k, v in stages.items()},
            "objects_per_frame": round(objects / max(result.frames, 1), 2),
            "model_cubes_per_s": round(objects / t["model"], 1) if t["model"] > 0 else None,
            "slowest_stage": max(stages, key=stages.get),
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=str(REPO / "runs" / "ped2"), help="run folder with phase checkpoints")
    parser.add_argument("--out", default=str(REPO / "results" / "detect_speed.json"))
    args = parser.parse_args()
    folder = DATA / "ped2" / "testing" / "frames" / "01"
    if not folder.is_dir():
        print(f"skipped: {folder} is absent (set SEQVAD_DATA to the folder holding ped2/)")
        return 0
    import torch

    model, label = speed_model(Path(args.run))
    command = " ".join(["python benchmarks/detect_speed.py", *sys.argv[1:]])
    result = {"command": command, "git_commit": git_commit(), "machine": machine(),
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "input": "ped2/testing/frames/01",
              "model": label, "model_config": model.config["model"], "detector_config": model.config["detector"],
              "target_fps": 150,
              "outputs": "annotated.mp4, scores.csv, objects.csv, report.html (all written)"}
    with tempfile.TemporaryDirectory(prefix="detect-speed-") as tmp:
        result["decode_only"] = decode_only(folder)
        print("decode only:", result["decode_only"], flush=True)
        boxes = precomputed_boxes(result["decode_only"]["frames"])  # reset (cursor 0) at each run's start
        cores = torch.get_num_threads()
        # `seqvad detect` runs the model on 1 torch thread by default; the core count for comparison
        for threads, name, box_detector in ((1, "yolox+motion", None), (1, "precomputed", boxes),
                                            (cores, f"precomputed_torch_{cores}_threads", boxes)):
            torch.set_num_threads(threads)
            result[name] = {"torch_threads": threads, **one_run(model, folder, Path(tmp) / name, box_detector)}
            print(f"{name}:", result[name], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
