"""The package's layout: detectors come from one registry (a new one needs no other file edited)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from seqvad.config import DEFAULTS
from seqvad.data.videos import Video
from seqvad.errors import ConfigError
from seqvad.objects.detectors import REGISTRY, Detector, build_detector, register
from seqvad.objects.prepare import cache_key, prepare_split

FIXED_BOX = np.array([[8, 8, 40, 40, 0.5, 3]], np.float32)


class FixedBoxes(Detector):
    """A test-only detector: the same box in every frame, after a warm-up that counts frames."""

    name = "test-fixed"

    def __init__(self, offset: int = 0):
        self.offset, self.warmed = offset, 0

    @classmethod
    def from_config(cls, detector_cfg, video_name=None, boxes=None, threads=None):
        return cls(int((detector_cfg.get("test-fixed") or {}).get("offset", 0)))

    @classmethod
    def cache_fields(cls, detector_cfg, boxes_file=None):
        return {"offset": int((detector_cfg.get("test-fixed") or {}).get("offset", 0))}

    @property
    def warms_up(self) -> bool:
        return True

    def warm_up(self, video) -> None:
        self.warmed = len(video)

    def detect(self, frames):
        box = FIXED_BOX.copy()
        box[:, :4] += self.offset
        return [box.copy() for _ in frames]


@pytest.fixture
def fixed_detector(monkeypatch):
    monkeypatch.setitem(REGISTRY, FixedBoxes.name, FixedBoxes)
    config = copy.deepcopy(DEFAULTS)
    config["detector"]["name"] = FixedBoxes.name
    return config


def frames(n=12, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 64, 3), dtype=np.uint8)


def test_registered_detector_builds_keys_the_cache_and_prepares_a_split(fixed_detector, tmp_path):
    config = fixed_detector
    assert isinstance(build_detector(config["detector"]), FixedBoxes)
    moved = copy.deepcopy(config)
    moved["detector"]["test-fixed"] = {"offset": 2}
    assert cache_key(config["detector"], config["cubes"]) != cache_key(moved["detector"], moved["cubes"])
    videos = [Video.from_array(frames(seed=s), name=f"v{s}") for s in (0, 1)]
    store = prepare_split(videos, config, tmp_path / "cubes", workers=1, progress=False)
    assert len(store) == 24 and store.manifest["detector"] == "test-fixed"
    np.testing.assert_array_equal(store.index["x1"], np.full(24, 8.0))


def test_unknown_detector_names_the_registered_ones():
    with pytest.raises(ConfigError, match="motion, yolox, yolox\\+motion, precomputed"):
        build_detector({"name": "sift"})
    with pytest.raises(ConfigError, match="not one of"):
        cache_key({"name": "sift"}, DEFAULTS["cubes"])


def test_registered_detector_streams(fixed_detector, tmp_path):
    from seqvad.api import Detector as Model
    from seqvad.stream import open_source, run_detection, stream_scores
    from seqvad.model import build_model

    model = Model(fixed_detector)
    cubes = model.config["cubes"]
    model.model = build_model(model.config["model"], cubes["channels"], window=cubes["window"],
                              size=cubes["size"]).eval()
    model.threshold = 1.0
    scored = list(stream_scores(model, iter(frames())))
    assert len(scored) == 12
    for item in scored:
        np.testing.assert_array_equal(item.boxes, FIXED_BOX)
    from conftest import write_frames

    folder = write_frames(tmp_path / "clip", frames())
    result = run_detection(model, open_source(folder), tmp_path / "out", write_video=False, top_k=0)
    assert result.frames == 12 and (tmp_path / "out" / "objects.csv").read_text().count("\n") == 13
