"""``seqvad evaluate RUN``: score the test split with every phase's checkpoint."""

from __future__ import annotations

from pathlib import Path

from seqvad.cli.options import apply_overrides


def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="score the test split with every phase's checkpoint",
                       description="Writes RUN/scores.csv (per frame, per phase) and RUN/metrics.json "
                                   "(micro/macro AUC and EER per phase) and score-curve plots.")
    p.add_argument("run_dir", help="a run folder made by `seqvad train`")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--no-report", action="store_true", help="skip the plots")
    p.add_argument("--split", choices=["test", "val"], default="test",
                   help="test, or val: the validation split of a run made with `experiment --validate`")
    p.add_argument("--every-epoch", action="store_true",
                   help="also score every epoch checkpoint (train.keep_epoch_checkpoints) and report the "
                        "best under oracle_best_epoch: the paper's best-epoch-on-test protocol, labelled")
    p.add_argument("--set", action="append", default=[], metavar="scoring.KEY=VALUE",
                   help="change a scoring setting for this evaluation, e.g. scoring.context.enabled=true "
                        "(recorded in metrics.json; repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args) -> int:
    from seqvad import pipeline
    from seqvad.config import DEFAULTS, deep_merge
    from seqvad.config_check import validate
    from seqvad.devices import device_name
    from seqvad.runfolder import check_writable

    scoring: dict = {}
    apply_overrides(scoring, args.set, only="scoring")
    validate(deep_merge({"scoring": DEFAULTS["scoring"]}, scoring), source="--set")
    device_name(args.device)  # a GPU asked for on a machine without one: one line, before any work
    if Path(args.run_dir).is_dir():  # scores.csv and metrics.json are written there
        check_writable(Path(args.run_dir))
    result = pipeline.evaluate(Path(args.run_dir), device=args.device, report=not args.no_report,
                               overrides=scoring, split=args.split, every_epoch=args.every_epoch,
                               progress=not args.quiet)
    print_phase_table(result)
    if "oracle_best_epoch" in result:
        oracle = result["oracle_best_epoch"]
        print(f"oracle_best_epoch (picked by {args.split} labels, not a result): {oracle['checkpoint']} "
              f"micro AUC {oracle['micro_auc']:.4f}")
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
    if "region_truth" in result:  # the test videos have pixel masks
        truth = result["region_truth"]
        print(f"region level ({truth['regions']} mask regions, {truth['tracks']} tracks): "
              + ", ".join(f"{name} RBDC {m['rbdc']:.4f} TBDC {m['tbdc']:.4f}" for name, m in result["phases"].items()))
