"""``seqvad export MODEL.pt OUT.onnx``: the scorer network as ONNX, its settings in OUT.json."""

from __future__ import annotations


def add_export(sub) -> None:
    p = sub.add_parser(
        "export", help="write a model's scorer network as ONNX (with its settings beside it)",
        description="Write the network that scores objects (uint8 cubes (N, 2T+1, C, S, S) in; out the prediction "
                    "error of each cube and each other term the model's score weighs; BatchNorm folded, any N) as "
                    "OUT.onnx, and OUT.json with how cubes are cut, how the outputs become object and frame "
                    "scores, and the alarm threshold (also in the ONNX metadata under 'seqvad'); with the kNN "
                    "term, OUT.knn.npz holds its training codes. Needs the onnx package "
                    "(pip install 'seqvad[onnx]').")
    p.add_argument("model", help="a model file (RUN/model.pt, Detector.save)")
    p.add_argument("out", help="the ONNX file to write (OUT.json is written beside it)")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from seqvad.api import Detector
    from seqvad.scoring.export import export_scorer

    detector = Detector.load(args.model, device="cpu")
    written = export_scorer(detector, args.out)
    print(f"wrote {', '.join(map(str, written))}")
    return 0
