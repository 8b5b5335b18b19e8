"""``seqvad boxes convert IN OUT``: a pickled boxes file into a .npz or .csv that loads safely."""

from __future__ import annotations


def add_boxes(sub) -> None:
    p = sub.add_parser("boxes", help="convert precomputed boxes files", description="Boxes files.")
    boxes_sub = p.add_subparsers(dest="boxes_command", required=True, metavar="ACTION")
    convert = boxes_sub.add_parser(
        "convert", help="write a boxes file as .npz or .csv (no pickle needed to read it)",
        description="Convert a boxes file (a .npy object array, HF2VAD layout) once into a .npz of plain arrays "
                    "or a CSV, which --detector precomputed reads without unpickling anything.")
    convert.add_argument("source", help="the .npy object array (or a seqvad .npz)")
    convert.add_argument("target", help="OUT.npz, or OUT.csv (needs --dataset, --root and --split for video names)")
    convert.add_argument("--allow-pickle", action="store_true",
                         help="unpickle SOURCE: a pickle can run code, so only for a file you trust")
    convert.add_argument("--dataset", help="for a CSV: the dataset whose split the boxes cover")
    convert.add_argument("--root", help="for a CSV: the dataset folder")
    convert.add_argument("--split", choices=["train", "test"], default="test", help="for a CSV (default test)")
    convert.set_defaults(func=cmd_boxes_convert)


def cmd_boxes_convert(args) -> int:
    from seqvad.objects.detectors.convert import convert_boxes

    videos = None
    if args.dataset:
        from seqvad.data.datasets import load_dataset

        dataset = load_dataset(args.dataset, args.root)
        videos = [(v.name, len(v)) for v in (dataset.train if args.split == "train" else dataset.test)]
    counts = convert_boxes(args.source, args.target, allow_pickle=args.allow_pickle, videos=videos)
    print(f"{args.target}: {counts['boxes']} boxes over {counts['frames']} frames")
    return 0
