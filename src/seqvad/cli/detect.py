"""``seqvad detect MODEL INPUT``: stream a video, frame folder or camera through a trained model."""

from __future__ import annotations

from seqvad.config import ENGINES
from seqvad.errors import DataError

EXIT_EVENTS = 1  # --fail-on-event: something happened (2 stays "error", as for every command)


def add_detect(sub) -> None:
    p = sub.add_parser(
        "detect", help="score a video file, frame folder or camera with a trained model",
        description="Stream INPUT (video file, frame folder, camera index such as 0, or stream URL) through "
                    "a trained model: writes OUT/annotated.mp4 (H.264), scores.csv (one row per frame), "
                    "objects.csv, events.csv / events.json (pictures in OUT/events/) and report.html (score "
                    "timeline, events, top anomalous moments). Ctrl-C on a live source stops reading and "
                    "finishes the outputs.")
    p.add_argument("model", help="a model file written by `seqvad train --folder` (RUN/model.pt) or Detector.save")
    p.add_argument("input", help="video file, frame folder, camera index (0, 1, ...) or stream URL")
    p.add_argument("--out", help="output folder (default: detect-<input name>)")
    p.add_argument("--threshold", type=float, help="alarm threshold on the smoothed score "
                                                   "(default: the model's, a high quantile of training scores)")
    p.add_argument("--top-k", type=int, default=5, help="anomalous moments shown in the report (default 5)")
    p.add_argument("--boxes", help="CSV boxes file (video,frame,x1,y1,x2,y2) for a model trained on "
                                   "precomputed boxes; rows are matched by the input's name")
    p.add_argument("--no-video", action="store_true", help="skip the annotated video (faster)")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--device", help="cpu or cuda (default: cuda if this machine has one, else cpu; "
                                    "whatever device trained the model)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for the model (default 1: its batches of a few hundred crops gain little "
                        "from more, and on a busy machine 2 threads ran 4x slower than 1)")
    p.add_argument("--engine", choices=ENGINES,
                   help="the network that scores objects: folded (torch, BatchNorm folded, prediction path only), "
                        "onnx (the same in onnxruntime; needs the onnx package) or torch (the whole model); "
                        "default: the model's scoring.engine (folded)")
    p.add_argument("--sequential", action="store_true",
                   help="score on one thread (default: detection and the network on two threads, same scores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override an event setting stored in the model, e.g. --set scoring.events.min_duration=2 "
                        "(scoring.events.close_ratio, min_gap, min_duration; repeatable)")
    p.add_argument("--serve", metavar="[HOST:]PORT",
                   help="while it runs, serve a live page at http://HOST:PORT/ (host 127.0.0.1 unless given): "
                        "the annotated stream, the score timeline, the events and the processing rate")
    p.add_argument("--fail-on-event", action="store_true",
                   help=f"exit with status {EXIT_EVENTS} when at least one event was found (for scripts)")
    p.set_defaults(func=cmd_detect)


def cmd_detect(args) -> int:
    import torch

    from seqvad.api import Detector
    from seqvad.stream import open_source, run_detection

    # measured on 2 cores beside a training job (results/detect_speed.json): 1584 cubes/s with
    # one thread, 361 with two, whose barrier waits whenever either core is taken
    torch.set_num_threads(max(1, args.threads))
    model = Detector.load(args.model, device=args.device)
    if args.boxes:
        model.config["detector"].update(name="precomputed", boxes=str(args.boxes))
    if args.set:
        from seqvad.cli.options import apply_overrides
        from seqvad.scoring.events import event_settings

        apply_overrides(model.config, args.set, only="scoring.events")
        model.scorer.config["events"] = event_settings(model.config["scoring"])
    if args.engine:
        model.scorer.engine = model.scorer.config["engine"] = args.engine
    if model.threshold is None and args.threshold is None:
        raise DataError(f"{args.model}: the model file has no threshold; pass --threshold")
    server = live = None
    if args.serve:
        from seqvad.stream.serve import parse_bind

        host, port = parse_bind(args.serve)  # checked before the input is opened
    source = open_source(args.input)
    try:
        if args.serve:
            from seqvad.stream.serve import LiveServer, LiveState

            threshold = model.threshold if args.threshold is None else args.threshold
            live = LiveState(source.name, threshold, float(source.fps or 0) or None)
            server = LiveServer(live, host, port)
            print(f"live view: {server.url}  (stops with the command)", flush=True)
        result = run_detection(model, source, args.out, threshold=args.threshold, top_k=args.top_k,
                               write_video=not args.no_video, max_frames=args.max_frames,
                               progress=not args.quiet, model_label=str(args.model), stop_on_sigint=True,
                               live=live, pipelined=not args.sequential)
    finally:
        if server is not None:
            server.stop()
        source.close()  # run_detection closes it as well; this covers a failure before it started
    alarm_share = result.alarms / max(result.frames, 1)
    print(f"{result.frames} frames, {result.alarms} over the threshold {result.threshold:.4g} "
          f"({alarm_share:.1%}), {result.timings['fps']:.1f} frames/s")
    for event in result.events:
        print(f"event {event.id}: {event.start_time:.2f}-{event.end_time:.2f} s (frames {event.start}-{event.end}), "
              f"peak {event.peak_score:.4g} at frame {event.peak_frame}")
    print(f"{len(result.events)} event" + ("" if len(result.events) == 1 else "s"))
    if result.dropped:
        print(f"{result.dropped} frames dropped at the input (processing slower than the camera)")
    if result.stopped:
        print(f"note: {result.stopped}")
    print("outputs: " + "  ".join(str(p) for p in result.files.values()))
    return EXIT_EVENTS if args.fail_on_event and result.events else 0
