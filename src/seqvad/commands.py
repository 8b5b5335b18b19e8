"""The pipeline subcommands of the ``seqvad`` CLI (parsers and their actions)."""

from __future__ import annotations

import argparse
from pathlib import Path

from seqvad.objects.detectors import detector_names


def _common_config_options(p: argparse.ArgumentParser, dataset: bool = True) -> None:
    p.add_argument("--config", help="a YAML config file or a built-in config name (ped2, avenue, shanghaitech, demo)")
    if dataset:
        p.add_argument("--dataset", help="ped2 | avenue | shanghaitech | folder | synthetic (default: the config's)")
        p.add_argument("--root", help="dataset folder (default: the config's, else $SEQVAD_DATA/<dataset>)")
    p.add_argument("--detector", choices=detector_names(), help="object detector (default: the config's)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.batch_size=128 (repeatable)")
    p.add_argument("--workers", type=int, default=None, help="processes for detection (default: CPU count)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _config(args) -> dict:
    from seqvad.cli import _config_from_args

    return _config_from_args(args)


def _run_dir(args, config: dict) -> Path:
    return Path(args.out) if getattr(args, "out", None) else Path("runs") / str(config.get("name", "run"))


# -- demo -------------------------------------------------------------------------------------

def add_demo(sub) -> None:
    p = sub.add_parser("demo", help="the built-in demo: synthetic scene -> train -> evaluate every phase",
                       description="Build the synthetic surveillance scene, prepare object cubes (motion "
                                   "detector), train the paper's curriculum, evaluate every phase, write a report.")
    p.add_argument("--quick", action="store_true", help="a tiny scene that runs in under a minute")
    p.add_argument("--out", help="run folder (default: runs/demo or runs/demo-quick)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value (repeatable)")
    p.add_argument("--device", help="cpu or cuda (default: cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from seqvad.cli import _config_from_args

    args.config = "demo_quick" if args.quick else "demo"
    config = _config_from_args(args)
    run_dir = Path(args.out) if args.out else Path("runs") / ("demo-quick" if args.quick else "demo")
    result = run_experiment(config, run_dir, progress=not args.quiet, fresh=True)
    print_phase_table(result)
    print(f"report: {run_dir / 'report'}  scores: {run_dir / 'scores.csv'}  metrics: {run_dir / 'metrics.json'}")
    return 0


def print_phase_table(result: dict) -> None:
    """AUC per phase; with motion context on, also the paper's score alone and the context alone."""
    def row(label: str, m: dict) -> None:
        print(f"{label:<40}{m['micro_auc']:>10.4f}{m['macro_auc']:>11.4f}{m['eer']:>8.4f}")

    context = "context_only" in result
    print(f"\n{'phase' + (' (prediction error + motion context)' if context else ''):<40}"
          f"{'micro AUC':>10}{'macro AUC':>11}{'EER':>8}")
    for name, m in result["phases"].items():
        row(f"{name} {'+'.join(m.get('tasks') or [])}", m)
    if context:
        print("prediction error alone (the paper's score):")
        for name, m in result["phases"].items():
            row(f"  {name}", m["prediction_only"])
        row("motion context alone", result["context_only"])


def run_experiment(config: dict, run_dir: Path, progress: bool = True, fresh: bool = False,
                   workers: int | None = None) -> dict:
    """prepare -> train -> evaluate in one run folder; resumes an interrupted run unless ``fresh``."""
    import shutil

    from seqvad import pipeline

    run_dir = Path(run_dir)
    if fresh and (run_dir / "checkpoints").exists():
        shutil.rmtree(run_dir / "checkpoints")
        for name in ("log.csv", "log.json", "metrics.json", "scores.csv"):
            (run_dir / name).unlink(missing_ok=True)
    train_videos, test_videos, label_source = pipeline.load_videos(config)
    config.setdefault("data", {})["label_source"] = label_source
    pipeline.prepare(config, run_dir, {"train": train_videos, "test": test_videos}, workers=workers,
                     progress=progress)
    pipeline.save_labels(run_dir, test_videos)
    resume = (run_dir / "checkpoints" / "last.pt").exists()
    pipeline.train(config, run_dir, resume=resume, progress=progress)
    return pipeline.evaluate(run_dir, device=config["train"].get("device", "cpu"), progress=progress)


# -- prepare ----------------------------------------------------------------------------------

def add_prepare(sub) -> None:
    p = sub.add_parser("prepare", help="detect objects and cache 9-frame object cubes",
                       description="Run the detector over every video of a dataset and cache the object "
                                   "cubes of the train and test splits under RUN/cubes/.")
    _common_config_options(p)
    p.add_argument("--boxes", help="boxes file for --detector precomputed")
    p.add_argument("--out", help="run folder (default: runs/<config name>)")
    p.set_defaults(func=cmd_prepare)


def cmd_prepare(args) -> int:
    from seqvad import pipeline

    config = _config(args)
    run_dir = _run_dir(args, config)
    train, test, _ = pipeline.load_videos(config)
    pipeline.prepare(config, run_dir, {"train": train, "test": test}, workers=args.workers, progress=not args.quiet)
    pipeline.save_labels(run_dir, test)
    return 0


# -- train ------------------------------------------------------------------------------------

def add_train(sub) -> None:
    p = sub.add_parser("train", help="train the model with the configured curriculum",
                       description="Train on the training split (cubes are prepared first when missing). "
                                   "Checkpoints after every phase; --resume continues an interrupted run.")
    _common_config_options(p)
    p.add_argument("--folder", help="train on every video (file or frame folder) in this folder of normal footage")
    p.add_argument("--boxes", help="boxes file for --detector precomputed")
    p.add_argument("--out", help="run folder (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from RUN/checkpoints/last.pt")
    p.add_argument("--device", help="cpu or cuda (default: cpu)")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    from seqvad import pipeline

    config = _config(args)
    if args.folder:
        from seqvad.data.datasets import list_videos
        from seqvad.data.videos import Video

        if args.config is None and not (args.detector or "").strip():
            config["detector"]["name"] = "yolox+motion"
        train = [Video.open(p) for p in list_videos(Path(args.folder))]
        test: list = []
        config["data"]["dataset"] = "folder"
        config["data"]["root"] = str(Path(args.folder).resolve())
    else:
        train, test, _ = pipeline.load_videos(config)
    run_dir = _run_dir(args, config)
    splits = {"train": train, **({"test": test} if test else {})}
    pipeline.prepare(config, run_dir, splits, workers=args.workers, progress=not args.quiet)
    if test:
        pipeline.save_labels(run_dir, test)
    summary = pipeline.train(config, run_dir, resume=args.resume, progress=not args.quiet)
    print(f"trained: {run_dir}  checkpoints: {run_dir / 'checkpoints'}")
    if args.folder and summary is not None:
        # one file for `seqvad detect RUN/model.pt INPUT`: weights, config and alarm threshold
        from seqvad.api import Detector

        model_file = Detector.from_run(run_dir, device=config["train"].get("device")).save(run_dir / "model.pt")
        print(f"model: {model_file}  (next: seqvad detect {model_file} VIDEO)")
    return 0 if summary is not None else 1


# -- evaluate ---------------------------------------------------------------------------------

def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="score the test split with every phase's checkpoint",
                       description="Writes RUN/scores.csv (per frame, per phase) and RUN/metrics.json "
                                   "(micro/macro AUC and EER per phase) and score-curve plots.")
    p.add_argument("run_dir", help="a run folder made by `seqvad train`")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--no-report", action="store_true", help="skip the plots")
    p.add_argument("--set", action="append", default=[], metavar="scoring.KEY=VALUE",
                   help="change a scoring setting for this evaluation, e.g. scoring.context.enabled=true "
                        "(recorded in metrics.json; repeatable)")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args) -> int:
    from seqvad import pipeline
    from seqvad.cli import apply_overrides

    scoring: dict = {}
    apply_overrides(scoring, args.set, only="scoring")
    result = pipeline.evaluate(Path(args.run_dir), device=args.device, report=not args.no_report,
                               overrides=scoring)
    print_phase_table(result)
    return 0


# -- experiment -------------------------------------------------------------------------------

def add_experiment(sub) -> None:
    p = sub.add_parser("experiment", help="prepare + train + evaluate a benchmark from nothing (resumable)",
                       description="One command for a benchmark: prepares cubes, trains the configured "
                                   "curriculum (resuming an interrupted run) and evaluates every phase.")
    p.add_argument("name", help="a built-in config (ped2, avenue, shanghaitech, demo) or a YAML file")
    p.add_argument("--root", help="dataset folder (default: the config's, else $SEQVAD_DATA/<dataset>)")
    p.add_argument("--detector", choices=detector_names(), help="object detector (default: the config's)")
    p.add_argument("--boxes", help="boxes file for --detector precomputed ('{split}' in the name becomes train/test)")
    p.add_argument("--out", help="run folder (default: runs/<name>[-<detector>])")
    p.add_argument("--device", help="cpu or cuda")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value (repeatable)")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--fresh", action="store_true", help="discard earlier checkpoints in the run folder")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_experiment)


def cmd_experiment(args) -> int:
    args.config = args.name
    config = _config(args)
    suffix = f"-{args.detector.replace('+', '_')}" if args.detector else ""
    run_dir = Path(args.out) if args.out else Path("runs") / f"{config.get('name', args.name)}{suffix}"
    result = run_experiment(config, run_dir, progress=not args.quiet, fresh=args.fresh, workers=args.workers)
    print_phase_table(result)
    print(f"metrics: {run_dir / 'metrics.json'}")
    return 0


def add_detect(sub) -> None:
    """``seqvad detect`` is registered by :mod:`seqvad.detect` once a trained model exists."""
    try:
        from seqvad.detect import add_parser
    except ImportError:
        return
    add_parser(sub)
