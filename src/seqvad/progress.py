"""Progress of long commands: a tqdm bar on a terminal, log lines with rate and ETA elsewhere.

Under ``nohup``, a pipe or a file a tqdm bar is a stream of carriage returns that nobody sees, so
there :class:`Progress` writes one log line per finished item (a video, a phase) and, for counts
of frames, one every ``every`` seconds.  The lines go through :mod:`logging` (logger
``seqvad.progress``) to stderr, set up by :func:`configure_logging` for the command line;
``--quiet`` silences both the bars and the lines.
"""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("seqvad.progress")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (tests and tools swap it)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler sets it; the property always answers sys.stderr
        pass


def configure_logging(quiet: bool = False) -> None:
    """``seqvad.*`` INFO lines (progress, per-epoch lines) to stderr; only warnings when ``quiet``."""
    logger = logging.getLogger("seqvad")
    handler = next((h for h in logger.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        # the handler decides what is shown; other handlers (pytest's) see INFO too
        logger.propagate = True
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    handler.setLevel(logging.WARNING if quiet else logging.INFO)


def is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # closed or replaced stderr
        return False


def duration(seconds: float) -> str:
    """``1:02:03`` / ``2:03``."""
    seconds = int(round(max(seconds, 0)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """``total`` units of work (frames, cubes...) named ``desc``; ``update(n, item=...)``.

    On a terminal: a tqdm bar.  Elsewhere: a log line for every finished ``item`` (a video) and
    at most one per ``every`` seconds otherwise, with the rate and, when the total is known, the
    ETA.  ``enabled=False``: nothing at all.
    """

    def __init__(self, total: int | None, desc: str, unit: str = "frame", enabled: bool = True,
                 every: float = 30.0, terminal: bool | None = None):
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.enabled = enabled
        self.done = 0
        self.started = self._last_line = time.perf_counter()
        self.bar = None
        if enabled and (is_terminal() if terminal is None else terminal):
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True)

    def update(self, n: int = 1, item: str | None = None) -> None:
        self.done += n
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.perf_counter()
        if item is not None or now - self._last_line >= self.every:
            self._last_line = now
            log.info("%s", self.line(item, now))

    def line(self, item: str | None = None, now: float | None = None) -> str:
        elapsed = (now or time.perf_counter()) - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        count = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        pace = f"{rate:.1f} {self.unit}s/s" if rate >= 1 or rate == 0 else f"{1 / rate:.1f} s/{self.unit}"
        text = f"{self.desc}: {item + ', ' if item else ''}{count} {self.unit}s, {pace}"
        if self.total and rate > 0:
            text += f", elapsed {duration(elapsed)}, ETA {duration((self.total - self.done) / rate)}"
        return text

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
