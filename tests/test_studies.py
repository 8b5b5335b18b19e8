"""seqvad study: the plan of each study, the statistics, the resumable runner and the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from seqvad.cli import main
from seqvad.config import deep_merge, load_config
from seqvad.curriculum import Schedule
from seqvad.studies import runner, stats
from seqvad.studies.plan import BUDGET, STUDIES, Study, Variant, sequential
from seqvad.studies.report import write_report
from seqvad.train import Trainer


# -- the plan ---------------------------------------------------------------------------------

def test_every_variant_is_a_valid_run_at_the_shared_budget():
    for study in STUDIES.values():
        for variant in study.variants:
            config = load_config("ped2", deep_merge(BUDGET, variant.overrides))
            Schedule.from_config(config["schedule"])  # parses
    assert len(STUDIES["orders"].variants) == 13 and len(STUDIES["losses"].variants) == 7


def test_simultaneous_equivalents_weigh_tasks_by_their_training_time():
    variant = STUDIES["orders"].variant("sim-rec-cls-pre")
    schedule = Schedule.from_config(deep_merge(BUDGET, variant.overrides)["schedule"])
    assert len(schedule.phases) == 1 and schedule.phases[0].epochs == 3  # as long as the sequential run
    assert schedule.phases[0].weights == {"rec": 3.0, "cls": 2.0, "pre": 1.0}


def test_loss_rows_switch_exactly_their_losses():
    by_name = {v.name: v.overrides for v in STUDIES["losses"].variants}
    alone = by_name["loss-pre"]
    assert alone["tasks"]["pre"]["grad_weight"] == 0 and alone["model"]["memory"] is None
    everything = by_name["loss-pre-grd-rec-sps-cls-con"]
    assert everything["tasks"]["pre"]["grad_weight"] == 1 and everything["tasks"]["cls"]["con_weight"] == 1
    assert everything["model"]["memory"] and everything["schedule"]["order"] == "simultaneous:pre=1,rec=1,cls=1"
    assert by_name["loss-pre-grd-rec-sps-cls"]["tasks"]["cls"]["con_weight"] == 0


# -- the statistics ---------------------------------------------------------------------------

def made_up(n_videos=6, frames=40, seed=0):
    rng = np.random.default_rng(seed)
    videos = [f"v{i}" for i in range(n_videos) for _ in range(frames)]
    labels = np.tile((np.arange(frames) >= frames // 2).astype(int), n_videos)
    return videos, labels, rng


def test_auc_is_sklearns_with_ties():
    _, labels, rng = made_up()
    scores = np.round(rng.random(len(labels)) + 0.4 * labels, 1)  # many ties
    assert stats.auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_paired_comparison_verdicts():
    videos, labels, rng = made_up()
    perfect = [labels + 0.1 * rng.random(len(labels)) for _ in range(3)]
    noise = [rng.random(len(labels)) for _ in range(3)]
    better = stats.paired_comparison(videos, labels, perfect, noise, draws=300)
    assert better["verdict"] == "held" and better["wins"] == 3
    assert better["difference_mean"] == pytest.approx(1 - np.mean([roc_auc_score(labels, n) for n in noise]))
    worse = stats.paired_comparison(videos, labels, noise, perfect, draws=300)
    assert worse["verdict"].startswith("not held") and worse["ci95"][1] < 0
    same = stats.paired_comparison(videos, labels, noise, noise, draws=100)
    assert same["ci95"] == [0.0, 0.0] and same["verdict"] == "not resolved at this noise"
    with pytest.raises(ValueError, match="same seeds"):
        stats.paired_comparison(videos, labels, noise, noise[:2])


# -- the runner: resumable --------------------------------------------------------------------

TINY = Study("tiny", "tiny", (sequential(("cls", "rec")),))


@pytest.fixture
def tiny_budget(monkeypatch):
    budget = {"schedule": {"epochs": 1}, "train": {"epoch_fraction": 0.25, "checkpoint_every_steps": 1}}
    monkeypatch.setattr(runner, "BUDGET", budget)


def test_runner_resumes_an_interrupted_run_and_skips_finished_ones(tmp_path, monkeypatch, tiny_budget):
    out, work = tmp_path / "out", tmp_path / "work"
    real_step, calls = Trainer.train_step, []

    def killed_at_third_step(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as a kill would: after step 2's checkpoint
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train_step", killed_at_third_step)
    with pytest.raises(KeyboardInterrupt):
        runner.run_study(TINY, "demo_quick", None, out, work, seeds=[0], log=lambda line: None)
    assert not (out / "tiny" / "seq-cls-rec-seed0.json").exists()

    calls.clear()
    monkeypatch.setattr(Trainer, "train_step", lambda self, *a, **k: calls.append(1) or real_step(self, *a, **k))
    [path] = runner.run_study(TINY, "demo_quick", None, out, work, seeds=[0], log=lambda line: None)
    record = json.loads(path.read_text())
    total = torch.load(work / "seq-cls-rec-seed0" / "checkpoints" / "phase2.pt", weights_only=True)["info"]["global_step"]
    assert len(calls) == total - 2  # resumed after the two finished steps, not restarted
    # a Cls-only phase has no error to score by; a Rec phase without Pre is scored by reconstruction
    assert list(record["phases"]) == ["phase2"] and "phase1" in record["unscored_phases"]
    assert record["phases"]["phase2"]["score"].startswith("reconstruction error")
    assert len(record["frame_scores"]["phase2"]) == len(json.loads((out / "tiny" / "labels.json").read_text())["labels"])

    import seqvad.experiment

    monkeypatch.setattr(seqvad.experiment, "run_experiment", lambda *a, **k: pytest.fail("a finished run ran again"))
    lines = []
    assert runner.run_study(TINY, "demo_quick", None, out, work, seeds=[0], log=lines.append) == [path]
    assert "done before" in lines[0]


def test_shards_split_the_runs_seed_major():
    study = STUDIES["losses"]
    jobs = [runner.plan_jobs(study, [0, 1], (k, 3)) for k in range(3)]
    flat = sorted((seed, v.name) for part in jobs for seed, v in part)
    assert flat == sorted((seed, v.name) for seed in (0, 1) for v in study.variants)
    assert [seed for seed, _ in runner.plan_jobs(study, [0, 1])] == [0] * 7 + [1] * 7


# -- the report, on made-up runs ---------------------------------------------------------------

def fake_run(study, variant: Variant, seed, labels, quality: dict[str, float], rng) -> None:
    """A finished run whose phase k separates abnormal frames by ``quality[phase]``."""
    scores = {phase: (q * labels + rng.random(len(labels))).round(4).tolist() for phase, q in quality.items()}
    record = {"study": study, "variant": variant.name, "label": variant.label, "seed": seed,
              "base_config": "ped2", "overrides": {}, "command": "made up", "git_commit": "0" * 40,
              "machine": {"cpu_count": 2, "torch": "x", "torch_threads": 1}, "config": {"detector": {"name": "x"}},
              "phases": {p: {"micro_auc": roc_auc_score(labels, s)} for p, s in scores.items()},
              "unscored_phases": {}, "frame_scores": scores}
    return record


def test_phases_report_gives_the_verdicts_of_made_up_runs(tmp_path):
    videos, labels, rng = made_up(n_videos=8)
    folder = tmp_path / "phases"
    folder.mkdir()
    (folder / "labels.json").write_text(json.dumps({"videos": videos, "labels": labels.tolist()}))
    variant = STUDIES["phases"].variants[0]
    for seed in range(3):  # every phase clearly better than the one before
        record = fake_run("phases", variant, seed, labels, {"phase1": 0.2, "phase2": 0.6, "phase3": 1.2}, rng)
        (folder / f"{variant.name}-seed{seed}.json").write_text(json.dumps(record))
    md, js, *_ = write_report(STUDIES["phases"], tmp_path)
    assert "**Verdict (a), at the study budget: held**" in md.read_text()
    numbers = json.loads(js.read_text())
    assert numbers["steps"]["phase 2 − phase 1"]["verdict"] == "held"

    orders = tmp_path / "orders"  # a study under way: the claims wait for the missing runs
    orders.mkdir()
    (orders / "labels.json").write_text((folder / "labels.json").read_text())
    (orders / f"{variant.name}-seed0.json").write_text((folder / f"{variant.name}-seed0.json").read_text())
    text = write_report(STUDIES["orders"], tmp_path)[0].read_text()
    assert "(n=1)" in text and "**Verdict (b): not resolved: some runs are missing.**" in text


def test_study_command_reports_and_refuses_bad_input(tmp_path, capsys):
    assert main(["study", "phases", "--report-only", "--out", str(tmp_path)]) == 2
    assert "no finished runs" in capsys.readouterr().err
    assert main(["study", "phases", "--shard", "2/2", "--out", str(tmp_path), "--work", str(tmp_path / "w")]) == 2
    assert "--shard 2/2" in capsys.readouterr().err
