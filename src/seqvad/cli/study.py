"""``seqvad study NAME``: one of the paper's studies with seeds, resumable, and its report."""

from __future__ import annotations

import sys
from pathlib import Path

from seqvad.errors import ConfigError


def add_study(sub) -> None:
    from seqvad.studies.plan import BUDGET_TEXT, STUDIES

    p = sub.add_parser(
        "study", help="re-run one of the paper's studies with seeds (orders, losses, phases)",
        description="Train and evaluate every variant of a study for each seed, at a fixed budget "
                    f"({BUDGET_TEXT}). Each finished run is written to OUT/NAME/<variant>-seed<k>.json and "
                    "skipped when the command runs again, so a study can be stopped and continued. Then "
                    "OUT/NAME.md gets the tables, paired comparisons and verdicts, and the figures. "
                    f"Studies: {'; '.join(f'{s.name}: {s.title}' for s in STUDIES.values())}.")
    p.add_argument("name", choices=sorted(STUDIES))
    p.add_argument("--config", default="ped2", help="the base config (default: ped2, the final Ped2 recipe)")
    p.add_argument("--root", help="dataset folder (default: the config's, else $SEQVAD_DATA/<dataset>)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default: 0 1 2)")
    p.add_argument("--out", default="results/studies", help="where the run JSONs and reports go")
    p.add_argument("--work", default="runs/studies", help="run folders (checkpoints, cube caches)")
    p.add_argument("--shard", default="0/1", help="K/N: this process runs every N-th run from the K-th "
                                                  "(start N processes to share a study)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    p.add_argument("--workers", type=int, default=None, help="processes for the one-time detection")
    p.add_argument("--report-only", action="store_true", help="write the report from the runs done so far")
    p.add_argument("--quiet", action="store_true", help="no progress bars inside a run")
    p.set_defaults(func=cmd_study)


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text}: expected K/N, e.g. 0/2") from None
    if not 0 <= k < n:
        raise ConfigError(f"--shard {text}: expected K/N with 0 <= K < N")
    return k, n


def cmd_study(args) -> int:
    from seqvad.studies.plan import get_study
    from seqvad.studies.runner import run_study

    study = get_study(args.name)
    if not args.report_only:
        run_study(study, args.config, args.root, Path(args.out), Path(args.work), args.seeds,
                  shard=parse_shard(args.shard), threads=args.threads, workers=args.workers,
                  progress=not args.quiet, log=lambda line: print(line, file=sys.stderr, flush=True))
    from seqvad.studies.report import write_report  # after the runs: a report fix applies to runs under way

    for path in write_report(study, Path(args.out)):
        print(f"wrote {path}")
    return 0
