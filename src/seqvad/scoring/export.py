"""``seqvad export``: a trained model's scorer network as ONNX, with what it needs beside it.

``OUT.onnx`` maps uint8 cubes ``(N, 2T+1, C, S, S)`` (any N) to the prediction error of each cube
(:class:`seqvad.scoring.compact.PredictionError`: BatchNorm folded, the pixel mapping inside).
``OUT.json`` (also stored in the ONNX file's metadata under ``seqvad``) records how cubes are cut,
how an error becomes an object score and a frame score, and the alarm threshold, so another
runtime can reproduce ``seqvad detect``'s scores from the boxes of the same detector.
"""

from __future__ import annotations

import json
from pathlib import Path

from seqvad.config import cube_geometry
from seqvad.errors import ConfigError

SIDECAR_FORMAT, SIDECAR_VERSION = "seqvad-onnx-scorer", 1


def sidecar(detector) -> dict:
    """What the ONNX graph does not hold: preprocessing, score combination, threshold."""
    scorer = detector.scorer
    geometry = cube_geometry(detector.config)
    T = geometry["window"]
    if scorer.combined or scorer.context["enabled"] or scorer.normalize_by:
        raise ConfigError("export: this model's object score adds other terms, the motion context or a "
                          "nuisance normalisation (scoring.terms / context / normalize_by); the ONNX scorer "
                          "computes the prediction error only")
    normalise = scorer.needs_stats
    if normalise:
        scorer.check_fitted("stats:pre")
    return {
        "format": SIDECAR_FORMAT, "version": SIDECAR_VERSION,
        "input": {"name": "cubes", "dtype": "uint8", "shape": ["N", 2 * T + 1, geometry["channels"],
                                                                geometry["size"], geometry["size"]],
                  "meaning": f"one cube per object: its box cut from frames t-{T}..t+{T} (indices clamped to "
                             f"the video), resized to {geometry['size']}x{geometry['size']}, "
                             f"{'grey (BGR->grey)' if geometry['channels'] == 1 else 'BGR'}, as "
                             "seqvad.objects.cubes.extract_cubes cuts it"},
        "output": {"name": "error", "dtype": "float32", "shape": ["N"],
                   "meaning": f"{scorer.error} of the bidirectional prediction of the middle crop, "
                              "pixels mapped x / 127.5 - 1 inside the graph"},
        "cubes": geometry,
        "detector": detector.config["detector"],
        "object_score": ({"normalise": "max(0, (error - median) / iqr)", **scorer.stats_["pre"]}
                         if normalise else "error"),
        "frame_score": {"raw": "max object score of the frame; a frame without objects gets 0 (minus PSNR: "
                               "the lowest frame score, see seqvad.scoring.frames)", "median_window": scorer.window},
        "threshold": scorer.threshold_,
        "events": scorer.config["events"],
    }


def export_scorer(detector, out: str | Path) -> tuple[Path, Path]:
    """Write ``out`` (ONNX) and ``out`` with suffix ``.json``; returns both paths."""
    import onnx

    from seqvad.atomic import replacing, write_json
    from seqvad.scoring.compact import PredictionError, example_cubes, export_onnx

    detector.require_model()
    info = sidecar(detector)  # refuses before anything is written
    out = Path(out)
    module = PredictionError(detector.model, detector.scorer.error).to("cpu")
    geometry = info["cubes"]
    with replacing(out) as tmp:
        export_onnx(module, str(tmp), example_cubes(module, geometry["channels"], geometry["size"]))
        graph = onnx.load(str(tmp))
        entry = graph.metadata_props.add()
        entry.key, entry.value = "seqvad", json.dumps(info, default=str)
        onnx.save(graph, str(tmp))
    sidecar_path = out.with_suffix(".json")
    write_json(sidecar_path, info)
    return out, sidecar_path
