"""``seqvad export``: a trained model's scorer network as ONNX, with what it needs beside it.

``OUT.onnx`` maps uint8 cubes ``(N, 2T+1, C, S, S)`` (any N) to each raw term the model's score
uses, one output per term (:class:`seqvad.scoring.compact.ObjectTerms`: BatchNorm folded, the
pixel mapping inside): ``error`` (the prediction error, always), and as weighted ``rec``,
``order`` and ``codes`` (the latent codes of the kNN term). ``OUT.json`` (also stored in the ONNX
file's metadata under ``seqvad``) records how cubes are cut, how the outputs become an object
score and a frame score, and the alarm threshold; with the kNN term, ``OUT.knn.npz`` holds the
training codes it is measured against (plain arrays: ``numpy.load`` needs no pickle). So another
runtime can reproduce ``seqvad detect``'s scores from the boxes of the same detector.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from seqvad.config import cube_geometry
from seqvad.errors import ConfigError

SIDECAR_FORMAT, SIDECAR_VERSION = "seqvad-onnx-scorer", 2
KNN_SUFFIX = ".knn.npz"

TERM_MEANINGS = {
    "pre": "{error} of the bidirectional prediction of the middle crop",
    "rec": "mean squared error of the reconstruction of the forward snippet (frames t-T..t-1)",
    "order": "minus the order classifier's in-order logit of the forward snippet",
    "knn": "latent code (mean of the forward and backward codes, pooled to 2x2 cells)",
}


def object_score_rule(scorer, knn_file: str | None) -> dict | str:
    """How the ONNX outputs become one object score, as data another runtime can follow."""
    if scorer.combined:
        terms = {}
        for name in scorer.weighted_terms:
            scorer.check_fitted(f"stats:{name}")
            terms[name] = {"output": _output(name), "weight": scorer.weights[name], **scorer.stats_[name]}
        if "knn" in terms:
            k = scorer.density_.k
            terms["knn"].update(
                value=f"mean Euclidean distance of (codes - mean) / scale to the k={k} nearest rows of 'codes' "
                      f"in {knn_file} (arrays mean, scale, codes), computed before the median and iqr",
                file=knn_file, k=k)
        return {"rule": "max(0, sum over terms of weight * (value - median) / iqr)", "terms": terms}
    if scorer.needs_stats:
        scorer.check_fitted("stats:pre")
        return {"rule": "max(0, (error - median) / iqr)", **scorer.stats_["pre"]}
    return "error"


def sidecar(detector, knn_file: str | None = None) -> dict:
    """What the ONNX graph does not hold: preprocessing, score combination, threshold."""
    scorer = detector.scorer
    geometry = cube_geometry(detector.config)
    T = geometry["window"]
    if scorer.context["enabled"] or scorer.normalize_by:
        raise ConfigError("export: this model's object score adds the motion context or a nuisance "
                          "normalisation (scoring.context / normalize_by), which the ONNX scorer does not compute")
    if scorer.weights.get("knn") and scorer.combined:
        scorer.check_fitted("density")
    outputs = {_output(name): {"dtype": "float32", "shape": ["N", "D"] if name == "knn" else ["N"],
                               "meaning": TERM_MEANINGS[name].format(error=scorer.error)}
               for name in scorer.term_names}
    outputs["error"]["meaning"] += ", pixels mapped x / 127.5 - 1 inside the graph"
    return {
        "format": SIDECAR_FORMAT, "version": SIDECAR_VERSION,
        "input": {"name": "cubes", "dtype": "uint8", "shape": ["N", 2 * T + 1, geometry["channels"],
                                                                geometry["size"], geometry["size"]],
                  "meaning": f"one cube per object: its box cut from frames t-{T}..t+{T} (indices clamped to "
                             f"the video), resized to {geometry['size']}x{geometry['size']}, "
                             f"{'grey (BGR->grey)' if geometry['channels'] == 1 else 'BGR'}, as "
                             "seqvad.objects.cubes.extract_cubes cuts it"},
        "outputs": outputs,
        "cubes": geometry,
        "detector": detector.config["detector"],
        "object_score": object_score_rule(scorer, knn_file),
        "frame_score": {"raw": "max object score of the frame; a frame without objects gets 0 (minus PSNR: "
                               "the lowest frame score, see seqvad.scoring.frames)", "median_window": scorer.window},
        "threshold": scorer.threshold_,
        "events": scorer.config["events"],
    }


def _output(name: str) -> str:
    from seqvad.scoring.compact import ONNX_OUTPUTS

    return ONNX_OUTPUTS[name]


def export_scorer(detector, out: str | Path) -> tuple[Path, ...]:
    """Write ``out`` (ONNX), ``out`` with suffix ``.json`` and, with the kNN term, ``.knn.npz``;
    returns the paths written."""
    import onnx

    from seqvad.atomic import replacing, write_json
    from seqvad.scoring.compact import ObjectTerms, example_cubes, export_onnx

    detector.require_model()
    out = Path(out)
    scorer = detector.scorer
    knn_path = out.with_suffix(KNN_SUFFIX) if scorer.combined and scorer.weights.get("knn") else None
    info = sidecar(detector, knn_path.name if knn_path else None)  # refuses before anything is written
    module = ObjectTerms(detector.model, scorer.term_names, scorer.error).to("cpu")
    geometry = info["cubes"]
    written = []
    if knn_path is not None:
        density = scorer.density_
        with replacing(knn_path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, mean=density.mean_, scale=density.scale_, codes=density.codes_)
        written.append(knn_path)
    with replacing(out) as tmp:
        export_onnx(module, str(tmp), example_cubes(module, geometry["channels"], geometry["size"]))
        graph = onnx.load(str(tmp))
        entry = graph.metadata_props.add()
        entry.key, entry.value = "seqvad", json.dumps(info, default=str)
        onnx.save(graph, str(tmp))
    sidecar_path = out.with_suffix(".json")
    write_json(sidecar_path, info)
    return (out, sidecar_path, *written)
