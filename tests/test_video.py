"""The annotated video: H.264 in fragmented MP4 (PyAV), decodable by OpenCV, readable after a kill."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from seqvad.stream import video as video_module
from seqvad.stream.video import VideoOut, h264_available

pytestmark = pytest.mark.skipif(not h264_available(), reason="PyAV with libx264 is not installed (pip install av)")


def frames(n: int, h: int = 47, w: int = 63) -> np.ndarray:
    out = np.zeros((n, h, w, 3), np.uint8)
    for i in range(n):
        out[i, :, : w // 2] = (40 + 3 * i) % 200  # changes every frame
        cv2.putText(out[i], str(i), (w // 2, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
    return out


def codec_tag(path) -> str:
    capture = cv2.VideoCapture(str(path))
    fourcc = int(capture.get(cv2.CAP_PROP_FOURCC))
    capture.release()
    return fourcc.to_bytes(4, "little").decode("ascii", "replace").lower()


def decoded(path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        out.append(frame)
    capture.release()
    return out


def test_annotated_video_is_h264_and_decodes_with_opencv(tmp_path):
    images = frames(30)
    writer = VideoOut(tmp_path, 10.0)
    for image in images:
        writer.write(image)
    writer.close()
    assert writer.path == tmp_path / "annotated.mp4" and writer.codec == "h264"
    assert codec_tag(writer.path) in ("h264", "avc1")
    got = decoded(writer.path)
    assert len(got) == 30 and got[0].shape == (48, 64, 3)  # odd sizes padded to even for yuv420p
    # lossy, but the frames are the frames written, in order
    errors = [np.abs(g[:47, :63].astype(int) - i.astype(int)).mean() for g, i in zip(got, images)]
    assert max(errors) < 6


def test_a_killed_writer_leaves_a_playable_file(tmp_path):
    """Fragmented MP4: the fragments completed before the process died still decode."""
    script = textwrap.dedent(f"""
        import os
        import numpy as np
        from pathlib import Path
        from seqvad.stream.video import VideoOut
        images = np.load({str(tmp_path / "frames.npy")!r})
        writer = VideoOut(Path({str(tmp_path)!r}), 10.0)
        for image in images:
            writer.write(image)
        os._exit(0)  # no close: as if the process was killed
    """)
    np.save(tmp_path / "frames.npy", frames(70))
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    got = decoded(tmp_path / "annotated.mp4")
    assert codec_tag(tmp_path / "annotated.mp4") in ("h264", "avc1")
    assert len(got) >= 20  # keyframe every 2 s = 20 frames: at least the first fragment survives


def test_without_h264_the_video_falls_back_to_opencv(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(video_module, "h264_available", lambda: False)
    writer = VideoOut(tmp_path, 10.0)
    for image in frames(5):
        writer.write(image)
    writer.close()
    assert writer.codec in ("mp4v", "MJPG") and len(decoded(writer.path)) == 5
    assert "browsers do not play" in caplog.text


def test_the_video_plays_and_seeks_in_chromium(tmp_path):
    """What report.html's event links do (annotated.mp4#t=SECONDS): the browser knows the whole
    duration of the fragmented file and starts at the linked time (skips without Chromium)."""
    import cdp

    if not cdp.available():
        pytest.skip("chromium is not installed (apt-get install -y chromium); the browser check needs it")
    writer = VideoOut(tmp_path, 10.0)
    for image in frames(100):  # 10 s
        writer.write(image)
    writer.close()
    (tmp_path / "page.html").write_text('<video id="v" src="annotated.mp4#t=6.5" muted preload="auto"></video>')
    browser = cdp.Browser(tmp_path / "profile")
    try:
        if not browser.evaluate("document.createElement('video').canPlayType('video/mp4; codecs=\"avc1.64001e\"')"):
            pytest.skip("this Chromium build plays no H.264")
        browser.open((tmp_path / "page.html").as_uri())
        ready = browser.wait_for("document.getElementById('v').readyState >= 2", timeout=20)
        duration, start = browser.evaluate("[document.getElementById('v').duration, document.getElementById('v').currentTime]")
    finally:
        browser.close()
    assert ready and duration == pytest.approx(10.0, abs=0.2) and start == pytest.approx(6.5, abs=0.15)
