"""Curriculum levers: gradient balancing on the shared encoder and a frozen-encoder head warm-up
change the gradient exactly as they claim, on a tiny model."""

from __future__ import annotations

import pytest
import torch

from seqvad.curriculum import Schedule
from seqvad.errors import ConfigError
from seqvad.train import Trainer, combine_gradients
from test_train import tiny_config, tiny_cubes


def flat(tensors):
    return torch.cat([t.reshape(-1) for t in tensors])


def test_combine_gradients_project_and_scale():
    torch.manual_seed(0)
    anchor = [torch.randn(3, 4), torch.randn(5)]
    against = [-2 * a + 0.1 * torch.randn_like(a) for a in anchor]  # conflicts with the anchor
    projected = combine_gradients(anchor, against, "project")
    other_part = flat(projected) - flat(anchor)
    assert float(flat(against) @ flat(anchor)) < 0
    assert abs(float(other_part @ flat(anchor))) < 1e-4  # nothing left against the anchor
    along = [0.5 * a for a in anchor]  # no conflict: left as it is
    assert torch.allclose(flat(combine_gradients(anchor, along, "project")), 1.5 * flat(anchor))
    big = [30 * torch.randn_like(a) for a in anchor]
    scaled = flat(combine_gradients(anchor, big, "scale", ratio=0.5)) - flat(anchor)
    assert float(scaled.norm()) == pytest.approx(0.5 * float(flat(anchor).norm()), rel=1e-5)
    small = [0.01 * a for a in anchor]
    assert torch.allclose(flat(combine_gradients(anchor, small, "scale", ratio=0.5)), 1.01 * flat(anchor))
    assert torch.allclose(flat(combine_gradients(anchor, big, "none")), flat(anchor) + flat(big))
    with pytest.raises(ConfigError, match="train.balance"):
        combine_gradients(anchor, big, "average")


def captured_step(trainer: Trainer, phase_index: int) -> dict[str, torch.Tensor]:
    """Gradients of one training step of ``phase_index`` (the optimiser step is skipped)."""
    trainer.optimizer.step = lambda: None
    phase = trainer.schedule.phases[phase_index]
    torch.manual_seed(1)  # the shuffled snippets of the order task draw from the global RNG
    trainer.train_step(torch.arange(16), trainer.phase_weights(phase), phase_index)
    return {name: p.grad.clone() for name, p in trainer.runner.model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("method", ["project", "scale"])
def test_trainer_balances_only_the_encoder_gradient(tmp_path, method):
    cubes = tiny_cubes()
    plain = Trainer(tiny_config(), cubes, tmp_path / "plain", progress=False)
    balanced = Trainer(tiny_config(balance=method, balance_ratio=0.1), cubes, tmp_path / "b", progress=False)
    balanced.runner.load_state_dict(plain.runner.state_dict())
    grads_plain, grads_balanced = captured_step(plain, 2), captured_step(balanced, 2)

    # reference: the anchor's (pre) and the others' encoder gradients, combined by hand
    reference = Trainer(tiny_config(), cubes, tmp_path / "ref", progress=False)
    reference.runner.load_state_dict(plain.runner.state_dict())
    torch.manual_seed(1)
    weights = reference.phase_weights(reference.schedule.phases[2])
    cube_batch = torch.from_numpy(cubes[:16]).float().div(127.5).sub(1)
    reference.runner(cube_batch, weights)
    totals = reference.runner.task_totals
    encoder = list(reference.runner.model.encoder.parameters())
    anchor = torch.autograd.grad(totals["pre"], encoder, retain_graph=True)
    others = torch.autograd.grad(totals["rec"] + totals["cls"], encoder)
    expected = combine_gradients(list(anchor), list(others), method, 0.1)

    names = [n for n, _ in reference.runner.model.named_parameters() if n.startswith("encoder.")]
    for name, grad in zip(names, expected):
        torch.testing.assert_close(grads_balanced[name], grad, rtol=1e-4, atol=1e-6)
    assert any(not torch.allclose(grads_balanced[n], grads_plain[n]) for n in names)
    for name in grads_plain:  # the heads' gradients are the plain ones
        if not name.startswith("encoder."):
            torch.testing.assert_close(grads_balanced[name], grads_plain[name], rtol=1e-4, atol=1e-6)


def test_frozen_encoder_steps_train_only_the_heads(tmp_path):
    config = tiny_config(epochs=(1, 2, 1))
    config["schedule"]["freeze_encoder_steps"] = [0, 5, 0]
    trainer = Trainer(config, tiny_cubes(), tmp_path / "run", progress=False)
    snapshots = []
    trainer.on_step = lambda info: snapshots.append(
        (info["phase"], {k: v.clone() for k, v in trainer.runner.model.state_dict().items()}))
    trainer.fit()
    phase2 = [state for phase, state in snapshots if phase == 1]
    before = [state for phase, state in snapshots if phase == 0][-1]
    assert len(phase2) == 8  # 64 cubes / batch 16 x 2 epochs
    encoder_weights = [k for k in before if k.startswith("encoder.") and k.endswith("weight")]
    head_weights = [k for k in before if k.startswith("reconstruction_head.") and k.endswith("weight")]
    for state in phase2[:5]:  # steps 1-5 of phase 2 (across the epoch boundary): encoder frozen
        assert all(torch.equal(state[k], before[k]) for k in encoder_weights)
    assert any(not torch.equal(phase2[0][k], before[k]) for k in head_weights)
    assert any(not torch.equal(phase2[5][k], phase2[4][k]) for k in encoder_weights)  # step 6 moves it


def test_lever_settings_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="train.balance"):
        Trainer(tiny_config(balance="pcgrad"), tiny_cubes(), tmp_path / "x", progress=False)
    with pytest.raises(ConfigError, match="freeze_encoder_steps"):
        Schedule.from_config({"order": "pre,rec", "epochs": 1, "freeze_encoder_steps": -1})
    schedule = Schedule.from_config({"order": "pre,rec,cls", "epochs": 1, "freeze_encoder_steps": [0, 10, 20]})
    assert [p.freeze_encoder_steps for p in schedule.phases] == [0, 10, 20]


def test_epoch_fraction_trains_a_fresh_subset_each_epoch(tmp_path):
    config = tiny_config(epochs=(2, 1, 1))
    config["train"]["epoch_fraction"] = 0.5
    trainer = Trainer(config, tiny_cubes(), tmp_path / "run", progress=False)
    first, second = trainer._epoch_batches(0, 0), trainer._epoch_batches(0, 1)
    seen_first, seen_second = torch.cat(first), torch.cat(second)
    assert len(seen_first) == len(seen_second) == 32  # half of the 64 cubes, batch 16: 2 steps
    assert len(first) == 2 and len(set(seen_first.tolist())) == 32
    assert set(seen_first.tolist()) != set(seen_second.tolist())  # another random half next epoch
    for bad in (0, 1.5, "half", True):
        config["train"]["epoch_fraction"] = bad
        with pytest.raises(ConfigError, match="epoch_fraction"):
            Trainer(config, tiny_cubes(), tmp_path / "bad", progress=False)


def test_weight_average_follows_its_recursion_and_phase_checkpoints_hold_it(tmp_path):
    """train.ema_decay: after every step each float entry of the state moves (1 - decay) of the way
    to the model's; the phase checkpoint (what is scored) holds the average, checkpoints/raw/ the
    weights as trained; ema_decay 0 writes no raw folder."""
    from seqvad.train import load_checkpoint

    decay, cubes = 0.9, tiny_cubes()
    trainer = Trainer(tiny_config(epochs=(1, 1, 1), ema_decay=decay), cubes, tmp_path / "ema", progress=False)
    expected = {k: v.detach().clone().double() for k, v in trainer.runner.model.state_dict().items()}
    steps = {"n": 0}

    def follow(info):
        steps["n"] += 1
        for name, value in trainer.runner.model.state_dict().items():
            if value.is_floating_point():
                expected[name] = decay * expected[name] + (1 - decay) * value.double()
            else:
                expected[name] = value.clone().double()

    trainer.on_step = follow
    trainer.fit()
    assert steps["n"] == 12
    run = tmp_path / "ema" / "checkpoints"
    averaged, raw = load_checkpoint(run / "phase3.pt"), load_checkpoint(run / "raw" / "phase3.pt")
    weights = dict(trainer.runner.model.named_parameters())
    for name in weights:  # the BatchNorm statistics are recomputed (next test)
        torch.testing.assert_close(averaged["model"][name].double(), expected[name], rtol=1e-5, atol=1e-6)
    model_now = trainer.runner.model.state_dict()
    assert all(torch.equal(raw["model"][k], model_now[k]) for k in model_now)
    assert any(not torch.allclose(averaged["model"][k], raw["model"][k]) for k in weights)
    assert averaged["info"]["ema_decay"] == decay and "ema_decay" not in raw["info"]

    plain = Trainer(tiny_config(epochs=(1, 1, 1)), cubes, tmp_path / "plain", progress=False)
    plain.fit()
    assert not (tmp_path / "plain" / "checkpoints" / "raw").exists()


def test_weight_average_resumes_exactly(tmp_path):
    from seqvad.train import load_checkpoint

    from test_train import Killed, kill_at

    config, cubes = tiny_config(epochs=(1, 2, 1), ema_decay=0.8, checkpoint_every_steps=3), tiny_cubes()
    Trainer(config, cubes, tmp_path / "straight", progress=False).fit()
    with pytest.raises(Killed):
        Trainer(config, cubes, tmp_path / "killed", progress=False, on_step=kill_at(11)).fit()
    Trainer(config, cubes, tmp_path / "killed", progress=False).fit(resume=True)
    for name in ("phase2.pt", "phase3.pt", "raw/phase3.pt"):
        a = load_checkpoint(tmp_path / "straight" / "checkpoints" / name)["model"]
        b = load_checkpoint(tmp_path / "killed" / "checkpoints" / name)["model"]
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_ema_decay_out_of_range_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="train.ema_decay"):
        Trainer(tiny_config(ema_decay=1.0), tiny_cubes(), tmp_path / "x", progress=False)


def test_recomputed_batchnorm_statistics_are_those_of_the_cubes_as_scored():
    """The first BatchNorm's running mean and variance become the plain mean and unbiased variance
    of the first convolution's outputs over every cube's forward and backward snippets."""
    from seqvad.model import build_model
    from seqvad.tasks import backward_snippet, forward_snippet
    from seqvad.averaging import recompute_batchnorm
    from seqvad.train import to_float_cubes

    torch.manual_seed(0)
    model = build_model({"blocks": 2, "width": 4, "latent": 8, "projection": 8}, 1, window=4, size=32)
    cubes = torch.from_numpy(tiny_cubes(48))
    recompute_batchnorm(model.eval(), cubes, batch_size=48)  # one batch: its statistics exactly
    x = to_float_cubes(cubes)
    stacked = torch.cat([forward_snippet(x), backward_snippet(x)]).flatten(1, 2)
    with torch.no_grad():
        out = model.encoder.layers[0](stacked)
    norm = model.encoder.layers[1]
    torch.testing.assert_close(norm.running_mean, out.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(norm.running_var, out.transpose(0, 1).flatten(1).var(1), rtol=1e-4, atol=1e-5)
    assert norm.momentum == 0.1 and not model.training
