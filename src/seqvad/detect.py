"""Streaming detection moved to :mod:`seqvad.stream` (the command to :mod:`seqvad.cli.detect`);
these names stay importable from here."""

from seqvad.stream import (DEFAULT_FPS, DetectionOutputs, DetectResult, GuardedFrames, Moment, MomentKeeper,  # noqa: F401
                           ScoredFrame, Source, StreamScorer, default_out_dir, detection_group, difference_maps,
                           open_source, run_detection, stream_scores)
