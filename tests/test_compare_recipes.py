"""benchmarks/compare_recipes.py: two recipes' seeds paired on one split, B minus A."""

import csv
import importlib.util
import json

import pytest

from conftest import REPO
from seqvad.studies.stats import auc
from test_studies import made_up

spec = importlib.util.spec_from_file_location("compare_recipes", REPO / "benchmarks" / "compare_recipes.py")
compare_recipes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_recipes)


def fake_run(folder, seed, videos, labels, scores, split="val", width=8):
    """A run folder as `seqvad experiment --validate` leaves it: metrics and frame scores."""
    folder.mkdir()
    suffix = compare_recipes.SUFFIX[split]
    with open(folder / f"scores{suffix}.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video", "frame", "label", "phase1_raw", "phase1_smoothed"])
        for i, (video, label, score) in enumerate(zip(videos, labels, scores)):
            writer.writerow([video, i, int(label), score, score])
    config = {"train": {"seed": seed}, "model": {"width": width}}
    metrics = {"split": split, "config": config, "git_commit": "abc", "machine": {},
               "phases": {"phase1": {"micro_auc": auc(labels, scores)}}}
    (folder / f"metrics{suffix}.json").write_text(json.dumps(metrics))
    return folder


def test_a_better_recipe_is_held_and_its_config_change_named(tmp_path):
    videos, labels, rng = made_up(n_videos=8, frames=30)
    runs_a = [fake_run(tmp_path / f"a{k}", k, videos, labels, rng.random(len(labels))) for k in range(3)]
    runs_b = [fake_run(tmp_path / f"b{k}", k, videos, labels, labels + 0.5 * rng.random(len(labels)), width=16)
              for k in range(3)]
    result = compare_recipes.compare(runs_a, runs_b, "val")
    phase = result["phases"]["phase1"]
    assert phase["b_mean"] == pytest.approx(1.0) and phase["a_mean"] < 0.7
    assert phase["b_minus_a"]["wins"] == 3 and phase["b_minus_a"]["verdict"] == "held"
    assert phase["b_minus_a"]["ci95"][0] > 0
    assert result["b_config_change"] == ["model.width: 8 -> 16"]
    # the other way round, the opposite holds
    assert compare_recipes.compare(runs_b, runs_a, "val")["phases"]["phase1"]["b_minus_a"]["verdict"].startswith("not held")


def test_arms_must_pair_by_seed_and_frames(tmp_path):
    videos, labels, rng = made_up(n_videos=4, frames=20)
    a = [fake_run(tmp_path / f"a{k}", k, videos, labels, rng.random(len(labels))) for k in range(2)]
    b = [fake_run(tmp_path / f"b{k}", seed, videos, labels, rng.random(len(labels))) for k, seed in enumerate([1, 0])]
    with pytest.raises(SystemExit, match="seeds differ"):
        compare_recipes.compare(a, b, "val")
    with pytest.raises(SystemExit, match="pair them by seed"):
        compare_recipes.compare(a, a[:1], "val")
    other = fake_run(tmp_path / "other", 1, videos[::-1], labels, rng.random(len(labels)))
    with pytest.raises(SystemExit, match="other frames"):
        compare_recipes.compare(a, [a[0], other], "val")
