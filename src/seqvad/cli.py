"""The ``seqvad`` command line: demo | datasets | prepare | train | evaluate | detect | experiment.

Heavy modules (torch, onnxruntime) are imported inside the commands so that ``--help`` is
instant.  Every :class:`~seqvad.errors.SeqvadError` becomes one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import sys

import yaml

from seqvad import __version__
from seqvad.errors import SeqvadError


def _parse_value(text: str):
    return yaml.safe_load(text)


def apply_overrides(config: dict, items: list[str], only: str | None = None) -> None:
    """``--set key=value`` items into ``config`` (values parsed as YAML); ``only`` limits the
    keys to one section (e.g. ``scoring`` when evaluating a trained run)."""
    from seqvad.config import set_dotted

    for item in items:
        if "=" not in item:
            raise SeqvadError(f"--set {item}: expected key=value, e.g. train.batch_size=128")
        key, value = (part.strip() for part in item.split("=", 1))
        if only and not key.startswith(only + "."):
            raise SeqvadError(f"--set {item}: only {only}.* settings can change here (the rest made the "
                              "run's cubes and weights)")
        set_dotted(config, key, _parse_value(value))


def _config_from_args(args) -> dict:
    """The run's config: built-in or file config, then ``--set key=value`` and CLI options."""
    from seqvad.config import load_config

    config = load_config(getattr(args, "config", None) or getattr(args, "dataset", None) or None)
    apply_overrides(config, getattr(args, "set", None) or [])
    if getattr(args, "detector", None):
        config["detector"]["name"] = args.detector
    if getattr(args, "boxes", None):
        config["detector"]["boxes"] = str(args.boxes)
    if getattr(args, "device", None):
        config["train"]["device"] = args.device
    if getattr(args, "root", None):
        config["data"]["root"] = str(args.root)
    if getattr(args, "dataset", None):
        config["data"]["dataset"] = args.dataset
    return config


# -- datasets ---------------------------------------------------------------------------------

def cmd_datasets_check(args) -> int:
    from seqvad.data.datasets import load_dataset

    dataset = load_dataset(args.dataset, args.root, avenue_labels=args.avenue_labels, labels=args.labels)
    problems = 0
    print(f"dataset {dataset.name} at {dataset.root}")
    print(f"test labels: {dataset.label_source}")
    for split, videos in (("train", dataset.train), ("test", dataset.test)):
        frames = abnormal = 0
        for video in videos:
            try:
                if args.decode:
                    video.check()
                n = len(video)
            except SeqvadError as exc:
                print(f"  ERROR {exc}")
                problems += 1
                continue
            frames += n
            label_text = "no labels" if video.labels is None else f"{int(video.labels.sum())} abnormal"
            abnormal += 0 if video.labels is None else int(video.labels.sum())
            if args.verbose:
                print(f"  {split} {video.name}: {n} frames, {label_text}")
        print(f"{split}: {len(videos)} videos, {frames} frames, {abnormal} abnormal")
    if problems:
        print(f"{problems} problem(s) found", file=sys.stderr)
        return 1
    return 0


# -- parser -----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqvad",
        description="Video anomaly detection by sequentially learning multiple pretext tasks (ICCV 2023).")
    parser.add_argument("--version", action="version", version=f"seqvad {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from seqvad import commands  # the heavier commands live there

    commands.add_demo(sub)

    ds = sub.add_parser("datasets", help="inspect benchmark datasets", description="Inspect datasets.")
    ds_sub = ds.add_subparsers(dest="datasets_command", required=True, metavar="ACTION")
    check = ds_sub.add_parser("check", help="print per-split frame and label counts; exit 1 on inconsistency",
                              description="Load a dataset, check frames and labels, print counts.")
    check.add_argument("--dataset", required=True, help="ped2 | avenue | shanghaitech | folder")
    check.add_argument("--root", help="dataset folder (default: $SEQVAD_DATA/<dataset>)")
    check.add_argument("--labels", help="use this test label file instead of the default one")
    check.add_argument("--avenue-labels", default="masks", choices=["masks", "intervals"],
                       help="Avenue label convention (default: masks)")
    check.add_argument("--no-decode", dest="decode", action="store_false",
                       help="skip decoding every frame (faster; misses damaged files and mixed sizes)")
    check.add_argument("-v", "--verbose", action="store_true", help="one line per video")
    check.set_defaults(func=cmd_datasets_check)

    commands.add_prepare(sub)
    commands.add_train(sub)
    commands.add_evaluate(sub)
    commands.add_detect(sub)
    commands.add_experiment(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SeqvadError as exc:
        print(f"seqvad: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seqvad: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
