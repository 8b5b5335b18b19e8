"""Options shared by the commands: the run's config from the arguments (``--config``, ``--set``...)."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from seqvad.errors import SeqvadError
from seqvad.objects.detectors import detector_names


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


def config_from_args(args) -> dict:
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


def common_config_options(p: argparse.ArgumentParser, dataset: bool = True) -> None:
    p.add_argument("--config", help="a YAML config file or a built-in config name (ped2, avenue, shanghaitech, demo)")
    if dataset:
        p.add_argument("--dataset", help="ped2 | avenue | shanghaitech | folder | synthetic (default: the config's)")
        p.add_argument("--root", help="dataset folder (default: the config's, else $SEQVAD_DATA/<dataset>)")
    p.add_argument("--detector", choices=detector_names(), help="object detector (default: the config's)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.batch_size=128 (repeatable)")
    p.add_argument("--workers", type=int, default=None, help="processes for detection (default: CPU count)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run_dir_of(args, config: dict) -> Path:
    return Path(args.out) if getattr(args, "out", None) else Path("runs") / str(config.get("name", "run"))
