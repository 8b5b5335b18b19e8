"""The validation split: held-out training videos with injected, labelled anomalies."""

import json

import numpy as np
import pytest

from seqvad.data.validation import Settings, injected_boxes, make_validation, plan_video, rush_step, split_held_out
from seqvad.data.videos import Video
from seqvad.errors import ConfigError


def moving_square_video(name: str, frames: int = 150, seed: int = 0) -> Video:
    """A grey scene with a bright square moving right 1 px per frame, frame index drawn in."""
    rng = np.random.default_rng(seed)
    background = rng.integers(90, 110, size=(120, 180, 3), dtype=np.uint8)
    out = []
    for t in range(frames):
        frame = background.copy()
        x = 10 + t % 150
        frame[50:70, x:x + 12] = 230
        frame[0, 0] = t % 256  # each frame identifiable
        out.append(frame)
    return Video.from_array(np.stack(out), name=name)


def settings(**changes) -> Settings:
    return Settings.from_config({"videos": ["b", "c"], **changes})


def test_plan_labels_exactly_the_injected_spans():
    cfg = settings(kinds=["fast", "foreign", "reverse", "freeze"], span=10, gap=8, speed=3.0)
    plan = plan_video(400, cfg.kinds, cfg, np.random.default_rng(3), 120, 180)
    kinds = [i.kind for i in plan.injections]
    assert kinds == ["fast", "foreign", "reverse", "freeze"]
    labels = plan.labels()
    expected = np.zeros(len(plan.source_index), np.uint8)
    for injection in plan.injections:
        assert injection.end - injection.start == 10
        expected[injection.start:injection.end] = 1
    np.testing.assert_array_equal(labels, expected)
    steps = np.diff(plan.source_index)
    for injection in plan.injections:
        inside = steps[injection.start:injection.end - 1]
        if injection.kind == "fast":
            assert set(inside.tolist()) <= {3}
        elif injection.kind == "reverse":
            assert set(inside.tolist()) == {-1}
        elif injection.kind == "freeze":
            assert set(inside.tolist()) == {0}
        else:
            assert set(inside.tolist()) == {1}
    normal = steps[[i for i in range(len(steps)) if labels[i] == 0 and labels[i + 1] == 0]]
    assert set(normal.tolist()) <= {1}  # normal frames play at normal speed, no jumps
    assert plan.source_index.min() >= 0 and plan.source_index.max() < 400


def test_validation_split_is_deterministic_and_frames_follow_the_plan():
    videos = [moving_square_video(n, seed=i) for i, n in enumerate("abcd")]
    cfg = settings(copies=2)
    kept, held = split_held_out(videos, cfg)
    assert [v.name for v in kept] == ["a", "d"] and [v.name for v in held] == ["b", "c"]
    first, second = make_validation(held, cfg), make_validation(held, cfg)
    assert [v.name for v in first] == ["b-val0", "c-val0", "b-val1", "c-val1"]
    kinds = [i.kind for v in first for i in v.reader.plan.injections]
    assert {"glide", "fast"} <= set(kinds)  # the default kinds
    for one, two in zip(first, second):
        np.testing.assert_array_equal(one.labels, two.labels)
        assert one.reader.fingerprint == two.reader.fingerprint
        for index in range(0, len(one), 7):
            np.testing.assert_array_equal(one.frame(index), two.frame(index))
    # the other draws differ, and another seed changes the fingerprint (caches notice)
    assert first[0].reader.fingerprint != first[2].reader.fingerprint
    other = make_validation(held, settings(copies=2, seed=1))
    assert other[0].reader.fingerprint != first[0].reader.fingerprint
    for video in first:
        plan = video.reader.plan
        source = held[0] if video.name.startswith("b") else held[1]
        for index in range(len(video)):
            frame, original = video.frame(index), source.frame(int(plan.source_index[index]))
            painted = plan.foreign is not None and plan.foreign["first"] <= index <= plan.foreign["last"]
            assert painted == (not np.array_equal(frame, original)), (video.name, index)
            if painted:
                assert video.labels[index] == 1
                box = video.reader.foreign_box(index)
                changed = np.argwhere((frame != original).any(axis=2))
                (y1, x1), (y2, x2) = changed.min(0), changed.max(0)
                assert box[0] - 3 <= x1 and x2 <= box[2] + 3 and box[1] - 3 <= y1 and y2 <= box[3] + 3


def test_injected_boxes_follow_the_source_frames_and_add_the_foreign_object():
    video = moving_square_video("b")
    val = make_validation([video], Settings.from_config({"videos": ["b"], "kinds": ["foreign", "fast"],
                                                          "copies": 1}))[0]
    source_boxes = [np.array([[t, 0, t + 5, 5, 0.9]], np.float32) for t in range(len(video))]
    boxes = injected_boxes(val, source_boxes)
    plan = val.reader.plan
    assert len(boxes) == len(val)
    for index, rows in enumerate(boxes):
        assert rows.shape[1] == 4 and rows[0, 0] == plan.source_index[index]
        painted = plan.foreign["first"] <= index <= plan.foreign["last"]
        assert len(rows) == (2 if painted else 1)


def test_rush_moves_a_real_person_too_fast_then_back_in_step():
    video = moving_square_video("b")  # the 'person': a 20x12 square walking right 1 px/frame
    cfg = Settings.from_config({"videos": ["b"], "kinds": ["rush"], "rush_speed": 2.0, "copies": 1})
    first, again = make_validation([video], cfg)[0], make_validation([video], cfg)[0]
    plan, reader = first.reader.plan, first.reader
    spec = plan.foreign
    assert [i.kind for i in plan.injections] == ["rush"] and len(plan.tube) == cfg.span
    assert reader.fingerprint == again.reader.fingerprint
    expected = np.zeros(len(first), np.uint8)
    expected[spec["first"]:spec["last"] + 1] = 1
    np.testing.assert_array_equal(first.labels, expected)  # exactly the span, nothing else
    assert set(np.diff(plan.source_index).tolist()) == {1}  # only the person is fast, not the scene
    # its own frames 0, 2, 4, ... 22, then frozen at 23 until its own time catches up
    shown = [rush_step(j, cfg.span, 2.0) for j in range(cfg.span)]
    assert shown == [min(2 * j, 23) if j < 12 else 23 for j in range(cfg.span)]
    source_boxes = [np.array([[10 + t, 50, 21 + t, 69]], np.float32) for t in range(len(video))]
    boxes = injected_boxes(first, source_boxes)
    for index in range(len(first)):
        frame, original = first.frame(index), video.frame(int(plan.source_index[index]))
        np.testing.assert_array_equal(frame, again.frame(index))
        rushed = reader.rushed(index)
        if rushed is None:  # outside the span, and where the person is in step: the scene as it is
            np.testing.assert_array_equal(frame, original)
            assert len(boxes[index]) == 1 and reader.foreign_box(index) is None
            continue
        assert expected[index] and rushed == (int(plan.source_index[index]),
                                              spec["source_first"] + shown[index - spec["first"]])
        real_x, shown_x = 10 + rushed[0] % 150, 10 + rushed[1] % 150
        row = frame[60, :, 0]
        assert (row[shown_x:shown_x + 12] == 230).all()  # the person where its future self is ...
        assert (row[real_x:min(real_x + 12, shown_x)] < 150).all()  # ... and gone from where it was
        np.testing.assert_array_equal(boxes[index], source_boxes[rushed[1]][:, :4])  # the detector's box there
    still = Video.from_array(np.full((150, 120, 180, 3), 100, np.uint8), name="b")  # nobody to follow
    with pytest.raises(ConfigError, match="no moving person to cut out"):
        make_validation([still], cfg)


def test_bad_validation_settings_are_clear_errors():
    videos = [moving_square_video(n) for n in "ab"]
    with pytest.raises(ConfigError, match="validation.videos: x not among"):
        split_held_out(videos, Settings.from_config({"videos": ["x"]}))
    with pytest.raises(ConfigError, match="at least one training video"):
        split_held_out(videos, Settings.from_config({"videos": ["a", "b"]}))
    with pytest.raises(ConfigError, match="validation.kinds"):
        Settings.from_config({"videos": ["a"], "kinds": ["teleport"]})
    with pytest.raises(ConfigError, match="rush_speed must be > 1"):
        Settings.from_config({"videos": ["a"], "rush_speed": 1.0})
    with pytest.raises(ConfigError, match="unknown keys spn"):
        Settings.from_config({"spn": 3})
    short = [Video.from_array(np.zeros((20, 32, 32, 3), np.uint8), name="a"), moving_square_video("b")]
    with pytest.raises(ConfigError, match="too short"):
        make_validation(short[:1], Settings.from_config({"videos": ["a"]}))


@pytest.mark.slow
def test_experiment_validate_trains_without_held_out_videos_and_scores_them(tmp_path, capsys):
    from seqvad.cli import main
    from seqvad.objects.cubes import CubeStore

    out = tmp_path / "sel"
    args = ["experiment", "demo_quick", "--out", str(out), "--quiet", "--validate",
            "--set", "validation.videos=[train_02]", "--set", "validation.copies=1",
            "--set", "schedule.epochs=[1,1,1]", "--set", "scoring.context.enabled=false",
            "--set", "train.keep_epoch_checkpoints=true"]
    assert main(args) == 0
    train = CubeStore.load(out / "cubes" / "train")
    assert "train_02" not in train.videos and len(train.videos) == 3
    assert not (out / "cubes" / "test").exists() and not (out / "metrics.json").exists()
    metrics = json.loads((out / "metrics_val.json").read_text())
    assert metrics["split"] == "val" and list(metrics["phases"]) == ["phase1", "phase2", "phase3"]
    assert 0 < metrics["abnormal_frames"] < metrics["frames"]
    assert all(0.0 <= m["micro_auc"] <= 1.0 for m in metrics["phases"].values())
    assert (out / "scores_val.csv").read_text().startswith("video,frame,label,phase1_raw")
    capsys.readouterr()
    assert main(["evaluate", str(out), "--split", "val", "--no-report", "--every-epoch"]) == 0
    again = json.loads((out / "metrics_val.json").read_text())
    assert "oracle_best_epoch" in capsys.readouterr().out
    # the headline figures stay the last-epoch ones; the best epoch only under its own name
    assert again["phases"] == {k: {**v, "score_seconds": again["phases"][k]["score_seconds"]}
                               for k, v in metrics["phases"].items()}
    oracle = again["oracle_best_epoch"]
    assert "never a result" in oracle["warning"] and len(oracle["per_epoch"]) == 3
    assert oracle["micro_auc"] == max(row["micro_auc"] for row in oracle["per_epoch"])
    assert all("oracle" not in key for phase in again["phases"].values() for key in phase)
