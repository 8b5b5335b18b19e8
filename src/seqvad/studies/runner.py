"""Run a study: every (variant, seed) once, each written to its own JSON as it finishes.

Resumable at two levels: a finished run's ``OUT/NAME/<variant>-seed<k>.json`` is skipped (so a
study stopped anywhere continues where it was, on this or another machine: copy the JSONs), and
an interrupted run resumes from its last checkpoint in its work folder (``WORK/<variant>-seed<k>``,
a normal run folder of ``seqvad experiment``). The cubes are detected once, in ``WORK/prepared``,
and hard-linked into every run folder. A run shared by two studies (the default curriculum is
in ``orders`` and ``phases``) trains once: its JSON is copied when its settings are the same.

Several processes can share a study: ``shard=(k, n)`` takes every n-th run starting at k.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from seqvad import pipeline
from seqvad.atomic import write_json
from seqvad.config import deep_merge, load_config
from seqvad.errors import ConfigError, DataError
from seqvad.provenance import command_line
from seqvad.runfolder import RunFolderInUse, claim, link_tree
from seqvad.studies.plan import BUDGET, BUDGET_TEXT, Study, Variant

WAIT_FOR_PREPARE_SECONDS = 3600  # the first detection of a dataset can take this long on 2 cores


def run_path(out_dir: Path, study: Study, variant: Variant, seed: int) -> Path:
    return Path(out_dir) / study.name / f"{variant.name}-seed{seed}.json"


def run_overrides(variant: Variant, seed: int, threads: int | None) -> dict[str, Any]:
    """Everything a study run sets over its base config: the budget, the variant, the seed."""
    overrides = deep_merge(BUDGET, variant.overrides)
    overrides = deep_merge(overrides, {"train": {"seed": int(seed)}})
    if threads:
        overrides["train"]["threads"] = int(threads)
    return overrides


def _same_settings(a: dict, b: dict) -> bool:
    strip = lambda o: {**o, "train": {k: v for k, v in o.get("train", {}).items() if k != "threads"}}  # noqa: E731
    return strip(a) == strip(b)


def plan_jobs(study: Study, seeds: Sequence[int], shard: tuple[int, int] = (0, 1)) -> list[tuple[int, Variant]]:
    """Seed-major, so that a study cut short holds every variant at its first seeds."""
    k, n = shard
    if not 0 <= k < n:
        raise ConfigError(f"--shard {k}/{n}: expected K/N with 0 <= K < N")
    jobs = [(seed, variant) for seed in seeds for variant in study.variants]
    return [job for i, job in enumerate(jobs) if i % n == k]


def prepare_once(config: dict, work_dir: Path, workers: int | None, progress: bool) -> Path:
    """Detect and cut the cubes of both splits once, in ``WORK/prepared``."""
    prepared = Path(work_dir) / "prepared"
    for _ in range(WAIT_FOR_PREPARE_SECONDS // 5):
        try:
            with claim(prepared, config, "prepare", continue_run=True):
                train_videos, test_videos, label_source = pipeline.load_videos(config)
                config.setdefault("data", {})["label_source"] = label_source
                pipeline.prepare(config, prepared, {"train": train_videos, "test": test_videos}, workers=workers,
                                 progress=progress)
                pipeline.save_labels(prepared, test_videos)
            return prepared
        except RunFolderInUse:  # another shard is preparing (or checking) the same cubes: wait for it
            time.sleep(5)
    raise RunFolderInUse(f"{prepared}: still in use after {WAIT_FOR_PREPARE_SECONDS} s")


def run_study(study: Study, base: str, root: str | None, out_dir: Path, work_dir: Path,
              seeds: Sequence[int], shard: tuple[int, int] = (0, 1), threads: int | None = 1,
              workers: int | None = None, progress: bool = False, log=print) -> list[Path]:
    """Run every missing (variant, seed) of ``study`` on config ``base``; returns the JSON paths."""
    from seqvad.experiment import run_experiment

    out_dir, work_dir = Path(out_dir), Path(work_dir)
    base_config = load_config(base, {"data": {"root": root}} if root else None)
    prepared = prepare_once(copy.deepcopy(base_config), work_dir, workers, progress)  # it notes the label source
    jobs = plan_jobs(study, seeds, shard)
    written = []
    for number, (seed, variant) in enumerate(jobs, 1):
        path = run_path(out_dir, study, variant, seed)
        overrides = run_overrides(variant, seed, threads)
        tag = f"[{number}/{len(jobs)}] {study.name} {variant.name} seed {seed}"
        if path.exists():
            log(f"{tag}: done before ({path})")
            written.append(path)
            continue
        if copy_finished(out_dir, study, variant, seed, overrides, path):
            log(f"{tag}: the same run was done for another study; copied")
            written.append(path)
            continue
        run_dir = work_dir / f"{variant.name}-seed{seed}"
        if not (run_dir / "cubes").exists():
            link_tree(prepared / "cubes", run_dir / "cubes")
        config = deep_merge(base_config, overrides)
        log(f"{tag}: training ({variant.label})")
        started = time.perf_counter()
        with claim(run_dir, config, "study", continue_run=True) as run:
            result = run_experiment(config, run_dir, progress=progress, workers=workers, keep_cubes=run.trained)
        seconds = time.perf_counter() - started
        record = run_record(study, variant, seed, base, overrides, run_dir, result, seconds)
        write_labels(out_dir / study.name / "labels.json", run_dir)
        write_json(path, record)
        written.append(path)
        aucs = ", ".join(f"{name} {phase['micro_auc']:.4f}" for name, phase in record["phases"].items())
        log(f"{tag}: {aucs or 'no phase scored'} ({seconds:.0f} s)")
    return written


def run_record(study: Study, variant: Variant, seed: int, base: str, overrides: dict, run_dir: Path,
               result: dict, seconds: float) -> dict:
    """The JSON of one finished run: its settings, per-phase metrics and frame scores."""
    _, _, scores = pipeline.read_scores_csv(run_dir / "scores.csv")
    phases = {name: {key: phase.get(key) for key in ("micro_auc", "macro_auc", "eer", "rbdc", "tbdc", "tasks", "score")
                     if phase.get(key) is not None}
              for name, phase in result["phases"].items()}
    return {"study": study.name, "variant": variant.name, "label": variant.label, "seed": int(seed),
            "base_config": base, "overrides": overrides, "budget": BUDGET_TEXT,
            "command": command_line(), "git_commit": result["git_commit"], "machine": result["machine"],
            "wall_seconds": round(seconds, 1), "run_dir": str(run_dir), "config": result["config"],
            "phases": phases, "unscored_phases": result.get("unscored_phases", {}),
            "frame_scores": {name: [float(f"{v:.6g}") for v in values] for name, values in scores.items()}}


def copy_finished(out_dir: Path, study: Study, variant: Variant, seed: int, overrides: dict, path: Path) -> bool:
    """Copy the JSON of the same run (same variant, seed and settings) made for another study."""
    for other in sorted(Path(out_dir).glob(f"*/{variant.name}-seed{seed}.json")):
        if other == path:
            continue
        record = json.loads(other.read_text())
        if _same_settings(record.get("overrides", {}), overrides) and (other.parent / "labels.json").exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_labels(path.parent / "labels.json", source=other.parent / "labels.json")
            write_json(path, {**record, "study": study.name})
            return True
    return False


def write_labels(path: Path, run_dir: Path | None = None, source: Path | None = None) -> None:
    """The study's frame labels (the same for every run): written once, checked after."""
    if source is not None:
        labels = json.loads(Path(source).read_text())
    else:
        videos, frame_labels, _ = pipeline.read_scores_csv(Path(run_dir) / "scores.csv")
        labels = {"videos": videos, "labels": [int(v) for v in frame_labels]}
    if path.exists():
        if json.loads(path.read_text()) != labels:
            raise DataError(f"{path}: these runs were scored on other frames than the study's earlier runs")
        return
    write_json(path, labels, indent=None)


def load_runs(out_dir: Path, study: Study) -> tuple[dict | None, dict[str, list[dict]]]:
    """The study's labels and its finished runs per variant (sorted by seed)."""
    folder = Path(out_dir) / study.name
    labels_path = folder / "labels.json"
    labels = json.loads(labels_path.read_text()) if labels_path.exists() else None
    runs: dict[str, list[dict]] = {variant.name: [] for variant in study.variants}
    for variant in study.variants:
        for path in sorted(folder.glob(f"{variant.name}-seed*.json")):
            runs[variant.name].append(json.loads(path.read_text()))
        runs[variant.name].sort(key=lambda record: record["seed"])
    return labels, runs


def frame_scores(record: dict, phase: str) -> np.ndarray | None:
    values = record.get("frame_scores", {}).get(phase)
    return None if values is None else np.asarray(values, dtype=float)


def last_phase(record: dict) -> str:
    return sorted(record["phases"], key=lambda name: int("".join(filter(str.isdigit, name)) or 0))[-1]
