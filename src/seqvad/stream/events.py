"""``events.csv``, ``events.json`` and ``events/event_NNN.jpg`` of ``seqvad detect``, written while streaming.

Each event is written the moment it closes (a CSV row flushed whole, ``events.json`` rewritten
atomically, its thumbnail saved), so a person or script watching the folder of a live camera sees
it without waiting for the stream to end.  The event logic itself is
:class:`seqvad.scoring.events.EventTracker`.
"""

from __future__ import annotations

import csv
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping

import cv2
import numpy as np

from seqvad.atomic import write_bytes
from seqvad.scoring.events import Event, EventTracker, event_settings
from seqvad.stream.annotate import thumbnail
from seqvad.stream.scorer import ScoredFrame

CSV_HEADER = ["id", "start_frame", "end_frame", "start_time", "end_time", "duration", "peak_score",
              "peak_frame", "peak_time", "x1", "y1", "x2", "y2", "thumbnail"]
REPORT_THUMBNAILS = 100  # encoded thumbnails kept in memory for report.html; later events link files only


class EventLog:
    """Feeds each scored frame to an :class:`EventTracker` and writes the events it closes.

    ``started_at`` (UNIX seconds) is the wall-clock time of the first frame of a live source:
    then every event also carries its clock times (ISO 8601, UTC).
    """

    def __init__(self, out_dir: Path, threshold: float, scoring: Mapping | None, fps: float,
                 started_at: float | None = None, meta: Mapping | None = None,
                 on_event: Callable[[dict, bytes | None], None] | None = None):
        """``on_event(event as dict, its JPEG)`` is called for each event written (the live view)."""
        self.out_dir, self.fps, self.started_at, self.on_event = out_dir, fps, started_at, on_event
        self.settings = event_settings(scoring)
        self.tracker = EventTracker(threshold, self.settings, fps)
        self.meta = dict(meta or {})
        self.events: list[Event] = []
        self.pictures: dict[int, bytes] = {}  # event id -> JPEG, for the report
        self.csv_path, self.json_path = out_dir / "events.csv", out_dir / "events.json"
        self.thumb_dir = out_dir / "events"
        self._handle = open(self.csv_path, "w", newline="")
        self._writer = csv.writer(self._handle)
        self._writer.writerow(CSV_HEADER)
        self._handle.flush()
        self._write_json()

    def add(self, item: ScoredFrame, time: float, picture: np.ndarray | None) -> list[Event]:
        """One frame (in order); ``picture`` is what its thumbnail shows (the annotated frame)."""
        peak = None
        open_event = self.tracker.open_event
        # only frames that may become an event's peak keep a reference to their picture
        if item.score > self.tracker.threshold or (open_event is not None and item.score > open_event.peak_score):
            worst = item.boxes[int(np.argmax(item.object_scores))] if len(item.object_scores) else None
            peak = {"box": worst, "picture": item.frame if picture is None else picture}
        closed = self.tracker.push(item.index, time, item.score, peak)
        for event in closed:
            self._write(event)
        return closed

    def close(self) -> None:
        for event in self.tracker.finish():
            self._write(event)
        if not self._handle.closed:
            self._handle.close()
        self._write_json()

    def _write(self, event: Event) -> None:
        box = event.extra.get("box")
        picture = event.extra.get("picture")
        event.box = None if box is None else [round(float(v), 2) for v in box[:4]]
        jpeg = None
        if picture is not None:
            self.thumb_dir.mkdir(exist_ok=True)
            ok, encoded = cv2.imencode(".jpg", thumbnail(picture, box), [cv2.IMWRITE_JPEG_QUALITY, 85])
            if ok:
                event.thumbnail, jpeg = f"events/event_{event.id:03d}.jpg", encoded.tobytes()
                write_bytes(self.out_dir / event.thumbnail, jpeg)
                if len(self.pictures) < REPORT_THUMBNAILS:
                    self.pictures[event.id] = encoded.tobytes()
        event.extra = {}  # the peak picture is no longer needed
        self.events.append(event)
        row = self.row(event)
        self._writer.writerow([row[key] for key in CSV_HEADER])
        self._handle.flush()
        self._write_json()
        if self.on_event is not None:
            self.on_event(self.as_dict(event), jpeg)

    def row(self, event: Event) -> dict:
        out = {key: value for key, value in self.as_dict(event).items() if key != "box"}
        for key, value in zip(("x1", "y1", "x2", "y2"), event.box or [""] * 4):
            out[key] = value
        out["thumbnail"] = event.thumbnail or ""
        return out

    def as_dict(self, event: Event) -> dict:
        out = event.as_dict()
        for key in ("start_time", "end_time", "peak_time", "duration"):
            out[key] = round(out[key], 4)
        out["peak_score"] = float(f"{out['peak_score']:.9g}")
        if self.started_at is not None:
            for key in ("start", "end"):
                out[f"{key}_clock"] = _iso(self.started_at + out[f"{key}_time"])
        return out

    def _write_json(self) -> None:
        payload = {**self.meta, "fps": self.fps, "threshold": self.tracker.threshold,
                   "close_level": self.tracker.low, "settings": self.settings,
                   "started_at": None if self.started_at is None else _iso(self.started_at),
                   "dropped_short": self.tracker.dropped,
                   "events": [self.as_dict(e) for e in self.events]}
        write_bytes(self.json_path, (json.dumps(payload, indent=1, default=_plain) + "\n").encode())


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="milliseconds")


def _plain(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
