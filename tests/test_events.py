"""Frame scores -> events (seqvad.scoring.events) on made score sequences."""

from __future__ import annotations

import pytest

from seqvad.config import DEFAULTS
from seqvad.errors import ConfigError
from seqvad.scoring.events import EventTracker, close_level, event_settings, find_events

FPS = 10.0  # 1 frame = 0.1 s
SETTINGS = {"close_ratio": 0.5, "min_gap": 0.3, "min_duration": 0.3}  # gap 3 frames, at least 3 frames


def series(*runs: tuple[float, int]) -> list[float]:
    """(value, frames) runs joined: series((0, 5), (2, 4)) = five 0s then four 2s."""
    return [value for value, count in runs for _ in range(count)]


def spans(events):
    return [(e.start, e.end) for e in events]


def test_one_event_with_its_peak_and_times():
    scores = series((0.1, 5), (1.5, 2), (3.0, 1), (1.2, 2), (0.1, 10))
    (event,) = find_events(scores, 1.0, SETTINGS, FPS)
    assert (event.id, event.start, event.end) == (1, 5, 9)
    assert (event.peak_frame, event.peak_score) == (7, 3.0)
    assert event.start_time == pytest.approx(0.5) and event.end_time == pytest.approx(1.0)  # end covers frame 9
    assert event.as_dict()["duration"] == pytest.approx(0.5)


def test_hysteresis_keeps_an_event_open_above_the_close_level():
    # dips to 0.6 (under the threshold 1.0, over the close level 0.5): one event
    scores = series((0, 3), (2, 3), (0.6, 6), (2, 3), (0, 10))
    assert spans(find_events(scores, 1.0, SETTINGS, FPS)) == [(3, 14)]


def test_a_short_dip_under_the_close_level_merges_two_peaks():
    scores = series((0, 3), (2, 4), (0, 2), (2, 4), (0, 10))  # dip of 2 frames < gap of 3
    assert spans(find_events(scores, 1.0, SETTINGS, FPS)) == [(3, 12)]


def test_a_long_dip_splits_the_events():
    scores = series((0, 3), (2, 4), (0, 3), (2, 4), (0, 10))  # dip of 3 frames = gap
    events = find_events(scores, 1.0, SETTINGS, FPS)
    assert spans(events) == [(3, 6), (10, 13)]
    assert [e.id for e in events] == [1, 2]


def test_events_shorter_than_the_minimum_duration_are_dropped():
    scores = series((0, 3), (2, 1), (0, 10), (2, 2), (0, 10), (2, 3), (0, 5))
    tracker = EventTracker(1.0, SETTINGS, FPS)
    events = [e for i, s in enumerate(scores) for e in tracker.push(i, i / FPS, s)] + tracker.finish()
    assert spans(events) == [(26, 28)] and events[0].id == 1
    assert tracker.dropped == 2
    assert all(e.frames >= 3 for e in events)


def test_an_event_open_at_the_end_is_closed_at_its_last_active_frame():
    scores = series((0, 3), (2, 5), (0.2, 2))
    assert spans(find_events(scores, 1.0, SETTINGS, FPS)) == [(3, 7)]


def test_equal_to_the_threshold_does_not_open_and_nothing_happens_on_quiet_scores():
    assert find_events([1.0] * 20, 1.0, SETTINGS, FPS) == []
    assert find_events([], 1.0, SETTINGS, FPS) == []


def test_negative_threshold_close_level_lies_below_it():
    assert close_level(-20.0, 0.8) == pytest.approx(-24.0)
    assert close_level(2.0, 0.8) == pytest.approx(1.6)
    scores = series((-30, 3), (-10, 4), (-22, 3), (-30, 10))  # -22 is over the close level -24
    assert spans(find_events(scores, -20.0, {"close_ratio": 0.8, "min_gap": 0.3, "min_duration": 0.0}, FPS)) == [(3, 9)]


def test_peak_data_follows_the_peak_and_custom_times_are_used():
    tracker = EventTracker(1.0, SETTINGS, FPS)
    for i, s in enumerate([0, 2, 5, 3, 0, 0, 0]):
        out = tracker.push(i, 100.0 + i, s, {"box": [i, i, i + 1, i + 1]})
    (event,) = out
    assert event.extra["box"] == [2, 2, 3, 3] and event.peak_time == 102.0 and event.start_time == 101.0


def test_settings_default_from_the_config_and_are_checked():
    assert event_settings({}) == {k: float(v) for k, v in DEFAULTS["scoring"]["events"].items()}
    assert event_settings({"events": {"min_gap": 2}})["min_gap"] == 2.0
    with pytest.raises(ConfigError, match="scoring.events.min_gap"):
        event_settings({"events": {"min_gap": "soon"}})
    with pytest.raises(ConfigError, match="close_ratio"):
        event_settings({"events": {"close_ratio": 1.5}})
