"""``seqvad demo`` and ``seqvad experiment NAME``: prepare + train + evaluate in one run folder."""

from __future__ import annotations

from pathlib import Path

from seqvad.cli.evaluate import print_phase_table
from seqvad.cli.options import add_safety_options, config_from_args
from seqvad.objects.detectors import detector_names


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
    from seqvad.experiment import run_experiment

    from seqvad.devices import device_name
    from seqvad.runfolder import claim

    args.config = "demo_quick" if args.quick else "demo"
    config = config_from_args(args)
    device_name(config["train"].get("device"))
    run_dir = Path(args.out) if args.out else Path("runs") / ("demo-quick" if args.quick else "demo")
    with claim(run_dir, config, "demo", fresh=True):  # the demo always starts afresh: an older one is moved aside
        result = run_experiment(config, run_dir, progress=not args.quiet)
    print_phase_table(result)
    print(f"report: {run_dir / 'report'}  scores: {run_dir / 'scores.csv'}  metrics: {run_dir / 'metrics.json'}")
    return 0


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
    p.add_argument("--validate", action="store_true",
                   help="a model-selection run: hold out validation.videos, train on the rest and "
                        "evaluate on them with injected anomalies (the test split is not touched)")
    p.add_argument("--quiet", action="store_true")
    add_safety_options(p)
    p.set_defaults(func=cmd_experiment)


def cmd_experiment(args) -> int:
    from seqvad.devices import device_name
    from seqvad.experiment import run_experiment
    from seqvad.runfolder import claim

    args.config = args.name
    config = config_from_args(args)
    suffix = f"-{args.detector.replace('+', '_')}" if args.detector else ""
    run_dir = Path(args.out) if args.out else Path("runs") / f"{config.get('name', args.name)}{suffix}"
    device_name(config["train"].get("device"))  # a GPU this machine lacks: say so before detecting
    # an interrupted run resumes, with the settings it was started with
    with claim(run_dir, config, "experiment", fresh=args.fresh, continue_run=True) as run:
        result = run_experiment(config, run_dir, progress=not args.quiet, workers=args.workers,
                                validate=args.validate, keep_cubes=run.trained)
    print_phase_table(result)
    print(f"metrics: {run_dir / ('metrics_val.json' if args.validate else 'metrics.json')}")
    return 0
