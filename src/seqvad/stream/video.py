"""The annotated video: H.264 in fragmented MP4, playable in any browser and readable after a crash.

Encoder: PyAV (``av`` on PyPI).  Its wheels bundle FFmpeg with libx264 for Linux, macOS and
Windows, so ``pip install`` is all it takes; OpenCV's own wheels write only mp4v (MPEG-4 part 2),
which browsers do not play, and imageio-ffmpeg would pipe frames to a separate ffmpeg process
(one more process to supervise and to lose when a run dies).

The MP4 is *fragmented* (``movflags=frag_keyframe+empty_moov+default_base_moof``): the header goes
first and every keyframe starts a self-contained fragment, so a file whose writer was killed
still plays up to its last complete fragment (a plain MP4 writes its index only at the end and
is unreadable without it).  A keyframe every ``KEYFRAME_SECONDS`` bounds what a crash can lose.

Where PyAV or its H.264 encoder is missing, OpenCV writes mp4v ``.mp4`` (or MJPG ``.avi``) as
before, with a warning.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from seqvad.errors import DataError

log = logging.getLogger(__name__)

KEYFRAME_SECONDS = 2.0  # a killed writer loses at most about this much video
FRAGMENTED = "frag_keyframe+empty_moov+default_base_moof"


class H264Writer:
    """BGR frames -> H.264 (yuv420p, libx264 ``veryfast``) in a fragmented MP4."""

    def __init__(self, path: Path, fps: float, width: int, height: int):
        import av

        self.path = Path(path)
        rate = Fraction(fps).limit_denominator(1001)
        self.container = av.open(str(path), mode="w", format="mp4", options={"movflags": FRAGMENTED, "flush_packets": "1"})
        try:
            stream = self.container.add_stream("libx264", rate=rate)
            # yuv420p (what browsers decode) needs even sizes: odd ones get one black pixel row/column
            self.width, self.height = width + width % 2, height + height % 2
            stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
            stream.codec_context.gop_size = max(1, int(round(KEYFRAME_SECONDS * fps)))
            stream.options = {"preset": "veryfast", "crf": "23"}
            self.stream = stream
        except Exception:
            self.container.close()
            raise

    def write(self, image: np.ndarray) -> None:
        import av

        if image.shape[:2] != (self.height, self.width):
            padded = np.zeros((self.height, self.width, 3), np.uint8)
            padded[:image.shape[0], :image.shape[1]] = image
            image = padded
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def release(self) -> None:
        try:
            for packet in self.stream.encode():  # flush the encoder's delayed frames
                self.container.mux(packet)
        finally:
            self.container.close()


def h264_available() -> bool:
    """PyAV importable with an H.264 encoder."""
    try:
        import av

        av.codec.Codec("libx264", "w")
        return True
    except Exception:
        return False


class VideoOut:
    """``annotated.mp4`` (H.264, :class:`H264Writer`), else OpenCV's mp4v ``.mp4`` or MJPG ``.avi``."""

    def __init__(self, out_dir: Path, fps: float):
        self.out_dir, self.fps = out_dir, fps
        self.writer = None
        self.path: Path | None = None
        self.codec: str | None = None

    def write(self, image: np.ndarray) -> None:
        if self.writer is None:
            self._open(image.shape[1], image.shape[0])
        self.writer.write(image)

    def _open(self, width: int, height: int) -> None:
        path = self.out_dir / "annotated.mp4"
        if h264_available():
            try:
                self.writer, self.path, self.codec = H264Writer(path, self.fps, width, height), path, "h264"
                return
            except Exception as exc:  # e.g. an FFmpeg build without libx264
                log.warning("H.264 video unavailable (%s); writing mp4v, which browsers do not play", exc)
                path.unlink(missing_ok=True)
        else:
            log.warning("PyAV with H.264 is not installed (pip install av); writing mp4v, which browsers do not play")
        for name, codec in (("annotated.mp4", "mp4v"), ("annotated.avi", "MJPG")):
            writer = cv2.VideoWriter(str(self.out_dir / name), cv2.VideoWriter_fourcc(*codec), self.fps,
                                     (width, height))
            if writer.isOpened():
                self.writer, self.path, self.codec = writer, self.out_dir / name, codec
                return
            writer.release()
            (self.out_dir / name).unlink(missing_ok=True)
        raise DataError(f"{self.out_dir}: can write neither H.264 nor mp4v .mp4 nor MJPG .avi video here")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            self.check()

    def check(self) -> None:
        """Neither writer reports every failed write: check that the file left can be opened."""
        size = self.path.stat().st_size if self.path is not None and self.path.is_file() else 0
        capture = cv2.VideoCapture(str(self.path)) if size else None
        readable = capture is not None and capture.isOpened()
        if capture is not None:
            capture.release()
        if not readable:
            raise DataError(f"{self.path}: the video was not written (disk full or not writable?)")
