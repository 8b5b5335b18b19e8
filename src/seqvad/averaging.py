"""A moving average of a model's weights during training (``train.ema_decay``), and the BatchNorm
statistics recomputed for weights that no training step produced."""

from __future__ import annotations

import copy
from typing import Mapping

import torch
from torch import nn

from seqvad.scoring.errors import to_unit_range


class WeightAverage:
    """An exponential moving average of a model's state: after every step each floating-point
    weight and BatchNorm statistic moves ``1 - decay`` of the way to the model's (integer
    counters are copied). Written here rather than with ``torch.optim.swa_utils.AveragedModel``:
    the average must be a plain state dict that ``last.pt`` saves and a resume restores exactly,
    and the phase checkpoints load it as an ordinary model."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = float(decay)
        self.state = {name: value.detach().clone() for name, value in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for name, value in model.state_dict().items():
            average = self.state[name]
            if average.is_floating_point():
                average.lerp_(value, 1.0 - self.decay)
            else:
                average.copy_(value)

    def load(self, state: Mapping[str, torch.Tensor]) -> None:
        for name, value in state.items():
            self.state[name].copy_(value)

    def model_state(self, model: nn.Module, cubes: torch.Tensor, batch_size: int,
                    limit: int = 8192) -> dict[str, torch.Tensor]:
        """The averaged weights as a model state, their BatchNorm statistics recomputed on up to
        ``limit`` evenly spaced training cubes (``model`` is a template; it is not changed).

        The averaged statistics were gathered by the weights of each step, not by their average:
        on Ped2 validation they cost phase 1 about 11 points of AUC (results/ped2/selection.csv,
        row ema-0.998), which is why SWA recomputes them (``torch.optim.swa_utils.update_bn``).
        Done here rather than with update_bn because a cube is scored through two snippets and two
        heads, not one forward call; evenly spaced cubes draw nothing from the training RNG."""
        averaged = copy.deepcopy(model)
        averaged.load_state_dict(self.state)
        recompute_batchnorm(averaged, cubes, batch_size, limit)
        return averaged.state_dict()


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, cubes: torch.Tensor, batch_size: int, limit: int = 8192) -> None:
    """BatchNorm running statistics of ``model`` as the plain mean over batches of up to ``limit``
    evenly spaced uint8 ``cubes``, each passed as scoring passes it: the encoder on its forward and
    backward snippets, the prediction head on both codes, the reconstruction head on the forward one."""
    from seqvad.tasks import backward_snippet, forward_snippet

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or len(cubes) == 0:
        return
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the batches
    training = model.training
    model.train()
    chosen = torch.linspace(0, len(cubes) - 1, min(limit, len(cubes))).round().long()
    for indices in chosen.split(batch_size):
        batch = to_unit_range(cubes[indices.to(cubes.device)])
        codes = model.encode(torch.cat([forward_snippet(batch), backward_snippet(batch)]))
        model.prediction_head(codes)
        model.reconstruction_head(codes[:len(batch)])
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    model.train(training)
