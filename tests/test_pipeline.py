"""The pipelined stream scorer (seqvad.stream.pipeline): the sequential scorer's scores, its worker stopped."""

import threading

import numpy as np
import pytest
from test_compact import tiny_model

from seqvad.api import Detector
from seqvad.stream.pipeline import PipelinedScorer
from seqvad.stream.scorer import StreamScorer


def model():
    detector = Detector({"detector": {"name": "motion", "motion": {"warmup": 20}},
                         "model": {"width": 4, "latent": 8, "projection": 8}}, device="cpu")
    detector.model = tiny_model()
    return detector


def frames(n, seed=0):
    rng = np.random.default_rng(seed)
    out = np.full((n, 48, 64, 3), 110, np.uint8)
    for t in range(n):  # a block moving 2 pixels per frame, and sensor noise
        out[t, 12:26, (2 * t) % 48:(2 * t) % 48 + 14] = 30
    return np.clip(out + rng.normal(0, 2, out.shape), 0, 255).astype(np.uint8)


def run(scorer, video):
    out = [item for frame in video for item in scorer.push(frame)]
    return out + scorer.finish()


def workers():
    return [t for t in threading.enumerate() if t.name == "seqvad-score"]


@pytest.mark.parametrize("length", [1, 7, 19, 20, 21, 33])  # around the warm-up (20) and the group (8)
def test_pipelined_equals_sequential(length):
    detector, video = model(), frames(length)
    sequential = run(StreamScorer(detector), video)
    pipelined = run(PipelinedScorer(StreamScorer(detector)), video)
    assert [s.index for s in pipelined] == [s.index for s in sequential] == list(range(length))
    assert [s.raw for s in pipelined] == [s.raw for s in sequential]
    assert [s.score for s in pipelined] == [s.score for s in sequential]
    assert all(np.array_equal(a.object_scores, b.object_scores) for a, b in zip(pipelined, sequential))
    assert length < 20 or sum(len(s.object_scores) for s in sequential) > length // 2  # the block is found
    assert not workers()


def test_a_failure_on_the_worker_reaches_the_caller_and_the_worker_stops(monkeypatch):
    detector = model()
    scorer = StreamScorer(detector)
    monkeypatch.setattr(scorer, "_score", lambda ready: (_ for _ in ()).throw(RuntimeError("out of memory")))
    pipelined = PipelinedScorer(scorer)
    with pytest.raises(RuntimeError, match="out of memory"):
        run(pipelined, frames(60))
    pipelined.close()
    assert not workers()


def failing_on_group(scorer, k):
    """``scorer`` whose k-th network call fails, as a model running out of memory would."""
    real, calls = scorer._score, {"n": 0}

    def score(ready):
        calls["n"] += 1
        if calls["n"] == k:
            raise RuntimeError("out of memory")
        return real(ready)

    scorer._score = score
    return scorer


def delivered_before_failure(scorer, video):
    out = []
    with pytest.raises(RuntimeError, match="out of memory"):
        for frame in video:
            out += scorer.push(frame)
        out += scorer.finish()
    scorer.close()
    return out + scorer.undelivered()


@pytest.mark.parametrize("k", [13, 16, 20])  # the first scores come out after 100 frames (call 12)
def test_frames_scored_before_a_failure_are_all_delivered(k):
    """Whenever the worker fails, the frames it scored before are returned or left in ``undelivered``:
    the same frames, with the same scores, as the sequential scorer returns before the same failure."""
    detector, video = model(), frames(180)
    sequential = delivered_before_failure(failing_on_group(StreamScorer(detector), k), video)
    pipelined = delivered_before_failure(PipelinedScorer(failing_on_group(StreamScorer(detector), k)), video)
    assert len(sequential) > 0
    assert [s.index for s in pipelined] == [s.index for s in sequential]
    assert [s.score for s in pipelined] == [s.score for s in sequential]
    assert not workers()
