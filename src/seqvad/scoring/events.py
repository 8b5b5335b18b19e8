"""Frame scores -> events: what a person watching a camera wants instead of per-frame flags.

An event opens on the first frame whose (smoothed) score is over the threshold and stays open
while the score stays at or above a lower *close level*; it closes once the score has been below
that level for ``min_gap`` seconds, and ends at the last frame at or above the close level.  Two
peaks with a short dip between them are thus one event (hysteresis), and an event shorter than
``min_duration`` seconds is dropped (a lone frame that just touches the threshold is noise for a
watcher).  Settings: ``scoring.events`` in the config, stored in the model file with the rest of
the scoring section.

:class:`EventTracker` works frame by frame (streaming detection: an event is reported as soon as
it closes, with memory for one open event); :func:`find_events` runs it over a whole sequence.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping

from seqvad.errors import ConfigError


@dataclass
class Event:
    """One anomalous episode: frames ``start``..``end`` (inclusive), times in seconds."""

    id: int
    start: int
    end: int
    start_time: float
    end_time: float
    peak_score: float
    peak_frame: int
    peak_time: float
    box: list[float] | None = None  # worst object's box at the peak frame (x1, y1, x2, y2)
    thumbnail: str | None = None  # file name of the peak frame's picture, relative to the outputs
    extra: dict[str, Any] = field(default_factory=dict, repr=False)  # the caller's data of the peak

    @property
    def frames(self) -> int:
        return self.end - self.start + 1

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("extra")
        out["start_frame"], out["end_frame"] = out.pop("start"), out.pop("end")  # as in events.csv
        out["duration"] = round(self.end_time - self.start_time, 6)
        return out


def event_settings(scoring: Mapping | None) -> dict[str, float]:
    """``scoring.events`` over its defaults, checked."""
    from seqvad.config import DEFAULTS

    given = dict((scoring or {}).get("events") or {})
    out = {**DEFAULTS["scoring"]["events"], **given}
    for key, value in out.items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"scoring.events.{key}: expected a number, got {value!r}") from None
        if not math.isfinite(out[key]) or out[key] < 0:
            raise ConfigError(f"scoring.events.{key}: expected a number >= 0, got {value!r}")
    if out["close_ratio"] > 1:
        raise ConfigError(f"scoring.events.close_ratio: expected a number in [0, 1], got {out['close_ratio']!r}")
    return out


def close_level(threshold: float, ratio: float) -> float:
    """The level an open event must stay at or above: ``ratio`` of the way from 0 to the threshold
    for a positive threshold, the same distance below it for a negative one (minus PSNR)."""
    return threshold - (1.0 - ratio) * abs(threshold)


class EventTracker:
    """Frame scores in (:meth:`push`), finished events out.

    ``fps`` turns the settings' seconds into frames; ``push`` takes the frame's index, time
    (seconds) and score, plus anything to keep for the peak frame (``peak``: e.g. its box and
    picture), returned on the event as ``extra``.
    """

    def __init__(self, threshold: float, settings: Mapping | None = None, fps: float = 25.0):
        settings = event_settings({"events": settings or {}})
        self.threshold = float(threshold)
        self.low = close_level(self.threshold, settings["close_ratio"])
        self.gap_frames = max(1, math.ceil(settings["min_gap"] * fps - 1e-9))
        self.min_frames = max(1, math.ceil(settings["min_duration"] * fps - 1e-9))
        self.fps = fps
        self._open: Event | None = None
        self._below = 0  # frames in a row under the close level while an event is open
        self._last_active_time = 0.0
        self._next_id = 1
        self.dropped = 0  # events shorter than min_duration

    @property
    def open_event(self) -> Event | None:
        return self._open

    def push(self, index: int, time: float, score: float, peak: Mapping[str, Any] | None = None) -> list[Event]:
        score = float(score)
        if self._open is None:
            if score > self.threshold:
                self._open = Event(self._next_id, index, index, time, time, score, index, time, extra=dict(peak or {}))
                self._below = 0
            return []
        event = self._open
        if score > event.peak_score:
            event.peak_score, event.peak_frame, event.peak_time = score, index, time
            event.extra = dict(peak or {})
        if score >= self.low:
            event.end, event.end_time, self._below = index, time, 0
            return []
        self._below += 1
        return self._close() if self._below >= self.gap_frames else []

    def finish(self) -> list[Event]:
        """End of stream: close the open event (at its last frame at or above the close level)."""
        return self._close() if self._open is not None else []

    def _close(self) -> list[Event]:
        event, self._open = self._open, None
        if event.frames < self.min_frames:
            self.dropped += 1
            return []
        event.id = self._next_id
        self._next_id += 1
        # an event's end time covers its last frame
        event.end_time = event.end_time + 1.0 / self.fps if self.fps else event.end_time
        return [event]


def find_events(scores: Iterable[float], threshold: float, settings: Mapping | None = None, fps: float = 25.0,
                times: Iterable[float] | None = None) -> list[Event]:
    """Events of a whole score sequence (times default to ``frame / fps``)."""
    scores = list(scores)
    times = list(times) if times is not None else [i / fps for i in range(len(scores))]
    tracker = EventTracker(threshold, settings, fps)
    events: list[Event] = []
    for index, (time, score) in enumerate(zip(times, scores)):
        events += tracker.push(index, time, score)
    return events + tracker.finish()
