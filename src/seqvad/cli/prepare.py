"""``seqvad prepare``: detect objects and cache the object cubes of a dataset's splits."""

from __future__ import annotations

from seqvad.cli.options import add_safety_options, common_config_options, config_from_args, run_dir_of


def add_prepare(sub) -> None:
    p = sub.add_parser("prepare", help="detect objects and cache 9-frame object cubes",
                       description="Run the detector over every video of a dataset and cache the object "
                                   "cubes of the train and test splits under RUN/cubes/.")
    common_config_options(p)
    p.add_argument("--boxes", help="boxes file for --detector precomputed")
    p.add_argument("--out", help="run folder (default: runs/<config name>)")
    add_safety_options(p)
    p.set_defaults(func=cmd_prepare)


def cmd_prepare(args) -> int:
    from seqvad import pipeline
    from seqvad.runfolder import claim

    config = config_from_args(args)
    run_dir = run_dir_of(args, config)
    train, test, _ = pipeline.load_videos(config)
    # a trained run's cubes may be rebuilt only with the settings it was trained with
    with claim(run_dir, config, "prepare", fresh=args.fresh, continue_run=True) as run:
        pipeline.prepare(config, run_dir, {"train": train, "test": test}, workers=args.workers,
                         progress=not args.quiet, keep=run.trained)
        pipeline.save_labels(run_dir, test)
    return 0
