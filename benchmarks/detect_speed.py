"""Speed of ``seqvad detect`` on UCSD Ped2 test video 01 (180 frames, 240x360), every stage, one run.

    .venv/bin/python benchmarks/detect_speed.py --run RUN      # writes results/detect_speed.json

In one run on one machine state, each measured ``--repeats`` times (median reported, every
repeat kept):

* ``decode_only``: frames/s of reading the input alone;
* ``yolox+motion``: the real streaming path (:func:`seqvad.stream.run_detection`: decode, boxes,
  cubes, network, scores, annotated video, CSV files, report), pipelined (the default: detection
  and the network on two threads), and ``yolox+motion_sequential`` (``--sequential``);
* ``precomputed``: the same with the boxes shipped with the data (no detector cost);
* ``scorer``: the scorer network alone on uint8 cubes in batches of a detection group's objects,
  in cubes/s for each engine (``torch``: the whole model, ``folded``, ``onnx``), its GFLOP/s
  (convolutions and matrix products counted by ``FlopCounterMode``, as ``train_speed.py`` counts)
  and that as a fraction of the convolution peak measured the same way as ``train_speed.py``
  (a large fp32 conv) on the same number of threads: one thread (``scorer``, as in ``seqvad
  detect``, whose other core detects) and every core (``scorer_all_cores``);
* ``fast_path_vs_batch``: the largest difference between the scores the streaming path wrote
  and ``Detector.score`` (batch evaluation) of the same video.

Every stage is given in ms per frame (its seconds in that thread / frames); with the pipeline the
stages overlap, so the wall time per frame is below their sum.  The load average (1 min) before and
after is written beside the numbers: speeds taken on a loaded machine are not the machine's.

Precomputed boxes: ``$SEQVAD_PED2_TEST_BOXES`` or ``DATA/ped2/bboxes/ped2_bboxes_test.npz`` (the
reference boxes converted by ``seqvad boxes convert``).  The model: ``--run``, a model file
(default: ``results/ped2/model.pt``, the ready model with its fitted scorer), a checkpoint or a run
folder's last phase checkpoint (scored the paper's way); else an untrained model of the default
width (speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from seqvad.api import Detector  # noqa: E402
from seqvad.provenance import git_commit, machine  # noqa: E402
from seqvad.stream import open_source, run_detection  # noqa: E402

DATA = Path(os.environ.get("SEQVAD_DATA", REPO.parent / "shared" / "data"))
STAGES = ("warmup", "decode", "detect", "crop", "model", "smooth", "write")


def load() -> float:
    return round(os.getloadavg()[0], 2)


def speed_model(source: Path) -> tuple[Detector, str]:
    """The model to time: ``source`` is a model file (``Detector.save``: its own config and fitted
    scorer, e.g. the default ``results/ped2/model.pt``), or a checkpoint file or a run folder (its
    last phase checkpoint) under the Ped2 config scored the paper's way (the other terms need a
    scorer fitted on training objects); neither: an untrained network of the default width."""
    from seqvad.checkpoint import load_model
    from seqvad.model import build_model

    try:
        model = Detector.load(source, device="cpu")
        model.threshold = 0.01  # a nominal threshold: alarms change what is drawn, not the speed
        return model, f"{source} (model file: its config and fitted scorer)"
    except Exception:  # not a model file: a checkpoint, a run folder or nothing
        pass
    from seqvad.config import load_config

    paper_score = {"scoring": {"terms": {"pre": 1.0, "rec": 0.0, "order": 0.0, "knn": 0.0}}}
    model = Detector(load_config("ped2", paper_score), device="cpu")
    checkpoints = [source] if source.is_file() else sorted((source / "checkpoints").glob("phase*.pt"))
    if checkpoints:
        model.model, _, _ = load_model(checkpoints[-1])
        label = str(checkpoints[-1])
    else:
        cubes = model.config["cubes"]
        model.model = build_model(model.config["model"], cubes["channels"], cubes["window"], cubes["size"])
        label = f"untrained, default width (no checkpoint at {source})"
    model.model.eval()
    model.threshold = 0.01  # a nominal threshold: alarms change what is drawn, not the speed
    return model, label


def median_of(runs: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 2)


def decode_only(folder: Path, repeats: int) -> dict:
    fps = []
    for _ in range(repeats):
        started = time.perf_counter()
        count = sum(1 for _ in open_source(folder).frames)
        fps.append(count / (time.perf_counter() - started))
    return {"frames": count, "fps_median": round(statistics.median(fps), 1), "fps_all": [round(f, 1) for f in fps]}


def precomputed_boxes(frames: int):
    """The reference boxes of the split's first ``frames`` frames (video 01 comes first), from the
    plain-array .npz that ``seqvad boxes convert`` writes (read without unpickling)."""
    from seqvad.objects.detectors import PrecomputedBoxes

    path = Path(os.environ.get("SEQVAD_PED2_TEST_BOXES", DATA / "ped2" / "bboxes" / "ped2_bboxes_test.npz"))
    with np.load(path, allow_pickle=False) as data:
        counts, boxes = data["counts"], data["boxes"]
    ends = np.cumsum(counts)[:frames]
    return PrecomputedBoxes([boxes[a:b].astype(np.float32) for a, b in zip(ends - counts[:frames], ends)], str(path))


def one_run(model: Detector, folder: Path, out: Path, box_detector=None, pipelined: bool = True) -> dict:
    result = run_detection(model, open_source(folder), out, box_detector=box_detector, write_video=True,
                           pipelined=pipelined)
    t = result.timings
    with open(result.files["objects"]) as handle:
        objects = sum(1 for _ in handle) - 1  # rows minus the header
    stages = {k: t[k] for k in STAGES}
    return {"frames": result.frames, "fps": t["fps"], "wall_seconds": t["wall"],
            "fps_after_warmup": round(result.frames / (t["wall"] - t["warmup"]), 1),
            "ms_per_frame": {k: round(1000 * v / max(result.frames, 1), 2) for k, v in stages.items()},
            "objects_per_frame": round(objects / max(result.frames, 1), 2),
            "scores": result.scores}


def end_to_end(model, folder, tmp: Path, repeats: int, **kwargs) -> dict:
    runs = [one_run(model, folder, tmp / f"run{i}", **kwargs) for i in range(repeats)]
    stages = {k: round(statistics.median(r["ms_per_frame"][k] for r in runs), 2) for k in STAGES}
    busiest = max((k for k in stages if k != "warmup"), key=stages.get)
    return {"fps_median": median_of(runs, "fps"), "fps_all": [r["fps"] for r in runs],
            "fps_after_warmup_median": median_of(runs, "fps_after_warmup"),
            "ms_per_frame_median": stages, "slowest_stage": busiest,
            "objects_per_frame": runs[0]["objects_per_frame"], "frames": runs[0]["frames"],
            "scores": runs[0]["scores"]}


def scorer_speed(model: Detector, objects_per_group: int, repeats: int, threads: int) -> dict:
    """Cubes/s of each engine on batches of one detection group's objects, vs the conv peak: the
    network of the model's weighted terms (the kNN query after it is not counted here)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from seqvad.scoring.compact import Engine, ObjectTerms
    from seqvad.scoring.errors import object_terms
    from train_speed import median_seconds, peak_conv_gflops

    torch.set_num_threads(threads)
    names = model.scorer.term_names
    geometry = model.config["cubes"]
    shape = (objects_per_group, 2 * geometry["window"] + 1, geometry["channels"], geometry["size"], geometry["size"])
    cubes = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        ObjectTerms(model.model, names)(torch.from_numpy(cubes))
    flops_per_cube = counter.get_total_flops() / len(cubes)
    peak = peak_conv_gflops(torch.device("cpu"), repeats)
    calls = max(1, 4000 // len(cubes))  # about 4000 cubes per timed repeat
    engines = {"torch": lambda: [object_terms(model.model, cubes, names) for _ in range(calls)]}
    for name in ("folded", "onnx"):
        try:
            engine = Engine(model.model, engine=name, threads=threads, names=names)
        except Exception as exc:  # onnx needs the onnx package
            engines[name] = str(exc)
            continue
        engines[name] = (lambda e: lambda: [e.terms(cubes) for _ in range(calls)])(engine)
    out = {"threads": threads, "terms": list(names), "batch": len(cubes), "mflop_per_cube": round(flops_per_cube / 1e6, 3),
           "peak_conv": peak}
    for name, run in engines.items():
        if isinstance(run, str):
            out[name] = {"skipped": run}
            continue
        seconds, all_seconds = median_seconds(run, repeats, torch.device("cpu"))
        rate = calls * len(cubes) / seconds
        gflops = rate * flops_per_cube / 1e9
        out[name] = {"cubes_per_s": round(rate, 1), "gflops_per_s": round(gflops, 2),
                     "fraction_of_peak": round(gflops / peak["gflops_per_s"], 3), "seconds_all": all_seconds}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=str(REPO / "results" / "ped2" / "model.pt"),
                        help="a checkpoint, or a run folder (its last phase checkpoint); default: the Ped2 "
                             "model of results/ped2/")
    parser.add_argument("--video", default="01", help="Ped2 test video (default 01)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "results" / "detect_speed.json"))
    parser.add_argument("--set", action="append", default=[], metavar="detector.KEY=VALUE",
                        help="change a detector setting or scoring.engine for this measurement, e.g. "
                             "detector.yolox.stride=4 or scoring.engine=onnx "
                             "(value parsed as YAML; repeatable)")
    args = parser.parse_args()
    folder = DATA / "ped2" / "testing" / "frames" / args.video
    if not folder.is_dir():
        print(f"skipped: {folder} is absent (set SEQVAD_DATA to the folder holding ped2/)")
        return 0
    import torch

    from seqvad.data.videos import Video

    torch.set_num_threads(1)  # `seqvad detect`'s default: the second core runs detection
    model, label = speed_model(Path(args.run))
    if args.set:
        import yaml

        from seqvad.config import set_dotted
        from seqvad.config_check import validate

        for item in args.set:
            key, _, value = item.partition("=")
            if not (key.startswith("detector.") or key == "scoring.engine"):
                parser.error(f"--set {item}: only detector.* settings and scoring.engine")
            set_dotted(model.config, key, yaml.safe_load(value))
        validate(model.config, source="--set")
        model.scorer.engine = model.config["scoring"]["engine"]
    result = {"command": " ".join(["python benchmarks/detect_speed.py", *sys.argv[1:]]),
              "git_commit": git_commit(), "machine": machine(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "input": f"ped2/testing/frames/{args.video}", "model": label, "model_config": model.config["model"],
              "detector_config": model.config["detector"], "scoring_engine": model.scorer.engine,
              "repeats": args.repeats, "target_fps": 150, "load_average_1min_before": load()}
    with tempfile.TemporaryDirectory(prefix="detect-speed-") as tmp:
        tmp = Path(tmp)
        result["decode_only"] = decode_only(folder, args.repeats)
        print("decode only:", result["decode_only"], flush=True)
        boxes = precomputed_boxes(result["decode_only"]["frames"])
        for name, kwargs in (("yolox+motion", {}), ("yolox+motion_sequential", {"pipelined": False}),
                             ("precomputed", {"box_detector": boxes})):
            result[name] = end_to_end(model, folder, tmp / name, args.repeats, **kwargs)
            print(f"{name}:", {k: v for k, v in result[name].items() if k != "scores"}, flush=True)
        fast = np.asarray(result["yolox+motion"].pop("scores"))
        for name in ("yolox+motion_sequential", "precomputed"):
            result[name].pop("scores")
        batch = model.score(Video.from_folder(folder))
        engine, model.scorer.engine = model.scorer.engine, "torch"
        whole = model.score(Video.from_folder(folder))  # batch evaluation through the whole model
        model.scorer.engine = engine
        result["fast_path_vs_batch"] = {"max_abs_difference": float(np.max(np.abs(fast - batch))),
                                        "max_abs_difference_vs_whole_model": float(np.max(np.abs(fast - whole))),
                                        "max_score": float(np.max(np.abs(batch)))}
        group = 8 * max(1, round(result["yolox+motion"]["objects_per_frame"]))
        result["scorer"] = scorer_speed(model, group, args.repeats, threads=1)
        print("scorer:", result["scorer"], flush=True)
        cores = os.cpu_count() or 1
        if cores > 1:  # the scorer with every core, its peak at as many threads: what scoring
            # precomputed boxes, or many cameras' cubes on a machine of their own, can reach
            result["scorer_all_cores"] = scorer_speed(model, group, args.repeats, threads=cores)
            print("scorer, all cores:", result["scorer_all_cores"], flush=True)
            torch.set_num_threads(1)
    result["load_average_1min_after"] = load()
    # the runs themselves raise the load to about 1-2 by the end: only the load before says
    # whether something else was running
    if result["load_average_1min_before"] > 0.5:
        result["warning"] = "the machine was busy before the run (load average over 0.5): these are not its speeds"
        print("warning:", result["warning"], file=sys.stderr)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
