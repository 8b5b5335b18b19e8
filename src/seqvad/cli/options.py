"""Options shared by the commands: the run's config from the arguments (``--config``, ``--set``...)."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from seqvad.errors import ConfigError
from seqvad.objects.detectors import detector_names


def _parse_value(text: str):
    return yaml.safe_load(text)


def apply_overrides(config: dict, items: list[str], only: str | None = None) -> None:
    """``--set key=value`` items into ``config`` (values parsed as YAML); ``only`` limits the
    keys to one section (e.g. ``scoring`` when evaluating a trained run)."""
    from seqvad.config import set_dotted

    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected key=value, e.g. train.batch_size=128")
        key, value = (part.strip() for part in item.split("=", 1))
        if only and not key.startswith(only + "."):
            raise ConfigError(f"--set {item}: only {only}.* settings can change here (the rest made the "
                              "run's cubes and weights)")
        try:
            set_dotted(config, key, _parse_value(value))
        except ConfigError as exc:
            raise ConfigError(f"--set {item}: {exc}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item}: the value is not valid YAML ({str(exc).splitlines()[0]})") from None


def config_from_args(args) -> dict:
    """The run's config: built-in or file config, then ``--set key=value`` and CLI options."""
    from seqvad.config import load_config

    from seqvad.config_check import validate

    name = getattr(args, "config", None) or getattr(args, "dataset", None) or None
    config = load_config(name)
    apply_overrides(config, getattr(args, "set", None) or [])
    source = f"config {name or 'defaults'}{' with --set' if getattr(args, 'set', None) else ''}"
    validate(config, source)  # before the options below write into its sections
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
    validate(config, source)
    if getattr(args, "allow_pickle", False):
        trust_boxes_files(config)
    return config


def trust_boxes_files(config: dict) -> None:
    """``--allow-pickle``: the run's own boxes files (each split's) may be unpickled, no other file."""
    from seqvad.objects.detectors.precomputed import allow_pickle_for
    from seqvad.objects.prepare import resolve_boxes_path
    from seqvad.pipeline import with_resolved_root

    if not config["detector"].get("boxes"):
        raise ConfigError("--allow-pickle: no boxes file to allow (pass --boxes FILE)")
    resolved = with_resolved_root(config)
    for split in ("train", "test"):
        try:
            allow_pickle_for(resolve_boxes_path(resolved, split))
        except ConfigError:  # a mapping without this split
            pass


def add_safety_options(p: argparse.ArgumentParser, resume: bool = False) -> None:
    """--fresh (move an existing run aside) and --allow-pickle (for the --boxes file only)."""
    p.add_argument("--fresh", "--overwrite", dest="fresh", action="store_true",
                   help="the run folder already holds a run: move it aside to NAME.old-TIMESTAMP (never deleted)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="unpickle the --boxes .npy object array (a pickle can run code: only for a file you "
                        "trust; better, convert it once with `seqvad boxes convert`)")


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
