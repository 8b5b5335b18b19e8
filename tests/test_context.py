"""Motion context (seqvad.context): velocities measured in cubes, the k-NN density score."""

import numpy as np
import pytest

from seqvad.context import ContextModel, cube_velocities, object_features
from seqvad.errors import ConfigError


def moving_square_cube(dx: float, dy: float, frames: int = 9, size: int = 32) -> np.ndarray:
    """A textured square gliding (dx, dy) crop pixels per frame over a still textured ground."""
    rng = np.random.default_rng(1)
    ground = rng.integers(40, 80, (size, size)).astype(np.uint8)
    patch = rng.integers(150, 255, (10, 10)).astype(np.uint8)
    cube = np.empty((frames, 1, size, size), np.uint8)
    for t in range(frames):
        image = ground.copy()
        x = int(round(11 + (t - frames // 2) * dx))
        y = int(round(11 + (t - frames // 2) * dy))
        image[y:y + 10, x:x + 10] = patch
        cube[t, 0] = image
    return cube


def test_cube_velocity_direction_and_scale_to_frame_pixels():
    cubes = np.stack([moving_square_cube(1, 0), moving_square_cube(0, -1), moving_square_cube(0, 0)])
    boxes = np.array([[0, 0, 64, 32], [0, 0, 32, 96], [10, 10, 42, 42]], np.float32)  # crop scale 2x, 3x, 1x
    v = cube_velocities(cubes, boxes)
    assert v[0, 0] == pytest.approx(2.0, abs=0.6) and abs(v[0, 1]) < 0.5  # 1 crop px x 64/32
    assert v[1, 1] == pytest.approx(-3.0, abs=0.9) and abs(v[1, 0]) < 0.5  # upwards, 96/32
    assert np.abs(v[2]).max() < 0.3
    assert cube_velocities(cubes[:0], boxes[:0]).shape == (0, 2)


def test_object_features_are_centre_and_velocity():
    cubes = np.stack([moving_square_cube(1, 0)])
    index = {"x1": np.array([10.0]), "y1": np.array([20.0]), "x2": np.array([42.0]), "y2": np.array([52.0])}
    features = object_features(cubes, index)
    assert features.shape == (1, 4)
    np.testing.assert_allclose(features[0, :2], [26.0, 36.0])
    assert features[0, 2] > 0.5


def test_wrong_way_object_scores_high_and_state_round_trips():
    rng = np.random.default_rng(0)
    # training: objects on a path at x ~ 100 walking down (vy ~ +1), on a road at y ~ 50 going right
    path = np.column_stack([rng.normal(100, 5, 300), rng.uniform(0, 200, 300),
                            rng.normal(0, 0.2, 300), rng.normal(1.0, 0.2, 300)])
    road = np.column_stack([rng.uniform(0, 300, 300), rng.normal(50, 5, 300),
                            rng.normal(1.5, 0.3, 300), rng.normal(0, 0.2, 300)])
    model = ContextModel(k=5).fit(np.vstack([path, road]))
    normal = np.array([[100, 120, 0.0, 1.0], [150, 50, 1.5, 0.0]])
    wrong_way = np.array([[100, 120, 0.0, -1.0]])
    assert model.score(normal).max() < 1.0
    assert model.score(wrong_way)[0] > 5 * max(model.score(normal).max(), 0.1)
    assert (model.score(np.vstack([normal, wrong_way])) >= 0).all()
    restored = ContextModel.from_state(model.state_dict())
    np.testing.assert_allclose(restored.score(wrong_way), model.score(wrong_way))
    assert model.score(np.zeros((0, 4))).shape == (0,)


def test_context_model_errors():
    with pytest.raises(ConfigError, match="too few"):
        ContextModel(k=5).fit(np.zeros((3, 4)))
    with pytest.raises(ConfigError, match="k=0"):
        ContextModel(k=0)
    with pytest.raises(ConfigError, match="never fitted"):
        ContextModel().score(np.zeros((1, 4)))
