import pytest
import torch

from seqvad.config import DEFAULTS
from seqvad.errors import ConfigError
from seqvad.model import Memory, SeqVADModel, build_model

TINY = dict(width=4, latent=8, projection=6, hidden=16)


def cubes_like(batch=3, channels=1, size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 9, channels, size, size, generator=generator) * 2 - 1


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("blocks", [2, 3])
def test_output_shapes(channels, blocks):
    model = SeqVADModel(channels=channels, blocks=blocks, **TINY)
    cubes = cubes_like(channels=channels)
    snippet = cubes[:, 0:4]
    side = 32 // 2 ** blocks
    assert model.encode(snippet).shape == (3, 8, side, side)
    prediction = model.predict(snippet, cubes[:, [8, 7, 6, 5]])
    assert prediction.shape == (3, channels, 32, 32)
    assert model.reconstruct(snippet).shape == (3, 4, channels, 32, 32)
    assert model.project(snippet).shape == (3, 6)
    assert model.order_logit(snippet).shape == (3,)
    # tanh heads: pixel outputs live on the cubes' [-1, 1] scale
    assert prediction.abs().max() <= 1


def test_latent_defaults_to_the_last_block_width():
    model = SeqVADModel(width=4, blocks=2, latent=None, projection=4)
    assert model.encode(cubes_like()[:, :4]).shape[1] == 16


def test_prediction_is_the_mean_of_both_directions():
    """Eq. 1, checked against the two heads applied separately (eval: no batch statistics)."""
    model = SeqVADModel(**TINY).eval()
    cubes = cubes_like()
    forward, backward = cubes[:, 0:4], cubes[:, [8, 7, 6, 5]]
    with torch.no_grad():
        separate = (model.prediction_head(model.encode(forward)) + model.prediction_head(model.encode(backward))) / 2
        assert torch.allclose(model.predict(forward, backward), separate, atol=1e-6)


def test_channels_last_changes_speed_not_results():
    fast = SeqVADModel(channels_last=True, **TINY).eval()
    plain = SeqVADModel(channels_last=False, **TINY).eval()
    plain.load_state_dict(fast.state_dict())
    snippet = cubes_like()[:, :4]
    with torch.no_grad():
        assert torch.allclose(fast.reconstruct(snippet), plain.reconstruct(snippet), atol=1e-5)
        assert torch.allclose(fast.project(snippet), plain.project(snippet), atol=1e-5)


@pytest.mark.parametrize("norm", ["group", "none"])
def test_other_norms_train(norm):
    model = SeqVADModel(norm=norm, **TINY)
    model.order_logit(cubes_like()[:, :4]).sum().backward()
    assert model.encoder.layers[0].weight.grad.abs().sum() > 0


def test_build_model_from_default_config():
    model = build_model(DEFAULTS["model"], channels=DEFAULTS["cubes"]["channels"])
    assert model.predict(cubes_like(2)[:, :4], cubes_like(2)[:, 5:]).shape == (2, 1, 32, 32)
    assert model.memory is None and model.last_memory_weights is None


@pytest.mark.parametrize("kwargs, message", [
    ({"norm": "layer"}, "model.norm"),
    ({"blocks": 6}, "not divisible"),
    ({"width": 0}, "model.width"),
    ({"depth": 3}, "unknown keys depth"),
    ({"memory": {"items": 10, "size": 3}}, "model.memory"),
])
def test_bad_model_config_raises(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        build_model({**TINY, **kwargs}, channels=1)


def test_snippet_of_the_wrong_shape_is_a_config_error():
    model = SeqVADModel(channels=1, **TINY)
    with pytest.raises(ConfigError, match="cubes.channels"):
        model.encode(cubes_like(channels=3)[:, :4])


def test_memory_weights_are_a_sparse_distribution():
    memory = Memory(items=20, dim=8, shrink=0.05)
    code, weights = memory(torch.randn(4, 8, 3, 3))
    assert code.shape == (4, 8, 3, 3) and weights.shape == (4, 3, 3, 20)
    assert torch.allclose(weights.sum(-1), torch.ones(4, 3, 3), atol=1e-5)
    assert (weights >= 0).all()
    assert (weights == 0).any()  # the hard shrinkage switched some items off


def test_model_with_memory_records_addressing_weights():
    model = SeqVADModel(memory={"items": 12}, **TINY)
    model.encode(cubes_like()[:, :4])
    weights = model.last_memory_weights
    assert weights.shape == (3, 8, 8, 12)
    assert torch.allclose(weights.sum(-1), torch.ones(3, 8, 8), atol=1e-5)
