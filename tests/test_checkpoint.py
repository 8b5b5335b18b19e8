"""Model files: written with tensors and plain data only, read weights-only (no code runs)."""

import numpy as np
import pytest
import torch

from seqvad.api import Detector
from seqvad.checkpoint import MODEL_FORMAT, MODEL_FORMAT_VERSION, read_model_file
from seqvad.context import ContextModel
from seqvad.errors import DataError
from seqvad.model import build_model


def untrained_detector() -> Detector:
    detector = Detector("demo_quick")
    cubes = detector.config["cubes"]
    detector.model = build_model(detector.config["model"], cubes["channels"], window=cubes["window"],
                                 size=cubes["size"]).eval()
    detector.stats, detector.threshold = {"median": 0.5, "iqr": 0.25}, 1.5
    detector.context = ContextModel(k=3).fit(np.random.default_rng(0).normal(size=(40, 4)))
    return detector


def test_model_file_round_trip_with_context(tmp_path):
    detector = untrained_detector()
    path = detector.save(tmp_path / "model.pt")
    torch.load(path, weights_only=True)  # nothing in the file needs more than weights
    loaded = Detector.load(path)
    assert loaded.threshold == 1.5 and loaded.stats == {"median": 0.5, "iqr": 0.25}
    for key in ("mean", "scale", "train"):
        before, after = getattr(detector.context, key), getattr(loaded.context, key)
        assert isinstance(after, np.ndarray) and after.dtype == before.dtype
        np.testing.assert_array_equal(after, before)
    features = np.random.default_rng(1).normal(size=(5, 4))
    np.testing.assert_array_equal(loaded.context.score(features), detector.context.score(features))


def test_older_model_file_with_numpy_arrays_still_loads(tmp_path):
    detector = untrained_detector()
    old = {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, "seqvad_version": "0.1.0",
           "config": detector.config, "state_dict": detector.model.state_dict(), "stats": detector.stats,
           "threshold": detector.threshold, "phase_info": {}, "context": detector.context.state_dict(),
           "channels": 1}
    torch.save(old, tmp_path / "old.pt")  # numpy arrays pickled as such, as files were written before
    loaded = Detector.load(tmp_path / "old.pt")
    np.testing.assert_array_equal(loaded.context.train, detector.context.train)


class _Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_model_file_with_pickled_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, "x": _Payload()}, path)
    with pytest.raises(DataError, match="not a readable seqvad model file"):
        read_model_file(path)
    assert "code ran" not in capsys.readouterr().out
