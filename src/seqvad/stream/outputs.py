"""Files written while streaming: ``scores.csv``, ``objects.csv`` (rows flushed as whole lines, so a
stream that stops half-way leaves valid files) and the annotated video."""

from __future__ import annotations

import array
import csv
import logging
import time
from pathlib import Path
from typing import Mapping, Sequence

from seqvad.errors import DataError
from seqvad.stream.annotate import Annotator
from seqvad.stream.events import EventLog
from seqvad.stream.report import MomentKeeper
from seqvad.stream.scorer import ScoredFrame
from seqvad.stream.video import VideoOut  # noqa: F401  (importable from here as before)

log = logging.getLogger(__name__)


class CsvLog:
    """A CSV file written in whole rows: rows are buffered and written and flushed together."""

    def __init__(self, path: Path, header: Sequence[str]):
        self.path = path
        self._handle = open(path, "w", newline="")
        self._writer = csv.writer(self._handle)
        self._writer.writerow(header)
        self._handle.flush()
        self._rows: list[list] = []

    def add(self, row: list) -> None:
        self._rows.append(row)

    def flush(self) -> None:
        try:
            if self._rows:
                self._writer.writerows(self._rows)
                self._rows = []
            self._handle.flush()
        except OSError as exc:  # a full disk: say which file, never go on as if written
            raise DataError(f"{self.path}: write failed ({exc.strerror or exc})") from None

    def close(self) -> None:
        if not self._handle.closed:
            self.flush()
            self._handle.close()


def _num(value: float) -> str:
    return f"{float(value):.9g}"


class DetectionOutputs:
    """Everything written to ``OUT/``, fed one scored frame at a time."""

    def __init__(self, out_dir: Path, threshold: float | None, fps: float, top_k: int, write_video: bool,
                 flush_every: int = 25, scoring: Mapping | None = None, started_at: float | None = None,
                 meta: Mapping | None = None, live=None):
        """``scoring`` (the model's scoring section) holds the event settings; events are
        written when there is a threshold.  ``started_at``: a live source's first-frame UNIX time.
        ``live``: a :class:`seqvad.stream.serve.LiveState` that gets every frame and event too."""
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            self.scores_csv = CsvLog(out_dir / "scores.csv", ["frame", "time", "raw_score", "score", "alarm"])
            self.objects_csv = CsvLog(out_dir / "objects.csv", ["frame", "x1", "y1", "x2", "y2",
                                                                "detector_score", "class", "object_score"])
            self.events = None if threshold is None else EventLog(
                out_dir, threshold, scoring, fps, started_at, meta, on_event=live.event if live is not None else None)
        except OSError as exc:
            raise DataError(f"{out_dir}: cannot write the outputs here ({exc.strerror or exc})") from None
        self.out_dir, self.threshold, self.fps, self.live = out_dir, threshold, fps, live
        self.annotator = Annotator(threshold)
        self.video = VideoOut(out_dir, fps) if write_video else None
        self.moments = MomentKeeper(top_k, gap=int(round(fps)))
        self.raw, self.scores = array.array("d"), array.array("d")  # 8 bytes a frame, for the report
        self.alarms = 0
        self.write_seconds = 0.0
        self.flush_every = flush_every
        self.failures: list[str] = []  # outputs that could not be completed: the run must not report success

    def add(self, item: ScoredFrame) -> None:
        started = time.perf_counter()
        alarm = self.threshold is not None and item.score > self.threshold
        self.alarms += int(alarm)
        self.raw.append(item.raw)
        self.scores.append(item.score)
        seconds = item.index / self.fps if item.time is None else item.time
        self.scores_csv.add([item.index, f"{seconds:.4f}", _num(item.raw), _num(item.score), int(alarm)])
        for box, score in zip(item.boxes, item.object_scores):
            self.objects_csv.add([item.index, *(_num(v) for v in box[:4]), _num(box[4]), int(box[5]), _num(score)])
        annotated = None
        if self.video is not None or self.moments.k or self.live is not None:
            annotated = self.annotator.draw(item, alarm)
            if self.video is not None:
                self.video.write(annotated)
            self.moments.offer(item, annotated)
        if self.events is not None:
            self.events.add(item, seconds, annotated)
        if self.live is not None:
            self.live.frame(item.index, seconds, item.score, annotated)
        if len(self.scores) % self.flush_every == 0:
            self.scores_csv.flush()
            self.objects_csv.flush()
        self.write_seconds += time.perf_counter() - started

    def close(self) -> None:
        """Release the video and complete the CSV files (always runs, even after an error)."""
        for closer in (self.scores_csv.close, self.objects_csv.close,
                       self.events.close if self.events is not None else (lambda: None),
                       self.video.close if self.video is not None else (lambda: None)):
            try:
                closer()
            except Exception as exc:  # keep closing the others
                log.warning("closing an output failed: %s", exc)
                self.failures.append(str(exc))

    def files(self) -> dict[str, Path]:
        files = {"scores": self.scores_csv.path, "objects": self.objects_csv.path,
                 "report": self.out_dir / "report.html"}
        if self.events is not None:
            files["events"] = self.events.json_path
        if self.video is not None and self.video.path is not None:
            files["video"] = self.video.path
        return files
