"""The model-selection trail: one row per variant tried on the validation split.

    python benchmarks/selection.py runs/sel-A --variant baseline --note "ped2.yaml as it was"

reads ``RUN/metrics_val.json`` (made by ``seqvad experiment ped2 --validate``, which holds the
``validation.videos`` out of training and injects labelled anomalies into them) and
``RUN/log.csv``, and writes or replaces the variant's row in ``results/<dataset>/selection.csv``:
the config change against the built-in dataset config, validation micro/macro AUC per phase,
training minutes, the command, the commit. No test label is read: anyone can check from this
file that every default was the best validation row.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

from seqvad.atomic import write_bytes
from seqvad.config import DEFAULTS, deep_merge, diff, load_config

REPO = Path(__file__).resolve().parents[1]
COMPARED = ("cubes", "model", "tasks", "schedule", "train", "scoring")
IGNORED = ("train.threads", "train.device", "train.checkpoint_minutes", "train.keep_epoch_checkpoints",
           "scoring.context")  # how a run ran, not what it learned (context: reported separately)
FIELDS = ["variant", "detector", "config_change", "val_micro_auc", "val_macro_auc", "train_minutes",
          "train_videos", "val_videos", "note", "command", "git_commit"]


def config_change(config: dict) -> str:
    base = load_config(config.get("name", "default"))
    # keys added to DEFAULTS after the run was made (e.g. scoring.terms) are no change
    config = deep_merge({k: DEFAULTS[k] for k in COMPARED}, {k: config.get(k) or {} for k in COMPARED})
    lines = diff({k: base.get(k) for k in COMPARED}, {k: config.get(k) for k in COMPARED})
    # keys the run does not have (added to the defaults after it) are not changes it made
    lines = [line for line in lines if not line.startswith(IGNORED) and not line.endswith("-> None")]
    return "; ".join(lines) or "(none)"


def row_for(run_dir: Path, variant: str, note: str, command: str | None = None) -> dict:
    metrics = json.loads((run_dir / "metrics_val.json").read_text())
    if metrics.get("split") != "val":
        raise SystemExit(f"{run_dir}/metrics_val.json is not a validation evaluation")
    config = metrics["config"]
    with open(run_dir / "log.csv", newline="") as handle:
        seconds = sum(float(row["seconds"]) for row in csv.DictReader(handle))
    manifest = json.loads((run_dir / "cubes" / "train" / "manifest.json").read_text())
    phases = metrics["phases"].values()
    return {"variant": variant, "detector": config["detector"]["name"], "config_change": config_change(config),
            "val_micro_auc": " / ".join(f"{p['micro_auc']:.4f}" for p in phases),
            "val_macro_auc": " / ".join(f"{p['macro_auc']:.4f}" for p in phases),
            "train_minutes": round(seconds / 60, 1), "train_videos": len(manifest["videos"]),
            "val_videos": ",".join(config["validation"]["videos"]), "note": note,
            "command": command or metrics["command"], "git_commit": metrics["git_commit"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--variant", required=True, help="a short name for this row")
    parser.add_argument("--note", default="", help="why this variant, what it tests")
    parser.add_argument("--csv", type=Path, help="default: results/<config name>/selection.csv")
    parser.add_argument("--command", help="the training command (default: the one metrics_val.json records, "
                                          "which is the re-scoring command after benchmarks/revalidate.py)")
    args = parser.parse_args(argv)
    row = row_for(args.run_dir, args.variant, args.note, args.command)
    name = json.loads((args.run_dir / "metrics_val.json").read_text())["config"].get("name", "run")
    path = args.csv or REPO / "results" / name / "selection.csv"
    rows = []
    if path.is_file():
        with open(path, newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if r["variant"] != args.variant]
    rows.append(row)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    write_bytes(path, text.getvalue().encode())
    print(f"{path}: {row['variant']}: val micro AUC {row['val_micro_auc']} ({row['config_change']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
