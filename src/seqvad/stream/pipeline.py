"""Two stages on two threads: boxes and cubes on the caller's, the network and smoothing on a worker.

Decoding, detection (onnxruntime) and cropping run where the frames arrive; the scorer network
(torch or onnxruntime, both release the GIL while they compute) scores the groups of cubes on a
worker thread, so on two cores a frame costs about the slower of the two halves, not their sum.
The worker runs :meth:`StreamScorer.score` on the groups in arrival order, so the scores are the
sequential scorer's, number for number.  At most ``depth`` groups wait between the two halves,
so a frame's score is known at most ``(depth + 1) x group`` frames later than without the pipeline.
"""

from __future__ import annotations

import queue
import threading

from seqvad.stream.scorer import ScoredFrame, StreamScorer

DEPTH = 2  # groups waiting for the network: enough to ride out a slow group, little extra latency
_END = object()


class PipelinedScorer:
    """:class:`StreamScorer`'s ``push`` / ``finish``, its two halves on two threads."""

    def __init__(self, scorer: StreamScorer, depth: int = DEPTH):
        self.scorer, self.times, self.group = scorer, scorer.times, scorer.group
        self.depth = max(1, int(depth))
        self._todo: queue.Queue = queue.Queue(maxsize=self.depth)  # bounded: memory and latency
        self._done: queue.Queue = queue.Queue()
        self._error: BaseException | None = None  # the worker's failure; it scores nothing after it
        self._reported = False
        self._thread = threading.Thread(target=self._work, name="seqvad-score", daemon=True)
        self._thread.start()

    def push(self, frame) -> list[ScoredFrame]:
        for ready in self.scorer.cut(frame):
            self._hand_over((ready, None))
        return self._collect()

    def finish(self) -> list[ScoredFrame]:
        *groups, last = self.scorer.cut_rest()
        for ready in groups:
            self._hand_over((ready, None))
        self._hand_over((last, self.scorer.arrived))
        self.close()
        out = self._collect()
        self._raise()
        return out

    def close(self) -> None:
        """Stop the worker once it has scored what it holds (also after an error upstream)."""
        if self._thread.is_alive():
            while True:
                try:
                    self._todo.put(_END, timeout=0.1)
                    break
                except queue.Full:
                    if not self._thread.is_alive():
                        break
            self._thread.join()

    def _hand_over(self, work) -> None:
        while True:  # a worker that died would leave a full queue: look at it while waiting
            self._raise()
            try:
                self._todo.put(work, timeout=0.1)
                return
            except queue.Full:
                continue

    def undelivered(self) -> list[ScoredFrame]:
        """After ``close``: the frames scored before a failure that no call has returned yet."""
        out: list[ScoredFrame] = []
        while True:
            try:
                out += self._done.get_nowait()
            except queue.Empty:
                return out

    def _collect(self) -> list[ScoredFrame]:
        self._raise()  # before draining: what was scored before a failure stays for ``undelivered``
        return self.undelivered()

    def _raise(self) -> None:
        if self._error is not None and not self._reported:
            self._reported = True
            raise self._error

    def _work(self) -> None:
        while True:
            work = self._todo.get()
            if work is _END:
                return
            if self._error is not None:
                continue  # drain without scoring: the caller is told once
            try:
                self._done.put(self.scorer.score(*work))
            except BaseException as exc:  # handed to the caller's thread, which owns the outputs
                self._error = exc
