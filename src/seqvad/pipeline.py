"""Glue for the run folder: dataset -> cube caches -> training -> evaluation.

A run folder holds everything one experiment makes::

    RUN/config.yaml              the resolved config
    RUN/cubes/{train,test}/      cube caches (reused while the detector/cube config is unchanged)
    RUN/checkpoints/phaseK.pt    the model after each phase (plus last.pt for resuming)
    RUN/log.csv, log.json        losses per epoch
    RUN/scores.csv, metrics.json evaluation of every phase on the test split
    RUN/report/*.png             score curves per phase

The modules it calls know nothing of each other; this is the only place that does.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from seqvad.atomic import replacing, write_bytes, write_json
from seqvad.errors import DataError
from seqvad.progress import Progress
from seqvad.provenance import command_line, git_commit, machine  # noqa: F401  (public here too)


# -- datasets ---------------------------------------------------------------------------------

def load_videos(config: dict) -> tuple[list, list, str]:
    """Train and test videos named by ``config['data']``; the synthetic scene is built in."""
    data = config["data"]
    name = data.get("dataset")
    if name in (None, "synthetic"):
        from seqvad.data.synthetic import make_scene, scene_from_config

        train, test = make_scene(scene_from_config(data))
        seed = f", seed {data['scene_seed']}" if data.get("scene_seed") is not None else ""
        return train, test, f"synthetic scene '{data.get('scene', 'demo')}'{seed}"
    from seqvad.data.datasets import load_dataset

    dataset = load_dataset(name, data.get("root"), avenue_labels=data.get("avenue_labels", "masks"),
                           labels=data.get("labels"))
    return dataset.train, dataset.test, dataset.label_source


# -- cubes ------------------------------------------------------------------------------------

def prepare(config: dict, run_dir: Path, videos: dict[str, Sequence], workers: int | None = None,
            progress: bool = True, keep: bool = False) -> dict[str, Any]:
    """Cube caches for the given splits (``{'train': videos, 'test': videos}``) under RUN/cubes;
    ``keep``: the run folder holds a trained run, whose caches must not be rebuilt."""
    from seqvad.objects.prepare import prepare_split

    config = with_resolved_root(config)
    return {split: prepare_split(list(split_videos), config, Path(run_dir) / "cubes" / split, workers=workers,
                                 progress=progress, split=split, keep=keep)
            for split, split_videos in videos.items()}


def prepare_validation(config: dict, run_dir: Path, train_videos: Sequence, workers: int | None = None,
                       progress: bool = True) -> tuple[list, dict]:
    """Hold out ``validation.videos`` and build the labelled validation split under RUN/cubes/val.

    Returns the training videos that stay for training and the config to prepare them with.
    With precomputed boxes a whole-split boxes file no longer matches the reduced training
    split, so the boxes of both are written as CSV under RUN/cubes/ (``{train,val}_boxes.csv``)
    and the returned config points there; the held-out videos' boxes follow their frames, plus
    the box of any injected object, as a perfect detector would see it."""
    from seqvad.data.validation import Settings, injected_boxes, make_validation, split_held_out
    from seqvad.objects.prepare import prepare_split

    config = with_resolved_root(config)
    settings = Settings.from_config(config.get("validation"))
    kept, held = split_held_out(list(train_videos), settings)
    val_videos = make_validation(held, settings)
    run_dir = Path(run_dir)
    if config["detector"].get("name") == "precomputed":
        from seqvad.objects.detectors import load_box_file
        from seqvad.objects.prepare import resolve_boxes_path

        train_boxes = load_box_file(resolve_boxes_path(config, "train"), [(v.name, len(v)) for v in train_videos])
        by_name = dict(zip((v.name for v in train_videos), train_boxes))
        files = {split: (run_dir / "cubes" / f"{split}_boxes.csv").resolve() for split in ("train", "val")}
        write_boxes_csv(files["train"], {v.name: by_name[v.name] for v in kept})
        write_boxes_csv(files["val"], {val.name: injected_boxes(val, by_name[val.name.rsplit("-val", 1)[0]])
                                       for val in val_videos})
        config = {**config, "detector": {**config["detector"],
                                         "boxes": {split: str(path) for split, path in files.items()}}}
    prepare_split(val_videos, config, run_dir / "cubes" / "val", workers=workers, progress=progress, split="val")
    save_labels(run_dir, val_videos, split="val")
    return kept, config


def write_boxes_csv(path: Path, boxes: dict[str, list[np.ndarray]]) -> None:
    """Boxes per video and frame in the CSV layout the precomputed detector reads."""
    import csv
    import io

    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["video", "frame", "x1", "y1", "x2", "y2"])
    for name, frames in boxes.items():
        for frame, rows in enumerate(frames):
            writer.writerows([name, frame, *(f"{v:.2f}" for v in row[:4])] for row in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, text.getvalue().encode())


def with_resolved_root(config: dict) -> dict:
    """``data.root`` filled in from ``$SEQVAD_DATA`` when the config leaves it empty."""
    data = config.get("data") or {}
    if data.get("root") or data.get("dataset") in (None, "synthetic"):
        return config
    from seqvad.data.datasets import resolve_root

    return {**config, "data": {**data, "root": str(resolve_root(data["dataset"], None))}}


def load_store(run_dir: Path, split: str):
    from seqvad.objects.cubes import CubeStore

    path = Path(run_dir) / "cubes" / split
    if not path.is_dir():
        raise DataError(f"{path}: no cube cache (run `seqvad prepare` or `seqvad train` first)")
    return CubeStore.load(path)


def read_run_config(run_dir: Path) -> dict:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise DataError(f"{run_dir}: not a run folder (no config.yaml)")
    return yaml.safe_load(path.read_text())


# -- training ---------------------------------------------------------------------------------

def train(config: dict, run_dir: Path, resume: bool = False, progress: bool = True) -> dict:
    from seqvad.train import Trainer

    store = load_store(run_dir, "train")
    trainer = Trainer(config, store.cubes, Path(run_dir), progress=progress)
    return trainer.fit(resume=resume)


# -- evaluation -------------------------------------------------------------------------------

def phase_checkpoints(run_dir: Path) -> list[Path]:
    folder = Path(run_dir) / "checkpoints"
    found = sorted(folder.glob("phase*.pt"), key=lambda p: int("".join(filter(str.isdigit, p.stem)) or 0))
    if not found:
        raise DataError(f"{folder}: no phase checkpoints (train first)")
    return found


def evaluate(run_dir: Path, device: str = "cpu", progress: bool = True, report: bool = True,
             overrides: dict | None = None, split: str = "test", every_epoch: bool = False) -> dict:
    """Score a split with every phase's checkpoint; write scores.csv and metrics.json (for the
    test split) or scores_val.csv and metrics_val.json (``split="val"``, the validation split).

    ``overrides`` (e.g. ``{"scoring": {"context": {"enabled": True}}}``) change how the run is
    scored, not what it learned; metrics.json records the config as used.

    ``every_epoch``: also score every epoch's checkpoint (``train.keep_epoch_checkpoints``) and
    report the best by this split's labels under ``oracle_best_epoch``: the paper's protocol
    ("record the best performance" of 80 epochs), which chooses by test labels. It is never the
    headline: the phase figures above it are the honest last-epoch ones."""
    from seqvad import scoring
    from seqvad.config import deep_merge
    from seqvad.checkpoint import load_model

    run_dir = Path(run_dir)
    config = deep_merge(read_run_config(run_dir), overrides or {})
    store = load_store(run_dir, split)
    labels = test_labels(run_dir, store, split)
    train_store = load_store(run_dir, "train")
    phases: dict[str, dict] = {}
    columns: dict[str, np.ndarray] = {}
    scorer = scoring.Scorer(config.get("scoring"), device=device).fit_context(train_store.cubes, train_store.index)
    context_scores = scorer.context_scores(store.cubes, store.index)  # the same for every phase
    extra: dict[str, Any] = {}
    truth = region_truth(config, store) if split == "test" else None
    if truth is not None:
        extra["region_truth"] = {"regions": truth.regions, "tracks": truth.tracks,
                                 "rule": "regions: 8-connected mask components (boxes); tracks: "
                                         "overlapping boxes of consecutive frames linked one to one"}
    if context_scores is not None:  # the context score alone
        raw, smoothed = scorer.frame_scores(context_scores, store.index, store.frame_counts)
        extra["context_only"] = {**scoring.evaluate_scores(labels, smoothed).as_dict(),
                                 "micro_auc_unsmoothed": scoring.micro_auc(labels, raw)}
    checkpoints = phase_checkpoints(run_dir)
    bar = Progress(len(checkpoints), f"evaluate {run_dir.name}", "checkpoint", enabled=progress)
    unscored: dict[str, str] = {}
    for path in checkpoints:
        started = time.perf_counter()
        model, _, info = load_model(path, map_location=device)
        model.to(device)
        tasks = info.get("tasks") if isinstance(info, dict) else None
        phase_scorer = scorer_for_tasks(scorer, config, tasks, device, train_store)
        if phase_scorer is None:
            unscored[path.stem] = f"trained {'+'.join(tasks)} only: no prediction or reconstruction error to score by"
            bar.update(1, item=f"{path.stem} not scored ({unscored[path.stem]})")
            continue
        terms, scores = score_with(phase_scorer, model, train_store, store, context_scores)
        raw, smoothed = phase_scorer.frame_scores(scores, store.index, store.frame_counts)
        metrics = scoring.evaluate_scores(labels, smoothed).as_dict()
        metrics["micro_auc_unsmoothed"] = scoring.micro_auc(labels, raw)
        if tasks and "pre" not in tasks:
            metrics["score"] = "reconstruction error (the phase trains no prediction head)"
        else:
            if phase_scorer is not scorer:
                metrics["score"] = (f"{' + '.join(phase_scorer.weighted_terms)} (the other terms' heads are "
                                    "not trained in this phase)")
            if not phase_scorer.paper_score:  # the paper's score alone (raw prediction errors), for comparison
                _, alone = phase_scorer.frame_scores(terms["pre"], store.index, store.frame_counts, normalised=False)
                metrics["prediction_only"] = scoring.evaluate_scores(labels, alone).as_dict()
        if truth is not None:
            metrics.update(region_scores(truth, store, scores))
        metrics["score_seconds"] = round(time.perf_counter() - started, 2)
        metrics["checkpoint"] = path.name
        metrics["tasks"] = info.get("tasks") if isinstance(info, dict) else None
        phases[path.stem] = metrics
        columns[f"{path.stem}_raw"] = np.concatenate(raw)
        columns[f"{path.stem}_smoothed"] = np.concatenate(smoothed)
        bar.update(1, item=f"{path.stem} micro AUC {metrics['micro_auc']:.4f} ({len(store.cubes)} cubes)")
    bar.close()
    if unscored:
        extra["unscored_phases"] = unscored
    if every_epoch:
        extra["oracle_best_epoch"] = oracle_best_epoch(run_dir, store, labels, scorer, context_scores)
    suffix = "" if split == "test" else f"_{split}"
    write_scores_csv(run_dir / f"scores{suffix}.csv", store, labels, columns)
    result = {"command": command_line(), "run_dir": str(run_dir), "git_commit": git_commit(),
              "machine": machine(), "config": config, "frames": int(sum(store.frame_counts)),
              "split": split, "abnormal_frames": int(sum(int(l.sum()) for l in labels)),
              "objects": int(len(store.cubes)),
              "label_source": store.manifest.get("label_source", "see config"), "phases": phases, **extra}
    write_json(run_dir / f"metrics{suffix}.json", result)
    if report:
        from seqvad.report import score_curves

        score_curves(run_dir / f"report{suffix}", store.videos, labels,
                     {k: np.split(v, np.cumsum(store.frame_counts)[:-1]) for k, v in columns.items()
                      if k.endswith("_smoothed")})
    return result


# the task that trains the head each optional score term reads (seqvad.scoring.errors)
TERM_TASKS = {"rec": "rec", "order": "cls"}


def scorer_for_tasks(scorer, config: dict, tasks, device: str, train_store):
    """The scorer for a checkpoint that trained ``tasks``: ``scorer`` itself when the prediction
    head was trained (or the tasks are unknown), less any term whose head it did not train (the
    order classifier's doubt before phase 3); the reconstruction error, normalised on training
    objects, for a phase that trained ``rec`` but not ``pre`` (the learning-order study's
    Rec-first phases: an untrained prediction head's error means nothing); None when neither
    head was trained (a Cls-only phase, which the paper also leaves unscored)."""
    from seqvad import scoring
    from seqvad.config import deep_merge

    if tasks and "pre" in tasks:
        untrained = [term for term, task in TERM_TASKS.items() if scorer.weights.get(term) and task not in tasks]
        if not untrained:
            return scorer
        # a term whose head this phase never trained would add noise: it scores 0 here
        terms = {**scorer.weights, **{term: 0.0 for term in untrained}}
        partial = scoring.Scorer(deep_merge(config.get("scoring") or {}, {"terms": terms}), device=device)
        return partial.fit_context(train_store.cubes, train_store.index)
    if not tasks:
        return scorer
    if "rec" not in tasks:
        return None
    by_rec = scoring.Scorer(deep_merge(config.get("scoring") or {}, {"terms": {"pre": 0.0, "rec": 1.0}}), device=device)
    return by_rec.fit_context(train_store.cubes, train_store.index)


def region_truth(config: dict, store):
    """Ground-truth regions and tracks of ``store``'s videos from the dataset's pixel masks, or
    None where there are none to read (ShanghaiTech, own footage, a data root no longer there),
    so that region metrics are an extra that never stops an evaluation."""
    from seqvad.errors import SeqvadError
    from seqvad.scoring.regions import truth_from_masks

    try:
        _, test, _ = load_videos(with_resolved_root(config))
    except (SeqvadError, OSError):
        return None
    by_name = {video.name: video for video in test}
    videos = [by_name.get(name) for name in store.videos]
    if not videos or any(v is None or v.mask_fn is None for v in videos):
        return None
    truth = truth_from_masks(zip(store.frame_counts, (v.mask for v in videos)))
    return truth if truth.regions else None


def region_scores(truth, store, scores: np.ndarray) -> dict[str, float]:
    """RBDC and TBDC of the per-object ``scores`` on the boxes of ``store``'s index."""
    from seqvad.scoring.regions import region_metrics

    index = store.index
    boxes = np.stack([index["x1"], index["y1"], index["x2"], index["y2"]], axis=1)
    found = region_metrics(truth, index["video"], index["frame"], boxes, scores)
    return {"rbdc": found["rbdc"], "tbdc": found["tbdc"]}


def score_with(scorer, model, train_store, store, context_scores: np.ndarray | None):
    """The raw terms and object scores of ``store`` by ``model``, the scorer's statistics fitted
    on ``train_store`` first when it needs them (its context model is fitted once, by the caller)."""
    if scorer.needs_stats:
        scorer.fit_terms(model, train_store.cubes)
    if scorer.normalize_by:
        scorer.fit_nuisance(model, train_store.cubes, train_store.index, train_store.frame_counts)
    terms = scorer.terms(model, store.cubes)
    return terms, scorer.normalise_objects(scorer.combine(terms, context_scores), store.index)


def oracle_best_epoch(run_dir: Path, store, labels: list[np.ndarray], scorer,
                      context_scores: np.ndarray | None) -> dict:
    """Every epoch checkpoint scored on ``labels``; the best one named, with a warning."""
    from seqvad import scoring
    from seqvad.checkpoint import load_model

    paths = sorted((Path(run_dir) / "checkpoints" / "epochs").glob("phase*-epoch*.pt"))
    if not paths:
        raise DataError(f"{run_dir}: no epoch checkpoints (train with --set train.keep_epoch_checkpoints=true)")
    train_store = load_store(run_dir, "train") if scorer.needs_stats or scorer.normalize_by else None
    rows = []
    for path in paths:
        model, _, info = load_model(path, map_location=scorer.device)
        _, scores = score_with(scorer, model, train_store, store, context_scores)
        _, smoothed = scorer.frame_scores(scores, store.index, store.frame_counts)
        rows.append({"checkpoint": path.name, "phase": info.get("phase"), "epoch": info.get("epoch"),
                     **scoring.evaluate_scores(labels, smoothed).as_dict()})
    best = max(rows, key=lambda row: row["micro_auc"])
    return {"warning": "chosen by the evaluated split's own labels (the paper's best-epoch protocol); "
                       "an upper bound for comparison with the paper, never a result",
            "checkpoint": best["checkpoint"], "micro_auc": best["micro_auc"], "macro_auc": best["macro_auc"],
            "per_epoch": rows}


def test_labels(run_dir: Path, store, split: str = "test") -> list[np.ndarray]:
    """Frame labels of every video of a split's cube store (saved there by :func:`save_labels`)."""
    path = Path(run_dir) / "cubes" / split / "labels.npz"
    if not path.is_file():
        raise DataError(f"{path}: the {split} split has no frame labels, so it cannot be evaluated")
    with np.load(path, allow_pickle=False) as data:
        if "names" in data:  # video names are data, not keys: any name round-trips
            by_name = {str(name): data[f"video_{i}"] for i, name in enumerate(data["names"])}
        else:  # files written before the names array
            by_name = {name: data[name] for name in data.files}
    missing = [name for name in store.videos if name not in by_name]
    if missing:
        raise DataError(f"{path}: no labels for video(s) {', '.join(missing[:5])}")
    labels = [by_name[name] for name in store.videos]
    for name, lab, n in zip(store.videos, labels, store.frame_counts):
        if len(lab) != n:
            raise DataError(f"{path}: {len(lab)} labels for video {name} with {n} frames")
    return labels


def save_labels(run_dir: Path, videos: Sequence, split: str = "test") -> None:
    """Keep a split's labels beside its cubes so evaluation needs no dataset access."""
    unlabelled = [v.name for v in videos if v.labels is None]
    if len(unlabelled) == len(videos):  # an unlabelled split (own footage): nothing to evaluate
        return
    if unlabelled:  # never drop the labels of the others silently
        raise DataError(f"{split} split: no labels for video(s) {', '.join(unlabelled[:5])}"
                        f"{' and more' if len(unlabelled) > 5 else ''}; label every video or none")
    import io

    buffer = io.BytesIO()
    np.savez(buffer, names=np.array([v.name for v in videos], dtype=str),
             **{f"video_{i}": np.asarray(v.labels) for i, v in enumerate(videos)})
    write_bytes(Path(run_dir) / "cubes" / split / "labels.npz", buffer.getvalue())


def write_scores_csv(path: Path, store, labels: list[np.ndarray], columns: dict[str, np.ndarray]) -> None:
    """One row per frame; the csv module quotes a video name holding a comma or a quote."""
    import csv

    names = [name for name, n in zip(store.videos, store.frame_counts) for _ in range(n)]
    frames = np.concatenate([np.arange(n) for n in store.frame_counts])
    label_flat = np.concatenate(labels)
    values = np.stack(list(columns.values()), axis=1) if columns else np.zeros((len(frames), 0))
    with replacing(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video", "frame", "label", *columns])
        writer.writerows([names[i], int(frames[i]), int(label_flat[i]), *(f"{v:.6g}" for v in values[i])]
                         for i in range(len(frames)))


def read_scores_csv(path: Path) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
    """A ``scores.csv`` back: the video of each frame, its label, and each phase's smoothed
    frame scores (``{"phase1": ...}``)."""
    import csv

    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise DataError(f"{path}: no frames")
    videos = [row["video"] for row in rows]
    labels = np.array([int(row["label"]) for row in rows])
    phases = {key[: -len("_smoothed")]: np.array([float(row[key]) for row in rows])
              for key in rows[0] if key.endswith("_smoothed")}
    return videos, labels, phases
