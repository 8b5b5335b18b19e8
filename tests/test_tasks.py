import math

import pytest
import torch
from torch import nn

from seqvad.config import DEFAULTS
from seqvad.curriculum import KNOWN_TASKS
from seqvad.errors import ConfigError
from seqvad.model import SeqVADModel
from seqvad.tasks import (TASKS, ContrastiveLoss, GradientLoss, OrderClassification, Prediction, Reconstruction,
                          Sparsity, accelerate, backward_snippet, build_tasks, forward_snippet,
                          out_of_order_permutations, prediction_error, reverse, shared_codes, shuffle, static_mask,
                          target_frame)

TINY = dict(width=4, latent=8, projection=6, hidden=16)


def numbered_cubes(batch=2, step=0.1):
    """Frame t of every cube is a constant image of value (t - 4) * step: easy to read back."""
    values = (torch.arange(9.0) - 4) * step
    return values.view(1, 9, 1, 1, 1).expand(batch, 9, 1, 8, 8).clone()


def frame_ids(snippet, step=0.1):
    return torch.round(snippet.mean(dim=(2, 3, 4)) / step + 4).long()


def random_cubes(batch=4, seed=0):
    return torch.rand(batch, 9, 1, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ---------------------------------------------------------------- snippets


def test_snippets_follow_the_data_contract():
    cubes = numbered_cubes()
    assert frame_ids(forward_snippet(cubes))[0].tolist() == [0, 1, 2, 3]
    assert frame_ids(backward_snippet(cubes))[0].tolist() == [8, 7, 6, 5]
    assert frame_ids(target_frame(cubes)[:, None])[0].tolist() == [4]
    assert frame_ids(reverse(forward_snippet(cubes)))[0].tolist() == [3, 2, 1, 0]


def test_accelerated_snippet_takes_every_second_frame():
    cubes = numbered_cubes(batch=3)
    assert frame_ids(accelerate(cubes)).tolist() == [[0, 2, 4, 6]] * 3
    per_sample = accelerate(cubes, start=torch.tensor([0, 1, 2]))
    assert frame_ids(per_sample).tolist() == [[0, 2, 4, 6], [1, 3, 5, 7], [2, 4, 6, 8]]


def test_shuffle_is_never_identity_nor_reversal_and_covers_all_22_orders():
    assert len(out_of_order_permutations(4)) == 22
    cubes = numbered_cubes(batch=2000)
    orders = frame_ids(shuffle(forward_snippet(cubes), torch.Generator().manual_seed(1)))
    as_tuples = {tuple(row) for row in orders.tolist()}
    assert (0, 1, 2, 3) not in as_tuples and (3, 2, 1, 0) not in as_tuples
    assert len(as_tuples) == 22
    assert all(sorted(row) == [0, 1, 2, 3] for row in as_tuples)  # a permutation, no frame lost


def test_shuffle_is_reproducible_with_a_generator():
    snippet = forward_snippet(numbered_cubes(batch=16))
    first = shuffle(snippet, torch.Generator().manual_seed(5))
    second = shuffle(snippet, torch.Generator().manual_seed(5))
    assert torch.equal(first, second)


def test_static_mask_thresholds_mean_frame_difference_in_grey_levels():
    still = torch.zeros(1, 9, 1, 8, 8)
    moving = numbered_cubes(batch=1, step=3 / 127.5)  # 3 grey levels between consecutive frames
    cubes = torch.cat([still, moving])
    assert static_mask(cubes, threshold=2.0).tolist() == [True, False]
    assert static_mask(cubes, threshold=4.0).tolist() == [True, True]


# ---------------------------------------------------------------- standalone losses


def test_gradient_loss_is_zero_for_identical_images_and_ignores_a_constant_offset():
    image = torch.rand(2, 1, 16, 16)
    loss = GradientLoss()
    assert loss(image, image) == 0
    assert loss(image + 0.3, image) < 1e-6  # same gradients, only intensities differ
    assert loss(image.flip(-1), image) > 0.01


def test_contrastive_loss_falls_as_negatives_move_apart():
    loss = ContrastiveLoss(tau=0.1)
    anchor = torch.tensor([[1.0, 0.0]], dtype=torch.float64)  # float64: exp(-20) still counts
    angles = torch.linspace(0, math.pi, 7, dtype=torch.float64)
    values = [float(loss(anchor, anchor, torch.stack([torch.cos(a), torch.sin(a)]).view(1, 1, 2)))
              for a in angles]
    assert all(later < earlier for earlier, later in zip(values, values[1:]))
    assert values[0] == pytest.approx(math.log(2))  # negative identical to the positive


def test_pooled_reduction_is_the_literal_batch_sum():
    loss = ContrastiveLoss(tau=0.5, reduction="pooled")
    anchor, positive, negatives = torch.randn(5, 3), torch.randn(5, 3), torch.randn(5, 2, 3)
    a = nn.functional.normalize(anchor, dim=-1)
    s_pos = torch.exp((a * nn.functional.normalize(positive, dim=-1)).sum(-1) / 0.5).sum()
    s_neg = torch.exp((a[:, None] * nn.functional.normalize(negatives, dim=-1)).sum(-1) / 0.5).sum()
    expected = -torch.log(s_pos / (s_pos + s_neg))
    assert float(loss(anchor, positive, negatives)) == pytest.approx(float(expected), rel=1e-5)


def test_masked_negatives_are_left_out_of_the_contrastive_loss():
    loss = ContrastiveLoss(tau=0.1)
    anchor, positive, negatives = torch.randn(4, 3), torch.randn(4, 3), torch.randn(4, 2, 3)
    keep = torch.tensor([True, False, True, False])
    masked = loss(anchor, positive, negatives, keep[:, None].expand(4, 2))
    assert float(masked) == pytest.approx(float(loss(anchor[keep], positive[keep], negatives[keep])), rel=1e-5)
    assert loss(anchor, positive, negatives, torch.zeros(4, 2, dtype=torch.bool)) == 0


# ---------------------------------------------------------------- tasks with stand-in models


class Oracle(nn.Module):
    """Encodes a snippet as itself and decodes perfectly: every generative loss must be 0."""

    def __init__(self, cubes):
        super().__init__()
        self.cubes = cubes

    def encode(self, snippet):
        return snippet

    def predict_from_codes(self, forward_code, backward_code):
        return target_frame(self.cubes)

    def predict(self, forward, backward):
        return target_frame(self.cubes)

    def reconstruct_code(self, code):
        return code


def test_perfect_prediction_and_reconstruction_cost_nothing():
    cubes = random_cubes()
    losses = {**Prediction(grad_weight=1.0)(Oracle(cubes), cubes), **Reconstruction()(Oracle(cubes), cubes)}
    assert set(losses) == {"pre", "grd", "rec"}
    assert all(float(value) == 0 for value in losses.values())
    assert prediction_error(Oracle(cubes), cubes).tolist() == [0.0] * 4


class FrameOrderOracle(nn.Module):
    """Encodes a numbered snippet as its frame ids; the classifier says 'in order' (+20) for
    steps of +-1 and 'out of order' (-20) otherwise, or always 'in order' if ``always``."""

    def __init__(self, always=False):
        super().__init__()
        self.always = always

    def encode(self, snippets):
        return frame_ids(snippets).float()

    def project_code(self, ids):
        return ids

    def classify(self, ids):
        steps = ids[:, 1:] - ids[:, :-1]
        in_order = (steps == 1).all(1) | (steps == -1).all(1) | torch.tensor(self.always)
        return torch.where(in_order, 20.0, -20.0)


def test_order_labels_are_one_for_original_and_reversed_zero_for_shuffled_and_accelerated():
    cubes = numbered_cubes(batch=8)
    task = OrderClassification(static_threshold=0.0)
    snippet, reversed_, shuffled, accelerated = task.snippets(cubes)
    assert frame_ids(reversed_)[0].tolist() == [3, 2, 1, 0]
    assert frame_ids(accelerated)[0].tolist() == [0, 2, 4, 6]
    # an oracle that knows the true order gets (almost) zero loss: the labels are S, S_rev -> 1, S_shu, S_acc -> 0
    assert task(FrameOrderOracle(), cubes)["cls"] < 1e-6
    assert task(FrameOrderOracle(always=True), cubes)["cls"] > 5


def test_static_cubes_are_not_negatives():
    moving = numbered_cubes(batch=1)
    still = torch.zeros_like(moving)
    task = OrderClassification(static_threshold=2.0)
    # the classifier calls everything 'in order': only negatives cost (20 each); the still cube's
    # two negatives are left out, so 2 of the 6 remaining terms cost 20
    loss = task(FrameOrderOracle(always=True), torch.cat([moving, still]))["cls"]
    assert float(loss) == pytest.approx(20 * 2 / 6, rel=1e-3)
    # a batch of only still cubes has no negatives at all: contrastive loss exactly 0
    model = SeqVADModel(**TINY)
    assert task(model, torch.zeros(3, 9, 1, 32, 32))["con"] == 0


# ---------------------------------------------------------------- tasks on a real (tiny) model


def test_every_task_gives_finite_scalars_that_train_the_model():
    model = SeqVADModel(memory={"items": 10}, **TINY)
    cubes = random_cubes()
    tasks = build_tasks(DEFAULTS["tasks"])
    losses = {key: value for task in tasks.values() for key, value in task(model, cubes).items()}
    assert set(losses) == {"pre", "grd", "rec", "cls", "con", "sps"}
    assert all(value.dim() == 0 and torch.isfinite(value) for value in losses.values())
    assert losses["sps"] >= 0
    sum(losses.values()).backward()
    assert all(p.grad is not None for name, p in model.named_parameters())


def test_sparsity_needs_a_memory():
    with pytest.raises(ConfigError, match="memory"):
        Sparsity()(SeqVADModel(**TINY), random_cubes())


def counting_encoder(model):
    calls = []
    original = model.encode
    model.encode = lambda snippet: calls.append(len(snippet)) or original(snippet)
    return calls


def test_shared_codes_encode_every_snippet_of_a_step_in_one_pass_with_the_same_losses():
    model = SeqVADModel(**TINY).eval()  # eval: codes do not depend on what is encoded together
    cubes = random_cubes()
    tasks = build_tasks({})
    active = [tasks["pre"], tasks["rec"], tasks["cls"]]
    calls = counting_encoder(model)
    separate = {key: value for task in active for key, value in task(model, cubes).items()}
    assert calls == [8, 4, 16]  # pre: fwd+bwd, rec: fwd, cls: S, S_rev, S_shu, S_acc
    calls.clear()
    shared = shared_codes(model, active, cubes)
    together = {key: value for task in active for key, value in task(model, cubes, shared=shared).items()}
    assert calls == [20]  # fwd, bwd, rev, shu, acc once each
    for key in ("pre", "grd", "rec"):
        assert torch.allclose(separate[key], together[key])
    assert set(together) == set(separate) and all(torch.isfinite(v) for v in together.values())


def test_a_partly_filled_shared_dict_saves_work_without_splitting_the_order_batch():
    model = SeqVADModel(**TINY)
    cubes = random_cubes()
    tasks = build_tasks({})
    calls = counting_encoder(model)
    shared = {}
    for name in ("pre", "rec", "cls"):
        tasks[name](model, cubes, shared=shared)
    # rec reuses pre's forward code; cls encodes its four snippets together in one BatchNorm batch
    assert calls == [8, 16]


def test_prediction_loss_falls_when_training_on_a_batch():
    torch.manual_seed(0)
    model = SeqVADModel(**TINY)
    cubes = random_cubes(batch=4)
    task = Prediction()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(12):
        loss = task(model, cubes)["pre"]
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert task(model, cubes)["pre"].item() < 0.8 * first


def test_prediction_error_kinds_rank_errors_the_same_way():
    model = SeqVADModel(**TINY).eval()
    cubes = random_cubes(batch=3)
    cubes[0] = 0.0  # a flat cube is easier to predict than noise
    mse = prediction_error(model, cubes, "mse")
    psnr = prediction_error(model, cubes, "psnr")
    assert mse.shape == psnr.shape == (3,)
    assert torch.equal(mse.argsort(), psnr.argsort())
    assert torch.allclose(psnr, -10 * torch.log10(4 / mse))
    with pytest.raises(ConfigError, match="scoring.error"):
        prediction_error(model, cubes, "ssim")


# ---------------------------------------------------------------- configuration


def test_build_tasks_from_config_and_registry_matches_curriculum():
    assert tuple(TASKS) == KNOWN_TASKS
    tasks = build_tasks({"pre": {"grad_weight": 0.5}, "cls": {"tau": 0.2, "con_weight": 0.0}})
    assert set(tasks) == set(TASKS) and all(tasks[name].name == name for name in tasks)
    assert tasks["pre"].grad_weight == 0.5 and tasks["cls"].contrastive.tau == 0.2


@pytest.mark.parametrize("cfg, message", [
    ({"flow": {}}, "unknown tasks flow"),
    ({"pre": {"grad": 1.0}}, "tasks.pre: unknown options grad"),
    ({"cls": {"tau": 0}}, "tau"),
    ({"cls": {"con_weight": -1}}, "con_weight"),
    ({"rec": {"weight": 1}}, "tasks.rec"),
    ({"cls": {"acc_start": "late"}}, "acc_start"),
])
def test_bad_task_config_raises(cfg, message):
    with pytest.raises(ConfigError, match=message):
        build_tasks(cfg)


def test_docstring_examples_run():
    """Each module's docstring examples (one per loss, task and network part) must stay runnable."""
    import doctest

    import seqvad.model
    import seqvad.tasks

    for module in (seqvad.model, seqvad.tasks):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
