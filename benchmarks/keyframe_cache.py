"""YOLOX boxes of every Ped2 TRAINING frame at one input size, run once (batch 1, 1 thread), and the
CPU ms per network frame: the raw material ``benchmarks/keyframes.py`` simulates strides, carrying
and gating from (the network's boxes of a frame do not depend on which other frames it runs on).

    python benchmarks/keyframe_cache.py 576x384 --out runs/keyframes
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from detect import DEFAULT_DATA, load_split  # noqa: E402
from seqvad.config import load_config  # noqa: E402
from seqvad.objects.detectors import YoloxDetector  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("size")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "keyframes")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    cfg = load_config("ped2")["detector"]["yolox"]
    videos = load_split(args.data, "training")
    detector = YoloxDetector(input_size=size, score_threshold=cfg["score_threshold"], nms_iou=cfg["nms_iou"],
                             classes=cfg["classes"], min_area=cfg["min_area"], batch=1, threads=1, stride=1)
    sample = [videos[0].frame(i) for i in range(30)]
    cpu_ms = []
    for _ in range(5):  # the least disturbed of 5 turns
        start = time.process_time()
        detector.detect(sample)
        cpu_ms.append((time.process_time() - start) / len(sample) * 1000)
    boxes, counts, lengths = [], [], []
    for video in videos:
        per_frame = detector.detect_video(video)
        lengths.append(len(per_frame))
        counts += [len(b) for b in per_frame]
        boxes += per_frame
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(args.out / f"yolox_{size[0]}x{size[1]}.npz", boxes=np.concatenate(boxes).astype(np.float32),
             counts=np.asarray(counts), lengths=np.asarray(lengths), cpu_ms=np.asarray(cpu_ms))
    print(args.size, "cpu ms/frame", min(cpu_ms), flush=True)


if __name__ == "__main__":
    main()
