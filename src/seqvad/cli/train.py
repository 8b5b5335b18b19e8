"""``seqvad train``: train the configured curriculum on a dataset or on a folder of normal footage."""

from __future__ import annotations

from pathlib import Path

from seqvad.cli.options import add_safety_options, common_config_options, config_from_args, run_dir_of


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train the model with the configured curriculum",
                       description="Train on the training split (cubes are prepared first when missing). "
                                   "Checkpoints after every phase; --resume continues an interrupted run.")
    common_config_options(p)
    p.add_argument("--folder", help="train on every video (file or frame folder) in this folder of normal footage")
    p.add_argument("--boxes", help="boxes file for --detector precomputed")
    p.add_argument("--out", help="run folder (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from RUN/checkpoints/last.pt")
    p.add_argument("--device", help="cpu or cuda (default: cpu)")
    add_safety_options(p)
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    from seqvad import pipeline
    from seqvad.devices import device_name
    from seqvad.errors import ConfigError, DataError
    from seqvad.runfolder import claim

    if args.resume and args.fresh:
        raise ConfigError("--resume continues the run in the folder, --fresh moves it aside: choose one")
    config = folder_config(args) if args.folder else config_from_args(args)
    if args.folder:
        from seqvad.data.datasets import list_videos
        from seqvad.data.videos import Video

        train = [Video.open(p) for p in list_videos(Path(args.folder))]
        test: list = []
        config["data"]["dataset"] = "folder"
        config["data"]["root"] = str(Path(args.folder).resolve())
    else:
        train, test, _ = pipeline.load_videos(config)
    run_dir = run_dir_of(args, config)
    device_name(config["train"].get("device"))  # a GPU this machine lacks: say so before detecting
    if args.resume and not (run_dir / "checkpoints" / "last.pt").is_file():
        raise DataError(f"{run_dir}: nothing to resume ({run_dir / 'checkpoints' / 'last.pt'} does not exist)")
    splits = {"train": train, **({"test": test} if test else {})}
    with claim(run_dir, config, "train", fresh=args.fresh, continue_run=args.resume) as run:
        pipeline.prepare(config, run_dir, splits, workers=args.workers, progress=not args.quiet, keep=run.trained)
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


def folder_config(args) -> dict:
    """The config of ``train --folder``: without --config, --detector or --set detector.name, the
    footage detector, exactly as ``seqvad.api.Detector()`` builds it (tested)."""
    from seqvad.config import FOOTAGE_DETECTOR

    config = config_from_args(args)
    chosen = args.config or (args.detector or "").strip() or any(
        item.replace(" ", "").startswith("detector.name=") for item in args.set or [])
    if not chosen:
        config["detector"]["name"] = FOOTAGE_DETECTOR
    return config
