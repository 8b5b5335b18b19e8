"""The live view of ``seqvad detect INPUT --serve [HOST:]PORT``: a local web page while detection runs.

Standard library only (``http.server`` in a thread): the page (``seqvad/assets/live.html``), the
annotated stream as MJPEG (``/stream.mjpg``: every browser shows it in an ``<img>``), the scores,
events and rates as JSON (``/state.json?since=N``, polled by the page) and each event's picture
(``/events/ID.jpg``).  It binds to 127.0.0.1 unless told otherwise: the page shows the camera to
whoever can reach it.

:class:`LiveState` is what the detection loop publishes into (from its own thread); the server's
threads only read it, under one lock.  JPEG encoding of the stream happens in the server threads,
at most ``STREAM_FPS`` times a second and only while someone watches.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlparse

import cv2
import numpy as np

from seqvad.errors import ConfigError

log = logging.getLogger(__name__)

STREAM_FPS = 15.0  # MJPEG frames per second sent to a viewer, at most
MAX_POINTS = 5000  # score points per /state.json answer (the page asks again for the rest)
DEFAULT_HOST = "127.0.0.1"


def parse_bind(text: str) -> tuple[str, int]:
    """``"8000"`` -> (127.0.0.1, 8000); ``"0.0.0.0:8000"`` -> (0.0.0.0, 8000)."""
    host, _, port = str(text).rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise ConfigError(f"--serve {text}: expected [HOST:]PORT with a port 0-65535, e.g. 8000 or 127.0.0.1:8000")
    return host.strip("[]") or DEFAULT_HOST, number


class LiveState:
    """What the page shows: latest annotated frame, scores, events, rate, dropped frames."""

    def __init__(self, name: str, threshold: float | None, fps: float):
        self.name, self.threshold, self.fps = name, threshold, fps
        self._lock = threading.Condition()
        self._image: np.ndarray | None = None
        self._seq = 0  # frames published
        self._jpeg: tuple[int, bytes] = (-1, b"")
        self._points: list[tuple[int, float, float]] = []  # (frame, time, score)
        self._events: list[dict] = []
        self._thumbnails: dict[int, bytes] = {}
        self._arrivals: deque[float] = deque(maxlen=50)  # for the processing rate
        self.dropped = 0
        self.finished: str | None = None  # why the stream ended, once it has

    # -- the detection loop's side --------------------------------------------------------------
    def frame(self, index: int, seconds: float, score: float, image: np.ndarray | None) -> None:
        with self._lock:
            self._points.append((int(index), round(float(seconds), 4), float(score)))
            self._arrivals.append(time.perf_counter())
            if image is not None:
                self._image = image
                self._seq += 1
                self._lock.notify_all()

    def event(self, event: dict, jpeg: bytes | None) -> None:
        with self._lock:
            self._events.append(dict(event))
            if jpeg:
                self._thumbnails[int(event["id"])] = jpeg

    def finish(self, reason: str) -> None:
        with self._lock:
            self.finished = reason
            self._lock.notify_all()

    # -- the server's side ----------------------------------------------------------------------
    def rate(self) -> float:
        times = self._arrivals
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0

    def snapshot(self, since: int = 0) -> dict:
        with self._lock:
            points = self._points[since:since + MAX_POINTS]
            return {"name": self.name, "threshold": self.threshold, "fps": self.fps, "frames": len(self._points),
                    "next": since + len(points), "points": points, "events": list(self._events),
                    "rate": round(self.rate(), 2), "dropped": self.dropped, "finished": self.finished}

    def thumbnail(self, event_id: int) -> bytes | None:
        with self._lock:
            return self._thumbnails.get(event_id)

    def wait_jpeg(self, after: int, timeout: float = 1.0) -> tuple[int, bytes]:
        """The newest frame as JPEG once it is newer than ``after`` (or the current one on timeout)."""
        with self._lock:
            self._lock.wait_for(lambda: self._seq > after or self.finished is not None, timeout)
            seq, image = self._seq, self._image
            if self._jpeg[0] == seq or image is None:
                return self._jpeg if image is not None else (seq, b"")
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
        jpeg = encoded.tobytes() if ok else b""
        with self._lock:
            if seq > self._jpeg[0]:
                self._jpeg = (seq, jpeg)
        return seq, jpeg


def _page() -> bytes:
    return resources.files("seqvad").joinpath("assets/live.html").read_bytes()


class _Handler(BaseHTTPRequestHandler):
    state: LiveState  # set on the subclass made by LiveServer
    server_version = "seqvad-live"

    def do_GET(self) -> None:  # noqa: N802 (the http.server name)
        url = urlparse(self.path)
        try:
            if url.path in ("/", "/index.html"):
                self._send(200, "text/html; charset=utf-8", _page())
            elif url.path == "/state.json":
                since = int((parse_qs(url.query).get("since") or ["0"])[0])
                self._send(200, "application/json", json.dumps(self.state.snapshot(max(since, 0))).encode())
            elif url.path == "/stream.mjpg":
                self._stream()
            elif url.path.startswith("/events/") and url.path.endswith(".jpg"):
                picture = self.state.thumbnail(int(url.path[len("/events/"):-len(".jpg")]))
                self._send(200, "image/jpeg", picture) if picture else self._send(404, "text/plain", b"no such event")
            elif url.path == "/favicon.ico":
                self._send(204, "image/x-icon", b"")
            else:
                self._send(404, "text/plain", b"not found")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the viewer closed the page
        except ValueError:
            self._send(400, "text/plain", b"bad request")

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        seq = -1
        while not self.server.stopping:
            started = time.perf_counter()
            newer, jpeg = self.state.wait_jpeg(seq)
            if newer != seq and jpeg:
                seq = newer
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                 + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                self.wfile.flush()
            elif self.state.finished is not None:
                return
            time.sleep(max(0.0, 1.0 / STREAM_FPS - (time.perf_counter() - started)))

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the http.server signature)
        log.debug("live view: " + format, *args)


class LiveServer:
    """The page's HTTP server in a daemon thread; ``url`` once started, ``stop()`` at the end."""

    def __init__(self, state: LiveState, host: str = DEFAULT_HOST, port: int = 0):
        handler = type("LiveHandler", (_Handler,), {"state": state})
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise ConfigError(f"--serve {host}:{port}: cannot listen there ({exc.strerror or exc})") from None
        self.httpd.daemon_threads = True
        self.httpd.stopping = False
        self.state = state
        host_name, port_number = self.httpd.server_address[:2]
        self.url = f"http://{'127.0.0.1' if host_name in ('0.0.0.0', '') else host_name}:{port_number}/"
        if host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("live view on %s: anyone who can reach this machine can watch the camera", host)
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="live-view", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.stopping = True
        self.httpd.shutdown()
        self.httpd.server_close()
