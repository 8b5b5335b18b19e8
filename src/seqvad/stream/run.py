"""The run: a source through the streaming scorer into the outputs and the report, stopping cleanly
on a broken source or a first Ctrl-C, SIGTERM or SIGHUP (a second one interrupts at once)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from seqvad.errors import DataError
from seqvad.objects.detectors import build_detector
from seqvad.progress import Progress
from seqvad.stream.outputs import DetectionOutputs
from seqvad.stream.pipeline import PipelinedScorer
from seqvad.stream.report import difference_maps, write_report
from seqvad.stream.scorer import StreamScorer
from seqvad.stream.sources import DEFAULT_FPS, GuardedFrames, LatestFrames, Source

log = logging.getLogger(__name__)

LIVE_BUFFER = 32  # frames of a live source that may wait: a few detection groups, about 1 s at 25-30 fps


@dataclass
class DetectResult:
    out_dir: Path
    frames: int
    alarms: int
    threshold: float | None
    files: dict[str, Path]
    timings: dict[str, float]
    stopped: str | None = None  # why the stream ended early, if it did
    raw: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    events: list = field(default_factory=list)  # seqvad.scoring.events.Event, in order
    dropped: int = 0  # frames of a live source dropped at the input (processing slower than the camera)


def default_out_dir(source_name: str) -> Path:
    return Path(f"detect-{source_name}")


def run_detection(model, source: Source, out_dir: str | Path | None = None, threshold: float | None = None,
                  top_k: int = 5, write_video: bool = True, box_detector=None, max_frames: int | None = None,
                  progress: bool = False, model_label: str = "", stop_on_sigint: bool = False,
                  live=None, pipelined: bool = True) -> DetectResult:
    """Stream ``source`` through ``model`` (a trained :class:`seqvad.api.Detector`) into ``out_dir``.

    ``threshold`` defaults to the model's (a high quantile of its training frame scores).  When the
    source breaks mid-way, the frames that arrived are finished and written, the report is
    written, and a :class:`DataError` naming the source and the frame count is raised.

    A live source (camera, stream) is read in its own thread (:class:`LatestFrames`): when
    processing is slower than the camera, frames are dropped there and counted.  ``live``: a
    :class:`seqvad.stream.serve.LiveState` to publish frames, events and rates into (``--serve``).
    ``pipelined``: the network scores on a second thread (:mod:`seqvad.stream.pipeline`), same scores.
    """
    out_dir = Path(out_dir) if out_dir else default_out_dir(source.name)
    threshold = model.threshold if threshold is None else float(threshold)
    fps = float(source.fps or DEFAULT_FPS)
    if source.live:
        source = LatestFrames(source, capacity=LIVE_BUFFER).as_source()
    frames = GuardedFrames(source.frames, max_frames)
    started = time.perf_counter()
    try:
        if box_detector is None:
            box_detector = build_detector(model.config["detector"], video_name=source.name)
        scorer = StreamScorer(model, box_detector, video_name=source.name)
        if pipelined:
            scorer = PipelinedScorer(scorer)
        warmup_seconds = time.perf_counter() - started
        outputs = DetectionOutputs(out_dir, threshold, fps, top_k, write_video, scoring=model.scorer.config,
                                   started_at=source.started_at, meta={"input": source.name, "model": model_label},
                                   live=live)
    except BaseException:
        source.close()  # a camera stays busy until released
        raise
    # a bar on a terminal, else a line every 30 s with frames/s (and the ETA of a file)
    bar = Progress(max_frames or source.length or source.claimed_length, f"detect {source.name}", "frame",
                   enabled=progress)
    restore_sigint = _stop_on_signals(frames) if stop_on_sigint else None
    finished = False
    times: dict[int, float] = {}  # frame index -> the source's time of it, until the frame is written

    def write(items) -> None:
        for item in items:
            item.time = times.pop(item.index, None)
            outputs.add(item)

    try:
        for frame in frames:
            if source.clock is not None:
                times[frames.count - 1] = source.clock()
            write(scorer.push(frame))
            bar.update(1)
            if live is not None:
                live.dropped = source.dropped()
        write(scorer.finish())
        finished = True
    finally:
        scorer.close()
        write(scorer.undelivered())  # after a failure: the frames scored before it are written too
        bar.close()
        outputs.close()
        source.close()
        wall = time.perf_counter() - started
        timings = {"decode": round(frames.decode_seconds, 4), **scorer.times.as_dict(),
                   "write": round(outputs.write_seconds, 4), "warmup": round(warmup_seconds, 4),
                   "wall": round(wall, 4), "frames": frames.count,
                   "fps": round(frames.count / wall, 2) if wall > 0 else 0.0}
        stopped = _stop_reason(frames, source, finished)
        try:
            if live is not None:
                live.dropped = source.dropped()
                live.finish(stopped or "end of the input")
            _write_report_safely(model, outputs, source, threshold, fps, timings, stopped, model_label)
        finally:
            if restore_sigint:  # only now: a first signal while the outputs close must not kill them
                restore_sigint()
    if outputs.failures:
        raise DataError(f"{out_dir}: {len(outputs.failures)} output(s) failed: {'; '.join(outputs.failures)}")
    if frames.error is not None:
        raise DataError(f"{source.name}: the stream stopped after {frames.count} frames "
                        f"({type(frames.error).__name__}: {frames.error}); outputs up to there are in {out_dir}")
    return DetectResult(out_dir, len(outputs.scores), outputs.alarms, threshold, outputs.files(), timings,
                        stopped, np.asarray(outputs.raw), np.asarray(outputs.scores),
                        list(outputs.events.events) if outputs.events is not None else [], source.dropped())


def _stop_reason(frames: GuardedFrames, source: Source, finished: bool) -> str | None:
    if not finished:
        return f"stopped by an error after {frames.count} frames"
    if frames.error is not None:
        return f"the source failed after {frames.count} frames ({type(frames.error).__name__}: {frames.error})"
    if frames.stop_requested:
        return f"stopped on request ({frames.stop_signal or 'Ctrl-C'}) after {frames.count} frames"
    if source.claimed_length and frames.count < source.claimed_length and frames.max_frames is None:
        return f"the file claims {source.claimed_length} frames but only {frames.count} decode (truncated?)"
    return None


def _write_report_safely(model, outputs: DetectionOutputs, source: Source, threshold, fps, timings, stopped,
                         model_label: str) -> None:
    """The report, with whatever exists; a failure here must not hide the run's own error."""
    try:
        moments = outputs.moments.moments  # highest score first
        try:
            maps = difference_maps(model, moments)
        except Exception as exc:  # the model itself may be what failed
            log.warning("difference maps skipped: %s", exc)
            maps = [None] * len(moments)
        info = {"input": source.name, "model": model_label, "frames": len(outputs.scores), "fps": fps,
                "threshold": threshold, "alarms": outputs.alarms, "timings": timings, "stopped": stopped,
                "detector": model.config["detector"].get("name")}
        if outputs.video is not None and outputs.video.path is not None:
            info["video"] = outputs.video.path.name  # beside the report: events link into it
        write_report(outputs.out_dir / "report.html", info, np.asarray(outputs.raw),
                     np.asarray(outputs.scores), threshold, moments, maps, events=outputs.events)
    except Exception as exc:
        log.error("%s: report not written (%s: %s)", outputs.out_dir / "report.html", type(exc).__name__, exc)
        outputs.failures.append(f"{outputs.out_dir / 'report.html'}: not written ({type(exc).__name__}: {exc})")


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def _stop_on_signals(frames: GuardedFrames) -> Callable[[], None] | None:
    """First Ctrl-C, SIGTERM or SIGHUP: stop reading and finish the outputs (a service manager or a
    closed terminal gets complete files, as Ctrl-C does); a second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}

    def handler(signum, stack):
        if frames.stop_requested:  # the second: the previous handlers (Ctrl-C raises KeyboardInterrupt)
            restore()
            signal.raise_signal(signum)
            return
        frames.stop_requested = True
        frames.stop_signal = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(f"\nseqvad: {frames.stop_signal}: stopping after the current frames (again to abort)", file=sys.stderr)

    def restore():
        for signum, old in previous.items():
            signal.signal(signum, old)

    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)
    return restore
