"""The inference scorer (seqvad.scoring.compact): BatchNorm folded, ONNX export, engines, `seqvad export`.

Tolerances: the folded network and its ONNX graph change only the order of float32 operations, so
their terms agree with the whole model's within rtol 1e-5 (atol 1e-7 near 0; the order logits and
latent codes, which are not squared errors and can be near 0, within atol 1e-5).
"""

import json

import numpy as np
import pytest
import torch

from seqvad import scoring
from seqvad.api import Detector
from seqvad.cli import main
from seqvad.config import DEFAULTS
from seqvad.model import build_model
from seqvad.scoring import Scorer
from seqvad.scoring.compact import Engine, fold_batchnorm

RTOL, ATOL = 1e-5, 1e-7
TERM_ATOL = {"pre": ATOL, "rec": ATOL, "order": 1e-5, "knn": 1e-5}
ALL_TERMS = ("pre", "rec", "order", "knn")
GEOMETRY = DEFAULTS["cubes"]


def tiny_model(seed=0, **model_cfg):
    """An untrained tiny model whose BatchNorm layers hold non-trivial statistics and affine weights."""
    torch.manual_seed(seed)
    model = build_model({**DEFAULTS["model"], "width": 4, "latent": 8, "projection": 8, **model_cfg},
                        GEOMETRY["channels"], window=GEOMETRY["window"], size=GEOMETRY["size"])
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


def cubes(n=40, seed=0):
    shape = (n, 2 * GEOMETRY["window"] + 1, GEOMETRY["channels"], GEOMETRY["size"], GEOMETRY["size"])
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_folding_removes_every_batchnorm_and_keeps_the_function():
    model = tiny_model()
    folded = fold_batchnorm(model.encoder.layers)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(6, 4, 32, 32)
    torch.testing.assert_close(folded(x), model.encoder(x), rtol=RTOL, atol=1e-6)


@pytest.mark.parametrize("kind", ["mse", "psnr"])
@pytest.mark.parametrize("model_cfg", [{}, {"channels_last": False}, {"norm": "group"}, {"memory": {"items": 5}}])
def test_folded_module_scores_as_the_whole_model(kind, model_cfg):
    model, batch = tiny_model(**model_cfg), cubes()
    expected = scoring.object_errors(model, batch, kind=kind)
    folded = Engine(model, kind, "folded", batch_size=16).errors(batch)  # batches split as the stream does
    np.testing.assert_allclose(folded, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("names", [ALL_TERMS, ("rec", "knn"), ("order",)])
@pytest.mark.parametrize("model_cfg", [{}, {"channels_last": False}, {"norm": "group"}, {"memory": {"items": 5}}])
def test_folded_module_gives_every_term_as_the_whole_model(names, model_cfg):
    model, batch = tiny_model(**model_cfg), cubes()
    expected = scoring.object_terms(model, batch, names)
    engine = Engine(model, "mse", "folded", batch_size=16, names=names)
    assert engine.module.reconstruction is None or "rec" in names  # heads no term needs are left out
    assert engine.module.prediction is None or "pre" in names
    got = engine.terms(batch)
    assert list(got) == list(names)
    for name in names:
        assert got[name].shape == expected[name].shape and got[name].dtype == expected[name].dtype
        np.testing.assert_allclose(got[name], expected[name], rtol=RTOL, atol=TERM_ATOL[name], err_msg=name)


def test_onnx_engine_gives_every_term_as_torch():
    pytest.importorskip("onnx")
    model, batch = tiny_model(1), cubes(seed=1)
    expected = scoring.object_terms(model, batch, ALL_TERMS)
    got = Engine(model, "mse", "onnx", threads=1, names=ALL_TERMS).terms(batch)
    for name in ALL_TERMS:
        np.testing.assert_allclose(got[name], expected[name], rtol=RTOL, atol=TERM_ATOL[name], err_msg=name)


def test_engine_on_no_cubes_gives_empty_terms():
    got = Engine(tiny_model(), names=ALL_TERMS).terms(cubes(0))
    assert all(len(value) == 0 for value in got.values())


@pytest.mark.parametrize("kind", ["mse", "psnr"])
def test_onnx_engine_scores_as_torch(kind):
    pytest.importorskip("onnx")
    model, batch = tiny_model(1), cubes(seed=1)
    expected = scoring.object_errors(model, batch, kind=kind)
    onnx_errors = Engine(model, kind, "onnx", threads=1).errors(batch)
    np.testing.assert_allclose(onnx_errors, expected, rtol=RTOL, atol=ATOL)
    assert len(Engine(model, kind, "onnx").errors(batch[:1])) == 1  # the batch dimension is dynamic


@pytest.mark.parametrize("terms", [{}, {"pre": 1.0, "rec": 1.0, "order": 1.0, "knn": 1.0}])
def test_scorer_engines_agree_and_the_engine_is_built_once(terms):
    model, batch = tiny_model(2), cubes(seed=2)
    whole = Scorer({"engine": "torch", "terms": terms, "knn_k": 3})
    if whole.needs_stats:
        whole.fit_terms(model, cubes(60, seed=3))
    state = whole.state_dict()
    folded = Scorer.from_state({**state, "config": {**state["config"], "engine": "folded"}})
    # terms are divided by their training IQR, here an untrained network's (the order logit's is
    # 5e-4), which magnifies float32 rounding: 1e-4 absolute on scores of order 1
    np.testing.assert_allclose(folded.object_scores(model, batch), whole.object_scores(model, batch),
                               rtol=RTOL, atol=1e-4 if terms else ATOL)
    scorer = Scorer()
    assert scorer.fast_engine(model) is scorer.fast_engine(model)
    assert scorer.fast_engine(tiny_model(3)) is not scorer.fast_engine(model)


def test_unknown_engine_is_a_config_error():
    from seqvad.errors import ConfigError

    with pytest.raises(ConfigError, match="scoring.engine"):
        Scorer({"engine": "tensorrt"})


def fitted_detector(scoring_cfg=None):
    detector = Detector({"detector": {"name": "motion"}, "model": {"width": 4, "latent": 8, "projection": 8},
                         "scoring": scoring_cfg or {}}, device="cpu")
    detector.model = tiny_model(4)
    detector.threshold = 0.25
    return detector


def test_export_writes_onnx_and_sidecar_that_score_as_torch(tmp_path, capsys):
    pytest.importorskip("onnx")
    from seqvad.scoring.compact import onnx_session

    model_file = fitted_detector().save(tmp_path / "model.pt")
    assert main(["export", str(model_file), str(tmp_path / "scorer.onnx")]) == 0
    info = json.loads((tmp_path / "scorer.json").read_text())
    assert info["threshold"] == 0.25 and info["object_score"] == "error"
    assert info["input"]["shape"][1:] == [9, 1, 32, 32] and info["frame_score"]["median_window"] == 17
    import onnx

    metadata = {p.key: p.value for p in onnx.load(str(tmp_path / "scorer.onnx")).metadata_props}
    assert json.loads(metadata["seqvad"])["threshold"] == 0.25
    batch = cubes(7, seed=5)
    got = onnx_session(str(tmp_path / "scorer.onnx")).run(["error"], {"cubes": batch})[0]
    detector = Detector.load(model_file, device="cpu")
    np.testing.assert_allclose(got, scoring.object_errors(detector.model, batch), rtol=RTOL, atol=ATOL)


def score_from_export(onnx_path, batch):
    """Object scores of ``batch`` computed from the exported files alone, following OUT.json's words."""
    from seqvad.scoring.compact import onnx_session

    info = json.loads(onnx_path.with_suffix(".json").read_text())
    rule = info["object_score"]
    outputs = list(info["outputs"])
    values = dict(zip(outputs, onnx_session(str(onnx_path)).run(outputs, {"cubes": batch})))
    total = 0.0
    for term in rule["terms"].values():
        value = values[term["output"]].astype(np.float64)
        if "file" in term:  # kNN: mean distance of the standardised code to the k nearest training codes
            bank = np.load(onnx_path.parent / term["file"], allow_pickle=False)
            query = (value - bank["mean"]) / bank["scale"]
            distances = np.linalg.norm(query[:, None, :] - bank["codes"][None], axis=2)
            value = np.sort(distances, axis=1)[:, :term["k"]].mean(1)
        total = total + term["weight"] * (value - term["median"]) / term["iqr"]
    return np.maximum(total, 0.0)


@pytest.mark.parametrize("terms", [{"pre": 1.0, "rec": 1.0, "order": 1.0, "knn": 1.0}, {"pre": 1.0, "rec": 2.0}])
def test_export_of_a_combined_score_reproduces_it_from_its_files(tmp_path, terms):
    pytest.importorskip("onnx")
    detector = fitted_detector({"terms": terms, "knn_k": 3})
    detector.scorer.fit_terms(detector.model, cubes(60, seed=6))
    model_file = detector.save(tmp_path / "model.pt")
    assert main(["export", str(model_file), str(tmp_path / "scorer.onnx")]) == 0
    weighted = [name for name in ALL_TERMS if terms.get(name)]
    assert (tmp_path / "scorer.knn.npz").is_file() == ("knn" in weighted)
    info = json.loads((tmp_path / "scorer.json").read_text())
    outputs = {"pre": "error", "rec": "rec", "order": "order", "knn": "codes"}
    assert list(info["outputs"]) == [outputs[name] for name in weighted]
    assert list(info["object_score"]["terms"]) == weighted
    batch = cubes(9, seed=7)
    expected = Detector.load(model_file, device="cpu").object_scores(batch, None)
    # as in test_scorer_engines_agree...: float32 rounding divided by an untrained network's small IQRs
    np.testing.assert_allclose(score_from_export(tmp_path / "scorer.onnx", batch), expected, rtol=RTOL, atol=1e-4)


def test_export_refuses_scores_it_cannot_compute(tmp_path, capsys):
    pytest.importorskip("onnx")
    detector = fitted_detector({"normalize_by": ["height"]})
    model_file = detector.save(tmp_path / "model.pt")
    assert main(["export", str(model_file), str(tmp_path / "scorer.onnx")]) == 2
    assert "normalize_by" in capsys.readouterr().err
    assert not (tmp_path / "scorer.onnx").exists() and not (tmp_path / "scorer.json").exists()



def test_export_of_a_missing_model_file_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope.pt"), str(tmp_path / "scorer.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seqvad: error:") and err.count("\n") == 1 and "nope.pt" in err
