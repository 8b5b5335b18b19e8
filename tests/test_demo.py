"""End to end: `seqvad demo --quick` (the README's main job, on its tiny scene)."""

import json
import math

import numpy as np

from seqvad.cli import main


def test_demo_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "micro AUC" in printed and "phase3" in printed
    for name in ("config.yaml", "log.csv", "scores.csv", "metrics.json", "report/score_curves.png",
                 "checkpoints/phase1.pt", "checkpoints/phase2.pt", "checkpoints/phase3.pt"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["phases"]) == ["phase1", "phase2", "phase3"]
    assert metrics["phases"]["phase3"]["tasks"] == ["pre", "rec", "cls"]
    for phase in metrics["phases"].values():
        for key in ("micro_auc", "macro_auc", "eer"):
            assert isinstance(phase[key], float) and not math.isnan(phase[key]) and 0.0 <= phase[key] <= 1.0
    # the demo adds the motion-context score and reports the paper's score and the context alone too
    assert "prediction error alone" in printed and "motion context alone" in printed
    for m in [p["prediction_only"] for p in metrics["phases"].values()] + [metrics["context_only"]]:
        assert 0.0 <= m["micro_auc"] <= 1.0
    # the scene has pixel masks, so the region-level criteria come beside the frame AUC
    assert metrics["region_truth"]["regions"] > 0 and metrics["region_truth"]["tracks"] > 0
    for phase in metrics["phases"].values():
        assert 0.0 <= phase["rbdc"] <= 1.0 and 0.0 <= phase["tbdc"] <= 1.0
    assert metrics["command"] and metrics["git_commit"] and metrics["machine"]["cpu_count"]
    # scores.csv: one row per test frame, labels and one raw/smoothed column pair per phase
    rows = (out / "scores.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert header[:3] == ["video", "frame", "label"] and "phase3_smoothed" in header
    assert len(rows) - 1 == metrics["frames"]
    labels = np.array([int(r.split(",")[2]) for r in rows[1:]])
    assert labels.sum() == metrics["abnormal_frames"] > 0

    # re-scoring a finished run: scoring settings may change (and are recorded), nothing else
    assert main(["evaluate", str(out), "--no-report", "--set", "scoring.context.enabled=false"]) == 0
    again = json.loads((out / "metrics.json").read_text())
    assert "context_only" not in again and again["config"]["scoring"]["context"]["enabled"] is False
    assert again["phases"]["phase3"]["micro_auc"] == metrics["phases"]["phase3"]["prediction_only"]["micro_auc"]
    # the order classifier's term counts only from the phase that trains it (phase 3)
    assert main(["evaluate", str(out), "--no-report", "--set", "scoring.context.enabled=false",
                 "--set", "scoring.terms.order=1"]) == 0
    ordered = json.loads((out / "metrics.json").read_text())["phases"]
    for name in ("phase1", "phase2"):
        assert ordered[name]["score"].startswith("pre (") and "prediction_only" not in ordered[name]
        assert ordered[name]["micro_auc"] == again["phases"][name]["micro_auc"]
    assert "score" not in ordered["phase3"]
    assert ordered["phase3"]["prediction_only"]["micro_auc"] == again["phases"]["phase3"]["micro_auc"]
    capsys.readouterr()
    assert main(["evaluate", str(out), "--set", "train.batch_size=3"]) != 0
    assert "only scoring.* settings" in capsys.readouterr().err
