"""``seqvad detect``: streaming scores equal batch scores, outputs survive a broken stream, bad input.

The scene is made here: a textured background, a slow dark walker (normal), and in the test video a
large checkered block crossing fast (blatant, so a model of width 4 trained for 2 epochs on 120
frames flags it reliably; the synthetic surveillance scene's subtle anomalies need a real model).
"""

from __future__ import annotations

import csv
import shutil
import subprocess

import cv2
import numpy as np
import pytest
import torch

from conftest import write_avi, write_frames
from seqvad.api import Detector
from seqvad.cli import main
from seqvad.data.videos import Video
from seqvad.stream import MomentKeeper, ScoredFrame, open_source, run_detection, stream_scores
from seqvad.errors import DataError

H, W = 64, 96
TEST_FRAMES, ANOMALY = 60, (20, 40)  # abnormal frames [20, 40)
TINY_CONFIG = {
    "detector": {"name": "motion", "motion": {"warmup": 5}},  # warm-up: streaming must prime as batch does
    "model": {"width": 4, "latent": 8, "projection": 8},
    "schedule": {"order": "pre", "epochs": [2]},
    "train": {"batch_size": 32},
}


def scene(frames: int, seed: int, anomaly: tuple[int, int] | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    background = cv2.GaussianBlur(rng.integers(70, 170, (H, W)).astype(np.uint8), (0, 0), 2)
    checker = np.kron((np.indices((4, 4)).sum(0) % 2) * 255, np.ones((6, 6))).astype(np.float32)
    start = int(rng.integers(2, 10))
    out = []
    for t in range(frames):
        image = background.astype(np.float32)
        x = start + t  # the walker: 1 pixel per frame
        image[34:46, x:x + 6] = 35
        if anomaly and anomaly[0] <= t < anomaly[1]:
            bx = (t - anomaly[0]) * 7 % (W - 24)  # the block: 7 pixels per frame
            image[6:30, bx:bx + 24] = checker
        image += rng.normal(0, 1.5, image.shape)
        out.append(cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR))
    return np.stack(out)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained on three normal videos, saved, plus a test video as AVI and frames."""
    folder = tmp_path_factory.mktemp("detect")
    train = [Video.from_array(scene(40, seed), name=f"train{seed}") for seed in range(3)]
    model = Detector(TINY_CONFIG).fit(train, progress=False, workers=1)
    model_file = model.save(folder / "model.pt")
    frames = scene(TEST_FRAMES, seed=7, anomaly=ANOMALY)
    labels = np.zeros(TEST_FRAMES, bool)
    labels[ANOMALY[0]:ANOMALY[1]] = True
    return {"model": model, "model_file": model_file, "frames": frames, "labels": labels,
            "avi": write_avi(folder / "clip.avi", frames), "folder": write_frames(folder / "clip", frames)}


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# -- end to end ----------------------------------------------------------------------------------

def test_detect_writes_every_output_and_flags_the_anomaly(trained, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["detect", str(trained["model_file"]), str(trained["avi"]), "--out", str(out), "--quiet"]) == 0
    assert "60 frames" in capsys.readouterr().out
    rows = read_csv(out / "scores.csv")
    assert [int(r["frame"]) for r in rows] == list(range(TEST_FRAMES))
    scores = np.array([float(r["score"]) for r in rows])
    labels = trained["labels"]
    assert scores[labels].mean() > 1.3 * scores[~labels].mean()  # measured: 0.38 vs 0.21
    alarms = np.array([int(r["alarm"]) for r in rows])
    np.testing.assert_array_equal(alarms, scores > trained["model"].threshold)
    objects = read_csv(out / "objects.csv")
    assert objects and set(objects[0]) == {"frame", "x1", "y1", "x2", "y2", "detector_score", "class", "object_score"}
    # the frame score is the max over the frame's objects
    frame_max = {}
    for r in objects:
        frame_max[int(r["frame"])] = max(frame_max.get(int(r["frame"]), 0.0), float(r["object_score"]))
    raw = np.array([float(r["raw_score"]) for r in rows])
    np.testing.assert_allclose([raw[f] for f in frame_max], list(frame_max.values()), rtol=1e-6)
    video = cv2.VideoCapture(str(next(out.glob("annotated.*"))))
    count, shape = 0, None
    while True:
        ok, frame = video.read()
        if not ok:
            break
        count, shape = count + 1, frame.shape
    assert count == TEST_FRAMES and shape[:2] == (H + 48, W)  # frame plus the timeline strip
    report = (out / "report.html").read_text()
    assert "<svg" in report and "data:image/png;base64," in report and "http" not in report.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert "|X^ - X|" in report


def test_top_moment_lies_in_the_anomaly(trained, tmp_path):
    result = run_detection(trained["model"], open_source(trained["folder"]), tmp_path / "o", top_k=3,
                           write_video=False)
    assert ANOMALY[0] - 8 <= int(np.argmax(result.scores)) < ANOMALY[1] + 8
    assert result.frames == TEST_FRAMES and "video" not in result.files


# -- streaming equals batch ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["avi", "folder"])
def test_streaming_equals_batch(trained, tmp_path, kind):
    model = trained["model"]
    result = run_detection(model, open_source(trained[kind]), tmp_path / kind, write_video=False, top_k=0)
    video = Video.open(trained[kind])
    np.testing.assert_allclose(result.raw, model.score(video, smoothed=False), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(result.scores, model.score(video), rtol=1e-5, atol=1e-9)
    rows = read_csv(tmp_path / kind / "scores.csv")
    np.testing.assert_allclose([float(r["score"]) for r in rows], model.score(video), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("kind", ["avi", "folder"])
def test_pipelined_detect_equals_sequential_frame_for_frame(trained, tmp_path, kind):
    runs = {mode: run_detection(trained["model"], open_source(trained[kind]), tmp_path / mode, write_video=False,
                                top_k=1, pipelined=mode == "pipelined") for mode in ("pipelined", "sequential")}
    np.testing.assert_array_equal(runs["pipelined"].raw, runs["sequential"].raw)
    np.testing.assert_array_equal(runs["pipelined"].scores, runs["sequential"].scores)
    assert read_csv(tmp_path / "pipelined" / "objects.csv") == read_csv(tmp_path / "sequential" / "objects.csv")
    assert runs["pipelined"].frames == TEST_FRAMES


def test_detect_engine_option_scores_alike(trained, tmp_path):
    pytest.importorskip("onnx")
    for engine in ("onnx", "torch"):
        assert main(["detect", str(trained["model_file"]), str(trained["avi"]), "--out", str(tmp_path / engine),
                     "--engine", engine, "--no-video", "--quiet"]) == 0
    scores = {e: [float(r["raw_score"]) for r in read_csv(tmp_path / e / "scores.csv")] for e in ("onnx", "torch")}
    np.testing.assert_allclose(scores["onnx"], scores["torch"], rtol=1e-5, atol=1e-7)
    assert trained["model"].scorer.engine == "folded"  # the option changed that run only


@pytest.mark.parametrize("length", [1, 3, 9, 13, 26])
def test_streaming_equals_batch_at_the_borders(trained, length):
    """Streams shorter than the cube window (9) and the median window (17) clamp like batch does."""
    model = trained["model"]
    frames = trained["frames"][14:14 + length]  # starts just before the anomaly: objects at the ends
    video = Video.from_array(frames, name="short")
    streamed = list(stream_scores(model, iter(frames)))
    assert [s.index for s in streamed] == list(range(length))
    np.testing.assert_allclose([s.raw for s in streamed], model.score(video, smoothed=False), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose([s.score for s in streamed], model.score(video), rtol=1e-5, atol=1e-9)


def test_streaming_equals_batch_with_yolox_and_motion(trained):
    """The combined detector: YOLOX batches of 3 must line up with batch scoring's chunks."""
    config = {**trained["model"].config, "detector": {
        "name": "yolox+motion", "motion": {"warmup": 5},
        "yolox": {"input_size": [160, 96], "batch": 3, "threads": 1, "classes": None, "score_threshold": 0.05}}}
    model = Detector(config)
    model.model, model.stats, model.threshold = trained["model"].model, None, 1.0
    frames = trained["frames"][10:30]
    video = Video.from_array(frames, name="clip")
    streamed = list(stream_scores(model, iter(frames)))
    np.testing.assert_allclose([s.raw for s in streamed], model.score(video, smoothed=False), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose([s.score for s in streamed], model.score(video), rtol=1e-5, atol=1e-9)


def test_psnr_scores_stream_like_batch_on_frames_with_objects(trained, tmp_path):
    """Minus PSNR is negative: empty frames get the lowest error so far (batch: of the whole video)."""
    config = {**trained["model"].config, "scoring": {**trained["model"].config["scoring"], "error": "psnr"}}
    model = Detector(config)
    model.model, model.stats, model.threshold = trained["model"].model, None, -20.0
    result = run_detection(model, open_source(trained["avi"]), tmp_path / "psnr", top_k=2)
    batch = model.score(Video.open(trained["avi"]), smoothed=False)
    objects = {int(r["frame"]) for r in read_csv(tmp_path / "psnr" / "objects.csv")}
    assert result.raw.max() < 0 and len(objects) > TEST_FRAMES // 2
    np.testing.assert_allclose(result.raw[sorted(objects)], batch[sorted(objects)], rtol=1e-6)
    assert "#1: score -" in (tmp_path / "psnr" / "report.html").read_text()


# -- broken streams and bad input ------------------------------------------------------------------

def frames_then_failure(frames, count):
    for i, frame in enumerate(frames):
        if i == count:
            raise DataError("camera unplugged")
        yield frame


def test_stream_failing_midway_leaves_valid_outputs(trained, tmp_path):
    source = open_source(trained["folder"])
    source.frames = frames_then_failure(trained["frames"], 23)
    video = Video.from_array(trained["frames"][:23], name="clip")  # the warm-up: its first frames, as batch
    with pytest.raises(DataError, match="stopped after 23 frames.*camera unplugged"):
        run_detection(trained["model"], source, tmp_path / "cut", top_k=2)
    rows = read_csv(tmp_path / "cut" / "scores.csv")
    assert [int(r["frame"]) for r in rows] == list(range(23))  # the waiting frames were finished too
    assert all(len(r) == 5 and None not in r.values() for r in rows)
    # the 23 frames score as a 23-frame video would
    np.testing.assert_allclose([float(r["score"]) for r in rows], trained["model"].score(video), rtol=1e-6, atol=1e-9)
    capture = cv2.VideoCapture(str(next((tmp_path / "cut").glob("annotated.*"))))
    assert int(sum(1 for _ in iter(lambda: capture.read()[0], False))) == 23
    report = (tmp_path / "cut" / "report.html").read_text()
    assert "camera unplugged" in report


def test_error_inside_processing_still_closes_outputs(trained, tmp_path, monkeypatch):
    """An exception in the model: rows written so far stay whole, video and report exist."""
    from seqvad.scoring.compact import Engine

    calls = {"n": 0}
    real = Engine.terms

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("out of memory")
        return real(*args, **kwargs)

    monkeypatch.setattr(Engine, "terms", failing)
    with pytest.raises(RuntimeError, match="out of memory"):
        run_detection(trained["model"], open_source(trained["avi"]), tmp_path / "err", top_k=1)
    rows = read_csv(tmp_path / "err" / "scores.csv")
    assert 0 < len(rows) < TEST_FRAMES and [int(r["frame"]) for r in rows] == list(range(len(rows)))
    assert (tmp_path / "err" / "report.html").is_file()
    assert next((tmp_path / "err").glob("annotated.*")).stat().st_size > 0


def test_truncated_video_file(trained, tmp_path):
    """A file cut in half: either refused up front, or its decodable frames are scored and noted."""
    data = trained["avi"].read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[:len(data) // 2])
    try:
        source = open_source(cut)
    except DataError as exc:
        assert "cut.avi" in str(exc)
        return
    result = run_detection(trained["model"], source, tmp_path / "t", write_video=False, top_k=0)
    assert 0 < result.frames < TEST_FRAMES
    assert len(read_csv(tmp_path / "t" / "scores.csv")) == result.frames


@pytest.mark.parametrize("case", ["missing", "garbage", "empty_folder", "bad_camera"])
def test_unopenable_input_is_one_line_and_exit_2(trained, tmp_path, capsys, case):
    if case == "missing":
        target, expected = tmp_path / "nope.mp4", "no such video file"
    elif case == "garbage":
        target, expected = tmp_path / "broken.mp4", "broken.mp4"
        target.write_bytes(b"\x00not a video" * 50)
    elif case == "empty_folder":
        target, expected = tmp_path / "frames", "no image frames"
        target.mkdir()
    else:
        target, expected = "97", "camera 97"
    code = main(["detect", str(trained["model_file"]), str(target), "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and expected in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()  # nothing written for an input that never opened


@pytest.mark.parametrize("case", ["other_version", "corrupted", "not_a_model"])
def test_bad_model_file_is_one_line_and_exit_2(trained, tmp_path, capsys, case):
    bad = tmp_path / "model.pt"
    if case == "other_version":
        payload = torch.load(trained["model_file"], weights_only=False)
        payload["format_version"] = 99
        torch.save(payload, bad)
        expected = "model file format 99 is not supported"
    elif case == "corrupted":
        data = trained["model_file"].read_bytes()
        bad.write_bytes(data[:len(data) // 3])
        expected = "not a readable seqvad model file"
    else:
        torch.save({"weights": 1}, bad)
        expected = "not a seqvad model file"
    code = main(["detect", str(bad), str(trained["avi"]), "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and expected in err and str(bad) in err and len(err.splitlines()) == 1


def test_threshold_option_overrides_the_model(trained, tmp_path):
    result = run_detection(trained["model"], open_source(trained["avi"]), tmp_path / "o", threshold=0.0,
                           write_video=False, top_k=0)
    rows = read_csv(tmp_path / "o" / "scores.csv")
    assert result.threshold == 0.0
    assert [int(r["alarm"]) for r in rows] == [int(float(r["score"]) > 0) for r in rows]


# -- pieces ----------------------------------------------------------------------------------------

def offer_all(keeper, scores):
    image = np.zeros((8, 8, 3), np.uint8)
    for i, s in enumerate(scores):
        box = np.array([[1, 1, 5, 5, 1, -1]], np.float32)
        keeper.offer(ScoredFrame(i, image, box, np.array([s]), float(s), float(s)), image)
    return sorted(m.index for m in keeper.moments)


def test_moment_keeper_keeps_separated_peaks():
    scores = np.random.default_rng(0).random(300)
    kept = offer_all(MomentKeeper(k=4, gap=25), scores)
    assert len(kept) == 4 and int(np.argmax(scores)) in kept
    assert min(np.diff(kept)) >= 25
    # on this input the choice equals greedy selection over all frames: nothing left out beats a
    # kept moment while lying far enough from all of them
    top = sorted(scores[kept])[0]
    for i in np.flatnonzero(scores > top):
        assert i in kept or min(abs(i - k) for k in kept) < 25


def test_moment_keeper_spreads_a_long_rise():
    """A score rising for 4 s gives one moment per second, not a single one at the top."""
    kept = offer_all(MomentKeeper(k=5, gap=25), np.linspace(0.1, 1.0, 100))
    assert kept[-1] == 99 and len(kept) == 4 and min(np.diff(kept)) >= 25


# -- quick start and browser -----------------------------------------------------------------------

def test_train_folder_writes_model_file_for_detect(tmp_path, capsys):
    normal = tmp_path / "normal"
    for seed in range(2):
        write_avi(normal / f"cam{seed}.avi", scene(30, seed))
    run = tmp_path / "run"
    sets = ["model.width=4", "model.latent=8", "model.projection=8", "schedule.order=pre", "schedule.epochs=[1]"]
    args = ["train", "--folder", str(normal), "--out", str(run), "--detector", "motion", "--workers", "1", "--quiet"]
    assert main(args + [item for s in sets for item in ("--set", s)]) == 0
    model = Detector.load(run / "model.pt")
    assert model.threshold is not None and model.config["detector"]["name"] == "motion"
    assert main(["detect", str(run / "model.pt"), str(normal / "cam1.avi"), "--out", str(tmp_path / "d"),
                 "--no-video", "--quiet"]) == 0
    assert len(read_csv(tmp_path / "d" / "scores.csv")) == 30


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def test_report_in_browser(trained, tmp_path):
    """The report renders in headless Chromium without console errors (skips without Chromium)."""
    import os

    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium is not installed (apt-get install -y chromium); the report's browser check needs it")
    result = run_detection(trained["model"], open_source(trained["avi"]), tmp_path / "r", write_video=False)
    shot = tmp_path / "shot.png"
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run",
               f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
               f"--screenshot={shot}", "--window-size=1200,900", result.files["report"].resolve().as_uri()]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    problems = [line for line in run.stderr.splitlines() if "Uncaught" in line or "CONSOLE" in line]
    assert not problems, problems
    image = cv2.imread(str(shot))
    assert image is not None, run.stderr[-2000:]
    assert image.shape[:2] == (900, 1200) and float(image.std()) > 10


def test_detect_help_lists_the_input_kinds(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["detect", "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and "usage: seqvad detect" in out and "camera index" in out


def test_motion_context_survives_save_load_and_streams_like_batch(trained, tmp_path):
    """scoring.context on: the fitted context model travels in model.pt; streaming == batch."""
    from seqvad.context import ContextModel

    config = {**trained["model"].config,
              "scoring": {**trained["model"].config["scoring"], "context": {"enabled": True, "k": 3}}}
    model = Detector(config)
    model.model, model.stats, model.threshold = trained["model"].model, trained["model"].stats, 1.0
    rng = np.random.default_rng(0)  # training objects: walkers on row ~40 going right at ~1 px/frame
    model.context = ContextModel(k=3).fit(np.column_stack([rng.uniform(0, 96, 50), rng.normal(40, 2, 50),
                                                           rng.normal(1, 0.2, 50), rng.normal(0, 0.2, 50)]))
    video = Video.from_array(trained["frames"], name="clip")
    with_context = model.score(video, smoothed=False)
    reloaded = Detector.load(model.save(tmp_path / "ctx.pt"))
    assert reloaded.context is not None
    np.testing.assert_allclose(reloaded.score(video, smoothed=False), with_context, rtol=1e-5, atol=1e-9)
    streamed = list(stream_scores(reloaded, iter(trained["frames"])))
    np.testing.assert_allclose([s.raw for s in streamed], with_context, rtol=1e-5, atol=1e-9)
    without = Detector({**config, "scoring": {**config["scoring"], "context": {"enabled": False}, "normalize": True}})
    without.model, without.stats = model.model, model.stats
    assert not np.allclose(without.score(video, smoothed=False), with_context), "context must change scores"
    reloaded.context = None  # context on but never fitted: a clear error, not scores without it
    with pytest.raises(DataError, match="not fitted \\(context missing\\)"):
        reloaded.score(video)
