"""``report.html`` of ``seqvad detect`` (one self-contained file), and the top moments it shows.

The score timeline is inline SVG and every picture is a base64 ``data:`` URI, so the file can be
mailed or archived alone: it loads nothing from the network or the disk and runs no script.

Each top moment shows the annotated frame, then the worst object's middle crop X, the model's
bidirectional prediction X^ and the difference map |X^ - X| (the paper's Fig. 3 idea): bright where
the object did something the model did not expect.  All difference maps share one colour scale,
so their brightness can be compared across moments.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from seqvad.atomic import write_bytes
from seqvad.stream.annotate import thumbnail
from seqvad.stream.scorer import ScoredFrame

MAX_POINTS = 1200  # timeline columns; longer streams keep each bucket's maximum (peaks survive)
CROP_PIXELS = 128  # 32x32 crops are shown enlarged, without smoothing


# -- the top moments, chosen while streaming ----------------------------------------------------

@dataclass(eq=False)  # compared by identity: fields hold arrays
class Moment:
    """A candidate for the report's top anomalous moments."""

    index: int
    score: float
    thumbnail: np.ndarray  # annotated frame, BGR
    box: np.ndarray | None = None  # the worst object's box
    cube: np.ndarray | None = None  # its cube, for the prediction-difference map


class MomentKeeper:
    """The ``k`` highest smoothed scores at least ``gap`` frames apart, chosen while streaming.

    The stream is cut into bins of ``gap`` frames and each bin's best frame is kept (with its
    thumbnail and worst cube); at most ``pool`` bins survive, the lowest-scoring are dropped.
    :attr:`moments` then picks greedily from them: the best, then the best at least ``gap``
    frames from those picked, and so on.  A score that rises for seconds thus gives one moment
    per second of the rise rather than one, and memory stays at ``pool`` thumbnails.
    """

    def __init__(self, k: int, gap: int, thumbnail_width: int = 480, pool: int | None = None):
        self.k, self.gap, self.thumbnail_width = k, max(1, gap), thumbnail_width
        self.pool_size = pool or 4 * k
        self._pool: list[Moment] = []
        self._current: Moment | None = None  # best frame of the open bin

    def offer(self, item: ScoredFrame, annotated: np.ndarray) -> None:
        if self.k <= 0 or len(item.object_scores) == 0:
            return  # a moment shows its worst object's difference map: frames without objects have none
        if self._current is not None and self._current.index // self.gap != item.index // self.gap:
            self._commit()
        if self._current is None or item.score > self._current.score:
            worst = int(np.argmax(item.object_scores))
            box, cube = item.boxes[worst].copy(), item.worst_cube
            self._current = Moment(item.index, item.score, self._thumbnail(annotated, box), box, cube)

    def _commit(self) -> None:
        self._pool.append(self._current)
        self._current = None
        if len(self._pool) > self.pool_size:
            self._pool.remove(min(self._pool, key=lambda m: m.score))

    @property
    def moments(self) -> list[Moment]:
        """Up to ``k`` moments, highest score first, pairwise at least ``gap`` frames apart."""
        candidates = self._pool + ([self._current] if self._current is not None else [])
        picked: list[Moment] = []
        for moment in sorted(candidates, key=lambda m: -m.score):
            if len(picked) < self.k and all(abs(moment.index - p.index) >= self.gap for p in picked):
                picked.append(moment)
        return picked

    def _thumbnail(self, image: np.ndarray, worst_box: np.ndarray | None) -> np.ndarray:
        return thumbnail(image, worst_box, self.thumbnail_width)


def difference_maps(model, moments: Sequence[Moment]) -> list[dict | None]:
    """Crop X, prediction X^ and |X^ - X| of each moment's worst object (values on [-1, 1])."""
    with_cubes = [m for m in moments if m.cube is not None]
    if not with_cubes:
        return [None] * len(moments)
    target, prediction = model.predict_middle(np.stack([m.cube for m in with_cubes]))
    maps = iter({"crop": t, "prediction": p, "difference": np.abs(p - t)} for t, p in zip(target, prediction))
    return [next(maps) if m.cube is not None else None for m in moments]


# -- pictures ------------------------------------------------------------------------------------

def image_data_uri(image: np.ndarray, kind: str = "png") -> str:
    ok, encoded = cv2.imencode("." + kind, image, [cv2.IMWRITE_JPEG_QUALITY, 85] if kind == "jpg" else [])
    if not ok:
        raise ValueError(f"cannot encode a {image.shape} image as {kind}")
    mime = "jpeg" if kind == "jpg" else kind
    return f"data:image/{mime};base64,{base64.b64encode(encoded.tobytes()).decode('ascii')}"


def crop_image(values: np.ndarray) -> np.ndarray:
    """A ``(C, S, S)`` crop on [-1, 1] as an enlarged BGR image."""
    from seqvad.scoring.errors import from_unit_range

    image = from_unit_range(values)
    image = image.transpose(1, 2, 0)
    image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.shape[2] == 1 else image
    return cv2.resize(image, (CROP_PIXELS, CROP_PIXELS), interpolation=cv2.INTER_NEAREST)


def heat_map(difference: np.ndarray, scale: float) -> np.ndarray:
    """``|X^ - X|`` (``(C, S, S)``, averaged over channels) as an enlarged inferno heat map."""
    mean = np.asarray(difference, np.float32).mean(axis=0)
    level = np.clip(mean / max(scale, 1e-12) * 255.0, 0, 255).astype(np.uint8)
    coloured = cv2.applyColorMap(level, cv2.COLORMAP_INFERNO)
    return cv2.resize(coloured, (CROP_PIXELS, CROP_PIXELS), interpolation=cv2.INTER_NEAREST)


# -- timeline --------------------------------------------------------------------------------------

def bucket_max(values: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``columns`` points: the maximum of each bucket, at the bucket's first frame."""
    values = np.asarray(values, np.float64)
    if len(values) <= columns:
        return np.arange(len(values)), values
    edges = np.linspace(0, len(values), columns + 1).astype(int)
    return edges[:-1], np.maximum.reduceat(values, edges[:-1])


def alarm_segments(scores: np.ndarray, threshold: float | None) -> list[tuple[int, int]]:
    """``(first, last)`` frame of each run of frames over the threshold."""
    if threshold is None or len(scores) == 0:
        return []
    over = np.concatenate([[False], np.asarray(scores) > threshold, [False]])
    change = np.flatnonzero(np.diff(over.astype(np.int8)))
    return [(int(a), int(b) - 1) for a, b in zip(change[::2], change[1::2])]


def timeline_svg(raw: np.ndarray, scores: np.ndarray, threshold: float | None, fps: float,
                 marks: Sequence[int] = (), width: int = 1000, height: int = 240) -> str:
    """Smoothed score (line), raw score (faint), threshold (dashed), alarms (shaded), marks (numbered)."""
    n = len(scores)
    left, right, top, bottom = 56, 24, 12, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [0.0, *([threshold] if threshold is not None else [])]
    values += [float(np.min(s)) for s in (raw, scores) if len(s)] + [float(np.max(s)) for s in (raw, scores) if len(s)]
    y_min = min(values)  # below 0 only for minus-PSNR scores
    y_max = max(values) + 0.1 * (max(values) - y_min) or 1.0

    def x_of(frame: float) -> float:
        return left + plot_w * (frame / max(n - 1, 1))

    def y_of(value: float) -> float:
        return top + plot_h * (1.0 - (min(value, y_max) - y_min) / (y_max - y_min))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
             f'role="img" aria-label="anomaly score per frame">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#bbb"/>']
    for first, last in alarm_segments(scores, threshold):
        x1, x2 = x_of(first), x_of(last)
        parts.append(f'<rect x="{x1:.1f}" y="{top}" width="{max(x2 - x1, 1.0):.1f}" height="{plot_h}" '
                     f'fill="#e53935" fill-opacity="0.15"/>')
    for series, style in ((raw, 'stroke="#9e9e9e" stroke-width="0.8"'), (scores, 'stroke="#1565c0" stroke-width="1.6"')):
        frames, values = bucket_max(series, MAX_POINTS)
        if len(values):
            points = " ".join(f"{x_of(f):.1f},{y_of(v):.1f}" for f, v in zip(frames, values))
            parts.append(f'<polyline fill="none" {style} points="{points}"/>')
    if threshold is not None:
        y = y_of(threshold)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e53935" '
                     f'stroke-dasharray="6 4" stroke-width="1.2"/>')
        parts.append(f'<text x="{left + plot_w - 4}" y="{y - 4:.1f}" text-anchor="end" font-size="11" '
                     f'fill="#e53935">threshold {threshold:.4g}</text>')
    for number, frame in enumerate(marks, start=1):
        x, y = x_of(frame), y_of(float(scores[frame])) if 0 <= frame < n else top
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="8" fill="#ff8f00" fill-opacity="0.9"/>'
                     f'<text x="{x:.1f}" y="{y + 4:.1f}" text-anchor="middle" font-size="11" fill="#fff">{number}</text>')
    parts += _axes(n, fps, y_min, y_max, left, top, plot_h, x_of, y_of)
    parts.append("</svg>")
    return "\n".join(parts)


def _axes(n, fps, y_min, y_max, left, top, plot_h, x_of, y_of) -> list[str]:
    out = []
    for value in np.linspace(y_min, y_max, 5):
        y = y_of(value)
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#555">{value:.3g}</text>')
    seconds = n / fps if fps else n
    step = _nice_step(seconds / 8) if seconds else 1
    for second in np.arange(0, seconds + 1e-9, step):
        x = x_of(second * fps)
        out.append(f'<text x="{x:.1f}" y="{top + plot_h + 18}" text-anchor="middle" font-size="11" '
                   f'fill="#555">{second:g}s</text>')
    return out


def _nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, at least ``raw``."""
    if raw <= 0:
        return 1.0
    power = 10 ** np.floor(np.log10(raw))
    return float(next(m * power for m in (1, 2, 5, 10) if m * power >= raw))


# -- page ----------------------------------------------------------------------------------------

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px;margin-bottom:4px} h2{font-size:18px;margin-top:28px}
table.info td{padding:2px 12px 2px 0;vertical-align:top} .muted{color:#666;font-size:13px}
.moment{border:1px solid #ddd;border-radius:6px;padding:12px;margin:14px 0;display:flex;gap:16px;flex-wrap:wrap}
.moment figure{margin:0;text-align:center} .moment figcaption{font-size:12px;color:#555}
.crops{display:flex;gap:8px;align-items:flex-start} .crops img{width:128px;height:128px;image-rendering:pixelated}
.event{border:1px solid #ddd;border-radius:6px;padding:10px;margin:10px 0;display:flex;gap:14px;flex-wrap:wrap}
.event h3{margin:0 0 6px 0;font-size:16px}
.note{background:#fff3e0;border-left:4px solid #ff8f00;padding:8px 12px}
"""


def write_report(path: str | Path, info: dict, raw: np.ndarray, scores: np.ndarray, threshold: float | None,
                 moments: Sequence, maps: Sequence[dict | None], events=None) -> Path:
    """Write the report atomically.  ``moments`` have ``index``, ``score``, ``thumbnail`` (BGR);
    ``maps[i]`` holds ``crop``, ``prediction``, ``difference`` (``(C, S, S)`` on [-1, 1]) or is None.
    ``events``: the run's :class:`seqvad.stream.events.EventLog` (listed with thumbnails, each
    linked to its time in ``info['video']`` when there is one)."""
    path = Path(path)
    fps = float(info.get("fps") or 25.0)
    body = [f"<h1>seqvad detect: {_e(info.get('input', ''))}</h1>", _summary_table(info, scores, threshold, fps)]
    if info.get("stopped"):
        body.append(f'<p class="note">{_e(info["stopped"])}. The outputs hold every frame scored until then.</p>')
    body.append("<h2>Anomaly score per frame</h2>")
    body.append('<p class="muted">Blue: median-filtered score (what the alarm uses); grey: raw score (worst '
                "object per frame); dashed red: threshold; shaded: frames over it; numbers: the moments below.</p>")
    body.append(timeline_svg(raw, scores, threshold, fps, [m.index for m in moments]))
    body += _segments_list(scores, threshold, fps) if events is None else _events_list(events, info.get("video"), fps)
    body.append(f"<h2>Top {len(moments)} anomalous moments</h2>")
    if not moments:
        body.append("<p>No objects were detected, so there is no moment to show.</p>")
    scale = max((float(m["difference"].mean(axis=0).max()) for m in maps if m is not None), default=1.0)
    for number, (moment, images) in enumerate(zip(moments, maps), start=1):
        body.append(_moment_block(number, moment, images, scale, fps, threshold))
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>seqvad detect: {_e(info.get('input', ''))}</title><style>{STYLE}</style></head>"
            "<body>\n" + "\n".join(body) + "\n</body></html>\n")
    write_bytes(path, page.encode("utf-8"))
    return path


def _e(value) -> str:
    return html.escape(str(value))


def _summary_table(info: dict, scores: np.ndarray, threshold: float | None, fps: float) -> str:
    frames = int(info.get("frames", len(scores)))
    timings = info.get("timings") or {}
    alarms = int(info.get("alarms", 0))
    rows = [("model", info.get("model") or "(in memory)"), ("detector", info.get("detector")),
            ("frames", f"{frames} ({frames / fps:.1f} s at {fps:g} frames/s)"),
            ("threshold", "none" if threshold is None else f"{threshold:.6g}"),
            ("frames over the threshold", f"{alarms} ({alarms / max(frames, 1):.1%})")]
    if timings.get("wall"):
        stages = ", ".join(f"{k} {timings[k]:.1f} s" for k in ("decode", "detect", "crop", "model", "write")
                           if k in timings)
        rows.append(("speed", f"{timings.get('fps', 0):.1f} frames/s end to end ({stages})"))
    cells = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<table class="info">{cells}</table>'


def _segments_list(scores: np.ndarray, threshold: float | None, fps: float, limit: int = 20) -> list[str]:
    segments = alarm_segments(scores, threshold)
    if not segments:
        return ["<p>No frame is over the threshold.</p>"] if threshold is not None else []
    items = "".join(f"<li>frames {a}-{b} ({a / fps:.1f}-{(b + 1) / fps:.1f} s), peak "
                    f"{float(np.max(scores[a:b + 1])):.4g}</li>" for a, b in segments[:limit])
    more = f"<p class=\"muted\">and {len(segments) - limit} more</p>" if len(segments) > limit else ""
    spans = f"{len(segments)} span" + ("s" if len(segments) > 1 else "")
    return [f"<h2>Alarms ({spans})</h2><ul>{items}</ul>{more}"]


def _events_list(events, video: str | None, fps: float) -> list[str]:
    """Each event with its peak picture, times, and a link to its start in the annotated video."""
    if not events.events:
        dropped = events.tracker.dropped
        note = f" ({dropped} shorter than the minimum duration were dropped)" if dropped else ""
        return [f"<h2>Events</h2><p>No event{_e(note)}.</p>"]
    blocks = []
    for event in events.events:
        picture = events.pictures.get(event.id)
        image = "" if picture is None else (
            f'<img src="data:image/jpeg;base64,{base64.b64encode(picture).decode("ascii")}" '
            f'alt="event {event.id}" style="width:240px;max-width:100%">')
        # the annotated video holds every frame at the source's rate: frame / fps is its time there
        start = event.start / fps
        when = f"{_clock(event.start_time)}-{_clock(event.end_time)} ({event.end_time - event.start_time:.1f} s)"
        link = (f' <a href="{_e(video)}#t={start:.2f}">play from {_clock(start)}</a>' if video else "")
        box = "" if event.box is None else f", worst object at ({', '.join(f'{v:.0f}' for v in event.box)})"
        blocks.append(f'<div class="event" id="event-{event.id}">{image}<div><h3>Event {event.id}: {when}</h3>'
                      f'<p>frames {event.start}-{event.end}, peak {event.peak_score:.4g} at frame {event.peak_frame}'
                      f'{_e(box)}.{link}</p></div></div>')
    dropped = events.tracker.dropped
    note = f'<p class="muted">{dropped} shorter than the minimum duration dropped.</p>' if dropped else ""
    return [f"<h2>Events ({len(events.events)})</h2>{note}" + "".join(blocks)]


def _clock(seconds: float) -> str:
    minutes, rest = divmod(max(float(seconds), 0.0), 60.0)
    return f"{int(minutes)}:{rest:05.2f}"


def _moment_block(number: int, moment, images: dict | None, scale: float, fps: float,
                  threshold: float | None) -> str:
    over = "" if threshold is None else (" (over the threshold)" if moment.score > threshold else " (below the threshold)")
    frame = (f'<figure><img src="{image_data_uri(moment.thumbnail, "jpg")}" alt="frame {moment.index}" '
             f'style="width:420px;max-width:100%"><figcaption>frame {moment.index}, {moment.index / fps:.2f} s</figcaption></figure>')
    if images is None:
        crops = "<p class=\"muted\">Difference map unavailable (the model could not be run).</p>"
    else:
        pictures = (("crop X (frame t)", crop_image(images["crop"])),
                    ("prediction X^", crop_image(images["prediction"])),
                    ("|X^ - X|", heat_map(images["difference"], scale)))
        crops = '<div class="crops">' + "".join(
            f'<figure><img src="{image_data_uri(img)}" alt="{_e(title)}"><figcaption>{_e(title)}</figcaption></figure>'
            for title, img in pictures) + "</div>"
    return (f'<div class="moment"><div><h3>#{number}: score {moment.score:.4g}{over}</h3>{frame}</div>'
            f'<div><p class="muted">Worst object of the frame (white outline in the picture), '
            f'difference scale 0-{scale:.3g}:</p>{crops}</div></div>')
