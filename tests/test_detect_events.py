"""``seqvad detect`` events: events.csv / events.json with thumbnails, the time column, the
report's event list, ``--fail-on-event`` and ``--set scoring.events.*`` (made scene of test_detect)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from conftest import write_avi
from seqvad.api import Detector
from seqvad.cli import main
from seqvad.data.videos import Video
from test_detect import ANOMALY, TEST_FRAMES, TINY_CONFIG, scene

FPS = 25.0


@pytest.fixture(scope="module")
def model_and_clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("events")
    train = [Video.from_array(scene(40, seed), name=f"train{seed}") for seed in range(3)]
    model_file = Detector(TINY_CONFIG).fit(train, progress=False, workers=1).save(folder / "model.pt")
    clip = write_avi(folder / "clip.avi", scene(TEST_FRAMES, seed=7, anomaly=ANOMALY), fps=FPS)
    return model_file, clip


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def detected(model_and_clip, tmp_path_factory):
    model_file, clip = model_and_clip
    out = tmp_path_factory.mktemp("det") / "out"
    code = main(["detect", str(model_file), str(clip), "--out", str(out), "--quiet", "--fail-on-event"])
    return code, out


def test_events_overlap_the_anomaly_and_respect_the_minimum_duration(detected):
    code, out = detected
    payload = json.loads((out / "events.json").read_text())
    events = payload["events"]
    assert events, "the blatant block must make an event"
    assert code == 1  # --fail-on-event: something happened
    min_frames = int(np.ceil(payload["settings"]["min_duration"] * FPS))
    for event in events:
        assert event["end_frame"] - event["start_frame"] + 1 >= min_frames
        assert event["start_frame"] <= event["peak_frame"] <= event["end_frame"]
        assert event["start_time"] == pytest.approx(event["start_frame"] / FPS, abs=1e-3)  # the AVI's timestamps
        assert event["peak_score"] > payload["threshold"]
        assert (out / event["thumbnail"]).is_file() and len(event["box"]) == 4
    assert any(e["start_frame"] < ANOMALY[1] and e["end_frame"] >= ANOMALY[0] for e in events)
    rows = read_csv(out / "events.csv")
    assert [int(r["id"]) for r in rows] == [e["id"] for e in events]
    assert [int(r["start_frame"]) for r in rows] == [e["start_frame"] for e in events]


def test_scores_have_a_time_column_and_the_report_lists_the_events(detected):
    _, out = detected
    rows = read_csv(out / "scores.csv")
    times = np.array([float(r["time"]) for r in rows])
    np.testing.assert_allclose(times, np.arange(TEST_FRAMES) / FPS, atol=1e-3)
    report = (out / "report.html").read_text()
    assert 'id="event-1"' in report and "annotated.mp4#t=" in report and "data:image/jpeg;base64," in report


def test_no_event_exits_zero_and_event_settings_can_be_overridden(model_and_clip, tmp_path, capsys):
    model_file, clip = model_and_clip
    args = ["detect", str(model_file), str(clip), "--quiet", "--no-video", "--top-k", "0", "--fail-on-event"]
    assert main(args + ["--out", str(tmp_path / "a"), "--set", "scoring.events.min_duration=100"]) == 0
    payload = json.loads((tmp_path / "a" / "events.json").read_text())
    assert payload["events"] == [] and payload["settings"]["min_duration"] == 100 and payload["dropped_short"] >= 1
    assert "0 events" in capsys.readouterr().out
    assert main(args + ["--out", str(tmp_path / "b"), "--set", "model.width=3"]) == 2
    assert "only scoring.events.*" in capsys.readouterr().err
