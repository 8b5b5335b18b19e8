"""The ``seqvad`` command line: demo | datasets | prepare | train | evaluate | detect | export | experiment | boxes | study.

One module per command (``datasets``, ``prepare``, ``train``, ``evaluate``, ``detect``, ``demo`` and
``export``, ``experiment``, ``boxes``, ``study``), the shared options in :mod:`seqvad.cli.options`.  Heavy modules (torch,
onnxruntime) are imported inside the commands so that ``--help`` is instant.  Every
:class:`~seqvad.errors.SeqvadError`, and any file-system error (a read-only folder, a full disk),
becomes one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import sys

from seqvad import __version__
from seqvad.cli.boxes import add_boxes
from seqvad.cli.datasets import add_datasets
from seqvad.cli.detect import add_detect
from seqvad.cli.evaluate import add_evaluate
from seqvad.cli.experiment import add_demo, add_experiment
from seqvad.cli.export import add_export
from seqvad.cli.options import apply_overrides, config_from_args  # noqa: F401  (public)
from seqvad.cli.prepare import add_prepare
from seqvad.cli.study import add_study
from seqvad.cli.train import add_train
from seqvad.errors import SeqvadError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqvad",
        description="Video anomaly detection by sequentially learning multiple pretext tasks (ICCV 2023).")
    parser.add_argument("--version", action="version", version=f"seqvad {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add_demo(sub)
    add_datasets(sub)
    add_prepare(sub)
    add_train(sub)
    add_evaluate(sub)
    add_detect(sub)
    add_export(sub)
    add_experiment(sub)
    add_boxes(sub)
    add_study(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from seqvad.progress import configure_logging

    configure_logging(quiet=bool(getattr(args, "quiet", False)))  # progress lines and warnings to stderr
    try:
        return int(args.func(args) or 0)
    except SeqvadError as exc:
        print(f"seqvad: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the file system said no: name the file, not a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"seqvad: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seqvad: interrupted", file=sys.stderr)
        return 130
