"""Events of `seqvad detect` on UCSD Ped2 test videos against their ground-truth abnormal spans.

    python benchmarks/ped2_events.py MODEL.pt --videos 04 --root ../shared/data/ped2 --out results/ped2/events.json

For each video: streams its frame folder through the model exactly as `seqvad detect` does
(outputs in OUT_DIR/<video>/), then compares the events (events.json) with the label spans:
which events overlap an abnormal span, which spans no event touches, and how many frames inside
and outside the spans the events cover. The event settings are the model's (`scoring.events`);
nothing here is tuned on these labels.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from seqvad.atomic import write_json
from seqvad.data.datasets import load_dataset
from seqvad.scoring.events import event_settings
from seqvad.stream.report import alarm_segments


def spans(labels: np.ndarray) -> list[tuple[int, int]]:
    """``(first, last)`` of each run of abnormal frames."""
    return alarm_segments(np.asarray(labels, float), 0.5)


def compare(events: list[dict], truth: list[tuple[int, int]], frames: int) -> dict:
    covered = np.zeros(frames, bool)
    for e in events:
        covered[e["start_frame"]:e["end_frame"] + 1] = True
    abnormal = np.zeros(frames, bool)
    for a, b in truth:
        abnormal[a:b + 1] = True
    overlaps = lambda e, s: e["start_frame"] <= s[1] and e["end_frame"] >= s[0]  # noqa: E731
    return {"events": len(events), "truth_spans": [list(s) for s in truth],
            "events_overlapping_truth": sum(any(overlaps(e, s) for s in truth) for e in events),
            "truth_spans_missed": [list(s) for s in truth if not any(overlaps(e, s) for e in events)],
            "abnormal_frames_in_events": int((covered & abnormal).sum()), "abnormal_frames": int(abnormal.sum()),
            "normal_frames_in_events": int((covered & ~abnormal).sum()), "normal_frames": int((~abnormal).sum())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "ped2"))
    parser.add_argument("--videos", nargs="+", default=["04"])
    parser.add_argument("--work", default="runs/ped2-events", help="detect outputs go to WORK/<video>/")
    parser.add_argument("--out", help="summary JSON (default: print only)")
    parser.add_argument("--note", default="", help="how the model file was made, kept in the summary")
    args = parser.parse_args(argv)

    import torch

    from seqvad.api import Detector
    from seqvad.stream import open_source, run_detection

    torch.set_num_threads(1)
    model = Detector.load(args.model)
    test = {v.name: v for v in load_dataset("ped2", args.root).test}
    rows = {}
    for name in args.videos:
        video = test[name]
        result = run_detection(model, open_source(video.path), Path(args.work) / name, write_video=False, top_k=0)
        events = json.loads((result.out_dir / "events.json").read_text())
        rows[name] = {**compare(events["events"], spans(video.labels), result.frames),
                      "event_spans": [[e["start_frame"], e["end_frame"], round(e["peak_score"], 4)]
                                      for e in events["events"]],
                      "dropped_short": events["dropped_short"]}
        print(name, json.dumps(rows[name]))
    summary = {"command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]), "model": args.model,
               "model_note": args.note, "threshold": model.threshold, "settings": event_settings(model.scorer.config),
               "fps": "25 (frame folders carry no rate)", "videos": rows}
    if args.out:
        write_json(Path(args.out), summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
