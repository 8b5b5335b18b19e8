"""The bundled YOLOX graph takes any input size and batch as it is: no ``onnx`` package at run time
(tools/make_dynamic_yolox.py made it); a fixed-size model of one's own still needs ``onnx``."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from seqvad.errors import ConfigError
from seqvad.objects.detectors.yolox import YoloxDetector, accepts_input, bundled_model_path, reshaped_model


def test_bundled_graph_runs_at_any_size_without_onnx(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    frame = np.full((90, 120, 3), 128, np.uint8)
    for size, batch in (((576, 384), 1), ((224, 160), 2), ((416, 416), 1)):
        detector = YoloxDetector(input_size=size, batch=batch, threads=1)
        assert detector.session.get_inputs()[0].shape == ["batch", 3, "height", "width"]
        out = detector.detect([frame] * 2)
        assert len(out) == 2 and all(b.shape[1] == 6 for b in out)


def test_accepts_input():
    assert accepts_input(["batch", 3, "height", "width"], 576, 384, 4)
    assert accepts_input([1, 3, 384, 576], 576, 384, 1)
    assert not accepts_input([1, 3, 416, 416], 576, 384, 1)
    assert not accepts_input([1, 3, 384, 576], 576, 384, 2)  # a fixed batch of 1


def test_a_fixed_size_model_of_ones_own_needs_onnx(tmp_path, monkeypatch):
    onnx = pytest.importorskip("onnx", reason="onnx is an optional extra (pip install 'seqvad[onnx]')")
    model = onnx.load(str(bundled_model_path()))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, value in zip(dims, (1, 3, 416, 416)):
        dim.dim_value = value  # a fixed 1x3x416x416 input, as the original export had
    fixed = tmp_path / "fixed.onnx"
    onnx.save(model, str(fixed))
    reshaped_model.cache_clear()
    assert YoloxDetector(model_path=fixed, input_size=(576, 384), threads=1).session.get_inputs()[0].shape[2:] == [384, 576]
    reshaped_model.cache_clear()
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ConfigError, match=r"fixed input size.*seqvad\[onnx\]"):
        YoloxDetector(model_path=fixed, input_size=(576, 384), threads=1)
