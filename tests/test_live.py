"""The live view (``seqvad detect --serve``): HTTP routes, frames dropped at a live input when processing
is slower than the camera, and the page in headless Chromium on a generated video with an injected
anomaly (skips without Chromium)."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import cdp
from seqvad.api import Detector
from seqvad.cli import main
from seqvad.data.videos import Video
from seqvad.errors import ConfigError
from seqvad.stream import run_detection
from seqvad.stream.serve import LiveServer, LiveState, parse_bind
from seqvad.stream.sources import LatestFrames, Source
from test_detect import TINY_CONFIG, scene

ANOMALY = (40, 70)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("live")
    train = [Video.from_array(scene(40, seed), name=f"train{seed}") for seed in range(3)]
    return Detector(TINY_CONFIG).fit(train, progress=False, workers=1).save(folder / "model.pt")


def camera(frames: np.ndarray, fps: float) -> Source:
    """A live source made of ``frames`` that arrive at ``fps``, like a camera."""
    def arrive():
        for frame in frames:
            time.sleep(1.0 / fps)
            yield frame

    return Source("camera", arrive(), fps, started_at=time.time())


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def test_parse_bind():
    assert parse_bind("8000") == ("127.0.0.1", 8000)
    assert parse_bind("0.0.0.0:8080") == ("0.0.0.0", 8080)
    with pytest.raises(ConfigError, match=r"\[HOST:\]PORT"):
        parse_bind("localhost:http")


def test_slow_processing_drops_frames_at_the_input():
    frames = [np.full((4, 4, 1), i, np.uint8) for i in range(60)]
    source = Source("cam", iter(frames), 100.0, started_at=time.time(), clock=None)
    latest = LatestFrames(source, capacity=4)
    seen = []
    for frame in latest:
        seen.append(int(frame[0, 0, 0]))
        time.sleep(0.01)  # processing far slower than the reader
    latest.close()
    assert latest.dropped > 0 and len(seen) + latest.dropped == 60
    assert seen == sorted(seen) and seen[-1] == 59  # in order, and the newest frame is never the one dropped


def test_routes_serve_state_stream_and_thumbnails():
    state = LiveState("cam", 1.0, 25.0)
    server = LiveServer(state, "127.0.0.1", 0)
    try:
        for i in range(5):
            state.frame(i, i / 25, 0.5, np.full((24, 32, 3), 40 * i, np.uint8))
        state.event({"id": 1, "start_frame": 1, "end_frame": 3}, b"\xff\xd8jpeg")
        snapshot = json.loads(get(server.url + "state.json?since=2"))
        assert snapshot["frames"] == 5 and [p[0] for p in snapshot["points"]] == [2, 3, 4]
        assert snapshot["events"][0]["id"] == 1 and snapshot["threshold"] == 1.0
        assert get(server.url + "events/1.jpg") == b"\xff\xd8jpeg"
        assert b"/stream.mjpg" in get(server.url)
        with urllib.request.urlopen(server.url + "stream.mjpg", timeout=10) as stream:
            assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace")
            assert stream.read(200).startswith(b"--frame\r\nContent-Type: image/jpeg")
        with pytest.raises(urllib.error.HTTPError):
            get(server.url + "events/9.jpg")
    finally:
        state.finish("done")
        server.stop()


def test_detect_serve_prints_the_address_and_finishes(model_file, tmp_path, capsys):
    from conftest import write_avi

    clip = write_avi(tmp_path / "clip.avi", scene(30, 5))
    assert main(["detect", str(model_file), str(clip), "--out", str(tmp_path / "o"), "--quiet", "--no-video",
                 "--serve", "127.0.0.1:0"]) == 0
    assert "live view: http://127.0.0.1:" in capsys.readouterr().out


@pytest.mark.slow
def test_live_page_in_headless_chromium(model_file, tmp_path):
    """Loopback only: the page loads, its picture changes, the event of the injected anomaly appears,
    no console errors.  SEQVAD_LIVE_SCREENSHOT=PATH also keeps the screenshot there."""
    if not cdp.available():
        pytest.skip("chromium is not installed (apt-get install -y chromium); the live page's browser check needs it")
    model = Detector.load(model_file)
    frames = scene(150, seed=7, anomaly=ANOMALY)
    state = LiveState("camera", model.threshold, 25.0)
    server = LiveServer(state, "127.0.0.1", 0)
    result = {}
    worker = threading.Thread(target=lambda: result.update(run=run_detection(
        model, camera(frames, 25.0), tmp_path / "out", write_video=False, top_k=0, live=state)))
    browser = cdp.Browser(tmp_path / "profile")
    try:
        worker.start()
        browser.open(server.url)
        changed = browser.wait_for("Number(document.body.dataset.frameChanges) >= 3", timeout=30)
        listed = browser.wait_for("document.querySelectorAll('#events li').length", timeout=30)
        worker.join(timeout=60)
        finished = browser.wait_for("document.getElementById('status').textContent.startsWith('finished')", 15)
        shot = browser.screenshot(tmp_path / "live.png")
        if os.environ.get("SEQVAD_LIVE_SCREENSHOT"):
            Path(os.environ["SEQVAD_LIVE_SCREENSHOT"]).write_bytes(shot.read_bytes())
        shown = browser.evaluate("[...document.querySelectorAll('#events li')].map(li => li.id)")
        errors = list(browser.errors)
    finally:
        browser.close()
        server.stop()
    assert changed and listed and finished
    run = result["run"]
    assert run.frames == 150 and run.events
    assert sorted(shown) == sorted(f"event-{e.id}" for e in run.events)
    assert any(e.start < ANOMALY[1] and e.end >= ANOMALY[0] for e in run.events)
    # a live source's times are seconds since its first frame, from the wall clock (25 frames/s here)
    assert all(abs(e.start_time - e.start / 25.0) < 2.0 for e in run.events)
    assert errors == [], errors
