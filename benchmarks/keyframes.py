"""Keyframe strides, carried boxes and motion-gated keyframes for ``yolox+motion`` on the Ped2
TRAINING split: recall of the reference boxes vs CPU time per frame, and an estimate of
``seqvad detect``'s end-to-end frames/s.  Test boxes and labels are never read.

YOLOX runs once on every training frame per input size (``benchmarks/keyframe_cache.py``, cached
under ``--cache``); the network's boxes of a frame do not depend on the other frames, so every
schedule is replayed exactly from them with the product's own :class:`KeyframeSchedule` and
:class:`BoxCarrier` (``seqvad.objects.detectors.keyframes``), the motion boxes and masks of every
frame computed once by the product's motion detector (warm-up included), and the union built by
``merge_boxes`` as ``CombinedDetector`` builds it.

    python benchmarks/keyframe_cache.py 576x384         # once per input size (1 thread, minutes)
    python benchmarks/keyframes.py --sizes 384x256,480x320,576x384,672x448,768x512

Adds ``keyframe_selection`` to ``results/detect_ped2.json`` (the other keys are kept).

The end-to-end estimate: ``benchmarks/detect_speed.py``'s measured per-frame stage times of the
default setting at the time (``results/detect_speed.json``, pipelined: decode, detection, cropping
and writing on the caller's thread, the scorer network on a worker) are scaled to each setting --
detection by its CPU ms per frame relative to the measured setting's, cropping and the network by
its boxes per frame -- and the slower thread's time is multiplied by the measured run's ratio of
wall time to that thread's time (pipeline stalls, the two threads sharing two cores).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from detect import DEFAULT_DATA, git_commit, load_split, machine, recall, reference_boxes  # noqa: E402
from seqvad.atomic import write_json  # noqa: E402
from seqvad.config import load_config  # noqa: E402
from seqvad.objects.detectors import build_motion, merge_boxes  # noqa: E402
from seqvad.objects.detectors.keyframes import BoxCarrier, KeyframeSchedule  # noqa: E402


def motion_of(videos, cfg) -> tuple[list, list, list, float]:
    """Motion boxes and masks of every frame (as ``detect_video`` makes them), and CPU ms per frame."""
    detector = build_motion(cfg)
    boxes, masks, shapes, cpu = [], [], [], 0.0
    for video in videos:
        frames = list(video)
        start = time.process_time()
        detector.reset()
        detector.prime(frames[:detector.warmup_frames])
        b, m = detector.detect_masks(frames)
        cpu += time.process_time() - start
        boxes.append(b)
        masks.append(m)
        shapes.append(frames[0].shape[:2])
    return boxes, masks, shapes, cpu / sum(map(len, boxes)) * 1000


def cached_yolox(path: Path) -> tuple[list[list[np.ndarray]], float]:
    with np.load(path) as data:
        ends = np.cumsum(data["counts"])
        flat = [data["boxes"][a:b] for a, b in zip(ends - data["counts"], ends)]
        per_video, start = [], 0
        for length in data["lengths"]:
            per_video.append(flat[start:start + length])
            start += length
        return per_video, float(data["cpu_ms"].min())


def replay(yolox, motion, masks, shapes, stride, carry, gate, merge_iou):
    """The product's boxes for every frame under one schedule; keyframes and CPU s of the replay's
    own bookkeeping (scheduling, carrying, merging)."""
    merged, network, keys, cpu = [], [], 0, 0.0
    schedule, carrier = KeyframeSchedule(stride, gate), BoxCarrier(carry)
    for net, mot, msk, shape in zip(yolox, motion, masks, shapes):
        schedule.reset()
        carrier.reset()
        start = time.process_time()
        for t in range(len(net)):
            key = schedule.is_key(msk[t] if gate > 0 else None)
            boxes = carrier.step(net[t] if key else None, mot[t], shape)
            network.append(boxes)
            merged.append(merge_boxes(boxes, mot[t], merge_iou))
        cpu += time.process_time() - start
        keys += schedule.keyframes
    return merged, network, keys, cpu


def estimate_fps(cpu_detect_ms: float, boxes_per_frame: float, base: dict, base_cpu_detect_ms: float,
                 base_boxes: float, write_on_worker: bool = False) -> float:
    """End-to-end frames/s of ``seqvad detect`` pipelined, scaled from a measured run (module doc)."""
    ms = base["ms_per_frame_median"]
    detect = ms["detect"] * cpu_detect_ms / base_cpu_detect_ms
    crop = ms["crop"] * boxes_per_frame / base_boxes
    model = ms["model"] * boxes_per_frame / base_boxes
    main = ms["decode"] + detect + crop + ms["write"] * (not write_on_worker)
    worker = model + ms["smooth"] + ms["write"] * write_on_worker
    base_main = ms["decode"] + ms["detect"] + ms["crop"] + ms["write"]
    stall = (1000 / base["fps_median"]) / max(base_main, ms["model"] + ms["smooth"])
    return round(1000 / (stall * max(main, worker)), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=REPO / "runs" / "keyframes")
    parser.add_argument("--sizes", default="384x256,480x320,576x384,672x448,768x512")
    parser.add_argument("--strides", default="1,2,3,4,6,8")
    parser.add_argument("--gates", default="0.2,0.35,0.5", help="mask-change thresholds (1 - mask IoU)")
    parser.add_argument("--gate-strides", default="4,8", help="max strides of the gated modes")
    parser.add_argument("--speed", type=Path, default=REPO / "results" / "detect_speed.json")
    parser.add_argument("--target-fps", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "detect_ped2.json")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    config = load_config("ped2")
    det = config["detector"]
    videos = load_split(args.data, "training")
    reference = reference_boxes(args.data, "training")
    motion, masks, shapes, motion_ms = motion_of(videos, det["motion"])
    frames = len(reference)
    speed = json.loads(args.speed.read_text())
    base = speed["yolox+motion"]
    base_setting = (tuple(speed["detector_config"]["yolox"]["input_size"]), speed["detector_config"]["yolox"]["stride"])

    settings = []
    for stride in (int(s) for s in args.strides.split(",")):
        settings.append((stride, "copy", 0.0))
        if stride > 1:
            settings.append((stride, "motion", 0.0))
    for stride in (int(s) for s in args.gate_strides.split(",")):
        for gate in (float(g) for g in args.gates.split(",")):
            for carry in ("copy", "motion"):
                settings.append((stride, carry, gate))
    rows = []
    for size in [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]:
        yolox, network_ms = cached_yolox(args.cache / f"yolox_{size[0]}x{size[1]}.npz")
        for stride, carry, gate in settings:
            merged, network, keys, cpu = replay(yolox, motion, masks, shapes, stride, carry, gate,
                                                det["merge_iou"])
            # bookkeeping of the copy schedule is nearly free; the tracker and the gate are not
            rows.append({
                "input_size": list(size), "stride": stride, "carry": carry, "gate": gate,
                "keyframe_fraction": round(keys / frames, 4),
                "yolox_recall_iou30": round(recall(reference, network, 0.3), 4),
                "yolox_motion_recall_iou30": round(recall(reference, merged, 0.3), 4),
                "yolox_motion_recall_iou50": round(recall(reference, merged, 0.5), 4),
                "boxes_per_frame": round(float(np.mean([len(b) for b in merged])), 2),
                "cpu_ms_per_network_frame_1_thread": round(network_ms, 1),
                "cpu_ms_per_video_frame_1_thread": round(network_ms * keys / frames + motion_ms + cpu / frames * 1000, 2),
                "cpu_ms_carry_gate_merge_per_frame": round(cpu / frames * 1000, 3),
            })
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    base_row = next(r for r in rows if tuple(r["input_size"]) == base_setting[0] and r["stride"] == base_setting[1]
                    and r["carry"] == "copy" and r["gate"] == 0)
    for row in rows:
        for write_on_worker, key in ((False, "estimated_fps"), (True, "estimated_fps_write_on_worker")):
            row[key] = estimate_fps(row["cpu_ms_per_video_frame_1_thread"], row["boxes_per_frame"], base,
                                    base_row["cpu_ms_per_video_frame_1_thread"], base_row["boxes_per_frame"],
                                    write_on_worker)
    result = json.loads(args.out.read_text()) if args.out.is_file() else {}
    result["keyframe_selection"] = {
        "command": " ".join(["python benchmarks/keyframes.py", *sys.argv[1:]]),
        "cache_command": "python benchmarks/keyframe_cache.py WxH  (per input size)",
        "git_commit": git_commit(), "machine": machine(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "split": "training", "frames": frames, "reference": "ped2_bboxes_train.npy",
        "motion_cpu_ms_per_frame_1_thread": round(motion_ms, 2),
        "speed_base": {"file": str(args.speed.relative_to(REPO)), "setting": list(base_setting[0]) + [base_setting[1]],
                       "fps_median": base["fps_median"], "ms_per_frame_median": base["ms_per_frame_median"]},
        "estimate": "pipelined detect_speed stage times of speed_base scaled: detection by CPU ms per video frame, "
                    "crop and network by boxes per frame; wall = slower thread x the base run's stall factor",
        "rule": f"among settings whose estimated (then measured) frames/s >= {args.target_fps:g}, the largest "
                "training recall at IoU 0.3 of the yolox+motion union",
        "rows": rows,
    }
    write_json(args.out, result, indent=1)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
