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
