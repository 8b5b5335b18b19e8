"""Streaming detection (``seqvad detect MODEL INPUT [--out DIR]``): frames in, scores and files out.

Frames flow through the same stages as batch scoring (:meth:`seqvad.api.Detector.score`), one
frame at a time and in bounded memory::

    source -> boxes (model's detector) -> 9-frame cubes -> prediction error -> frame score -> median
    decode    groups of ``group`` frames   ring buffer of      object errors     max per frame  filter
                                           2T+1 frames

Latencies: the cubes of frame t need frame t+T (T = 4), and the median filter of W frames
(``scoring.median_window``) needs the raw scores of t+W//2 (t+8 by default), so frame t's smoothed
score is known once frame t+12 (plus the open detection group) has arrived; with the pipeline
(:mod:`.pipeline`, the default of ``seqvad detect``) up to 3 more groups may be in flight.  At the end of the stream the last frames are finished with the
borders clamped exactly as the batch code does (``extract_cubes`` repeats the last frame,
``median_filter(mode='nearest')`` repeats the last score), so streaming equals batch.  Memory:
at most ``max(group, warm-up) + T + 8`` frames are held, plus 16 bytes per frame for the report's timeline.

The motion detector's warm-up (``detector.motion.warmup`` frames spread over the first
``motion.WARMUP_SPAN`` times as many) is the same for a file, a folder and a camera, and batch
scoring does the same: the first frames wait until the warm-up's last one has arrived, and no input
is read twice.

Modules: :mod:`.sources` (inputs), :mod:`.scorer` (the streaming scorer), :mod:`.pipeline` (its two
halves on two threads), :mod:`.outputs` (CSV
files), :mod:`.video` (the annotated video), :mod:`.events` (events files), :mod:`.annotate` (drawing), :mod:`.report` (top moments, HTML report), :mod:`.run` (the
loop with its Ctrl-C handling).  Nothing here imports the trainer or the run-folder pipeline: the
model is a trained :class:`seqvad.api.Detector`, used through its public methods.

Outputs (``OUT/``): ``annotated.mp4`` (H.264 in fragmented MP4, :mod:`.video`), ``scores.csv``,
``objects.csv``, ``events.csv`` / ``events.json`` / ``events/`` (:mod:`.events`) and
``report.html``.  Rows are flushed as whole lines every ``flush_every`` frames, events as they
close, the video fragment by fragment, and the writers are closed in a ``finally`` block, so a
stream that stops half-way (even a killed process) leaves valid files.

Python use::

    from seqvad.api import Detector
    from seqvad.stream import open_source, stream_scores

    model = Detector.load("RUN/model.pt")
    source = open_source("new_video.mp4")
    for result in stream_scores(model, source.frames):
        print(result.index, result.raw, result.score)
"""


from seqvad.stream.annotate import Annotator, score_colour
from seqvad.stream.outputs import CsvLog, DetectionOutputs, VideoOut
from seqvad.stream.report import Moment, MomentKeeper, difference_maps, write_report
from seqvad.stream.run import DetectResult, default_out_dir, run_detection
from seqvad.stream.scorer import ScoredFrame, StageTimes, StreamScorer, detection_group, stream_scores
from seqvad.stream.sources import DEFAULT_FPS, GuardedFrames, Source, open_source

__all__ = ["Annotator", "CsvLog", "DEFAULT_FPS", "DetectResult", "DetectionOutputs", "GuardedFrames", "Moment",
           "MomentKeeper", "ScoredFrame", "Source", "StageTimes", "StreamScorer", "VideoOut", "default_out_dir",
           "detection_group", "difference_maps", "open_source", "run_detection", "score_colour",
           "stream_scores", "write_report"]
