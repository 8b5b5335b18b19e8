"""``seqvad datasets check``: per-split frame and label counts of a benchmark dataset."""

from __future__ import annotations

import sys

from seqvad.errors import SeqvadError


def add_datasets(sub) -> None:
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
