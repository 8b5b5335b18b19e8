"""Pretext tasks (Sec. 3.3): each takes a batch of cubes, builds its inputs, returns its losses.

A batch of cubes is a float tensor (B, 2T+1, C, S, S) in [-1, 1] (T = ``window`` = 4): frame t of
every object is ``cubes[:, t]`` and the middle frame ``cubes[:, T]`` is the prediction target.

Decisions the paper leaves open (see also DESIGN.md):

* The snippet S that the reconstruction and order tasks use is the forward snippet
  ``cubes[:, 0:T]`` (frames t-4..t-1): it holds no frame of the prediction target, so
  reconstruction cannot leak the answer of the prediction task into the shared code.
* "L2-norm" in Eq. 2, 4 and 11 is the mean squared error (per pixel), which keeps the loss scale
  independent of crop size and channels.
* Eq. 3 compares signed image gradients (forward differences along x and y) with L1, averaged.
* Eq. 5 as printed pairs the logs with the wrong samples; we use the text: S and S_rev are in
  order (label 1), S_shu and S_acc out of order (label 0), binary cross-entropy averaged over the
  four (the printed /2 is only a scale factor).
* Eq. 8-10 sum over the batch inside one log; we compute one InfoNCE term per sample (its own
  reversal as the positive, its own shuffled and accelerated snippets as negatives) and average
  them, the usual reading; ``ContrastiveLoss(reduction="pooled")`` gives the literal form.
* Static objects (mean absolute frame difference below ``static_threshold`` grey levels) make
  S_shu and S_acc identical to S, so they are not used as negatives in either loss.
* S_acc takes every second frame starting at frame 0 of the cube (``cubes[:, [0, 2, 4, 6]]``);
  ``acc_start="random"`` draws the start from {0, 1, 2} per sample instead.
"""

from __future__ import annotations

import inspect
import itertools
import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqvad.errors import ConfigError

# --------------------------------------------------------------------------------------------
# Snippet helpers: all vectorised over the batch.


def window_of(cubes: Tensor) -> int:
    """T for cubes of 2T+1 frames."""
    if cubes.dim() != 5 or cubes.shape[1] % 2 == 0 or cubes.shape[1] < 3:
        raise ConfigError(f"cubes of shape {tuple(cubes.shape)} are not (B, 2T+1, C, S, S)")
    return cubes.shape[1] // 2


def forward_snippet(cubes: Tensor) -> Tensor:
    """Frames t-T..t-1 in time order: (B, T, C, S, S)."""
    return cubes[:, : window_of(cubes)]


def backward_snippet(cubes: Tensor) -> Tensor:
    """Frames t+T..t+1 (nearest to the target last, as the forward snippet): (B, T, C, S, S)."""
    window = window_of(cubes)
    return cubes[:, window + 1:].flip(1)


def target_frame(cubes: Tensor) -> Tensor:
    """The middle frame X_{T+1}, target of the bidirectional prediction: (B, C, S, S)."""
    return cubes[:, window_of(cubes)]


def reverse(snippet: Tensor) -> Tensor:
    """S_rev: the snippet played backwards (in order, label 1)."""
    return snippet.flip(1)


@lru_cache(maxsize=None)
def out_of_order_permutations(length: int) -> Tensor:
    """Every permutation of ``length`` frames except the identity and the reversal: (P, length).
    For 4 frames that is 24 - 2 = 22."""
    identity, reversal = tuple(range(length)), tuple(range(length - 1, -1, -1))
    perms = [p for p in itertools.permutations(range(length)) if p not in (identity, reversal)]
    if not perms:
        raise ConfigError(f"a snippet of {length} frames has no out-of-order permutation")
    return torch.tensor(perms, dtype=torch.long)


def shuffle(snippet: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """S_shu: each sample's frames in a random order that is neither the identity nor the
    reversal (drawn uniformly from the valid permutations with ``generator``, else the global
    torch RNG)."""
    batch, length = snippet.shape[:2]
    perms = out_of_order_permutations(length)
    choice = torch.randint(len(perms), (batch,), generator=generator)
    order = perms[choice].to(snippet.device)
    return snippet[torch.arange(batch, device=snippet.device)[:, None], order]


def accelerate(cubes: Tensor, start: int | Tensor = 0, length: int | None = None) -> Tensor:
    """S_acc: every second frame of the cube from ``start`` (an int or one per sample):
    ``cubes[:, [0, 2, 4, 6]]`` for 9-frame cubes and start 0."""
    length = window_of(cubes) if length is None else length
    steps = torch.arange(length, device=cubes.device) * 2
    if isinstance(start, int):
        return cubes[:, steps + start]
    index = start.to(cubes.device)[:, None] + steps
    return cubes[torch.arange(len(cubes), device=cubes.device)[:, None], index]


def frame_motion(cubes: Tensor) -> Tensor:
    """Mean absolute difference of consecutive frames per cube, in grey levels (uint8 units)."""
    return (cubes[:, 1:] - cubes[:, :-1]).abs().flatten(1).mean(1) * 127.5


def static_mask(cubes: Tensor, threshold: float = 2.0) -> Tensor:
    """True for cubes whose objects barely move: their shuffled/accelerated snippets are not
    out of order in any visible way, so they must not serve as negatives. (B,) bool."""
    return frame_motion(cubes) < threshold


# --------------------------------------------------------------------------------------------
# Standalone losses.


class GradientLoss(nn.Module):
    """Eq. 3: L_grd = || grad(X^) - grad(X) ||_1, with forward differences along x and y,
    each averaged over pixels, summed over the two directions.

    >>> x = torch.rand(2, 1, 8, 8)
    >>> float(GradientLoss()(x, x))
    0.0
    """

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        dx = lambda img: img[..., :, 1:] - img[..., :, :-1]  # noqa: E731
        dy = lambda img: img[..., 1:, :] - img[..., :-1, :]  # noqa: E731
        return (dx(prediction) - dx(target)).abs().mean() + (dy(prediction) - dy(target)).abs().mean()


class OrderLoss(nn.Module):
    """Eq. 5 as the text means it: binary cross-entropy of in-order (label 1) versus out-of-order
    (label 0) logits, averaged over the samples whose ``weights`` are 1 (static negatives get 0).

    >>> logits = torch.tensor([5.0, 5.0, -5.0, -5.0])
    >>> labels = torch.tensor([1.0, 1.0, 0.0, 0.0])
    >>> round(float(OrderLoss()(logits, labels)), 4)
    0.0067
    """

    def forward(self, logits: Tensor, labels: Tensor, weights: Tensor | None = None) -> Tensor:
        losses = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
        if weights is None:
            return losses.mean()
        return (losses * weights).sum() / weights.sum().clamp_min(1)


class ContrastiveLoss(nn.Module):
    """Eq. 7-10: L_con = -log(s_pos / (s_pos + s_neg)) with s = exp(cos(a, b) / tau).

    ``anchor`` and ``positive`` are (B, D) codes (S and S_rev), ``negatives`` (B, K, D) (S_shu,
    S_acc), ``negative_mask`` (B, K) marks the negatives to use. ``reduction="mean"``: one term
    per sample, averaged over the samples that have at least one negative (a sample without
    negatives has loss exactly 0 and would only dilute the mean). ``"pooled"``: the sums of
    Eq. 8-9 run over the whole batch inside a single log.

    >>> a = torch.tensor([[1.0, 0.0]])
    >>> near, far = torch.tensor([[[0.0, 1.0]]]), torch.tensor([[[-1.0, 0.0]]])
    >>> loss = ContrastiveLoss(tau=0.1)
    >>> bool(loss(a, a, far) < loss(a, a, near))
    True
    """

    def __init__(self, tau: float = 0.1, reduction: str = "mean"):
        super().__init__()
        if not tau > 0:
            raise ConfigError(f"tasks.cls.tau: must be > 0, got {tau}")
        if reduction not in ("mean", "pooled"):
            raise ConfigError(f"contrastive reduction: {reduction!r} is not 'mean' or 'pooled'")
        self.tau, self.reduction = float(tau), reduction

    def forward(self, anchor: Tensor, positive: Tensor, negatives: Tensor,
                negative_mask: Tensor | None = None) -> Tensor:
        anchor = F.normalize(anchor, dim=-1)
        pos = (anchor * F.normalize(positive, dim=-1)).sum(-1) / self.tau  # (B,)
        neg = (anchor[:, None] * F.normalize(negatives, dim=-1)).sum(-1) / self.tau  # (B, K)
        if negative_mask is not None:
            neg = neg.masked_fill(~negative_mask, -math.inf)  # exp(-inf) = 0: left out of s_neg
        if self.reduction == "pooled":
            return torch.logsumexp(torch.cat([pos, neg.flatten()]), 0) - torch.logsumexp(pos, 0)
        per_sample = torch.logsumexp(torch.cat([pos[:, None], neg], 1), 1) - pos
        has_negative = torch.isfinite(neg).any(1)
        # rows without negatives are exactly 0; dividing by their count (not B) keeps the scale,
        # and no Python branch keeps it free of GPU syncs
        return per_sample.masked_fill(~has_negative, 0).sum() / has_negative.sum().clamp_min(1)


# --------------------------------------------------------------------------------------------
# Tasks. Each names the snippets it encodes (``keys``); ``encode_snippets`` encodes the missing
# ones of a step in a single encoder pass and keeps the codes in ``shared``.

SNIPPETS = {"fwd": forward_snippet, "bwd": backward_snippet}


class Task(nn.Module):
    """A pretext task: ``forward(model, cubes, shared=None)`` returns named scalar losses, each
    already multiplied by its sub-weight inside the task (the phase weight is the trainer's).

    ``shared`` (optional) is a dict made fresh for every batch and passed to every task of that
    training step; ``shared_codes(model, tasks, cubes)`` makes one with the codes of all the
    step's snippets from ONE encoder pass. Without it each task encodes its own snippets: the
    same losses, at up to 2/7 more encoder work in a phase with all three tasks.
    """

    name: str = ""
    keys: tuple[str, ...] = ()  # snippets this task encodes, e.g. ("fwd", "bwd")

    def make_snippet(self, key: str, cubes: Tensor) -> Tensor:
        return SNIPPETS[key](cubes)

    def forward(self, model: nn.Module, cubes: Tensor,
                shared: dict | None = None) -> dict[str, Tensor]:  # pragma: no cover
        raise NotImplementedError


def encode_snippets(model: nn.Module, cubes: Tensor, tasks: list[Task],
                    shared: dict | None = None) -> dict[str, Tensor]:
    """Latent codes of every snippet the ``tasks`` need, by key. Codes already in ``shared`` are
    reused; the rest are encoded together in one pass (one BatchNorm batch) and stored there."""
    codes = shared.setdefault("codes", {}) if shared is not None else {}
    memory = shared.setdefault("memory_weights", {}) if shared is not None else {}
    makers: dict[str, Task] = {}  # who builds each snippet: the first task that names it
    for task in tasks:
        for key in task.keys:
            makers.setdefault(key, task)
    missing = [key for key in makers if key not in codes]
    if missing:
        encoded = model.encode(torch.cat([makers[key].make_snippet(key, cubes) for key in missing]))
        weights = getattr(model, "last_memory_weights", None)
        for index, key in enumerate(missing):
            codes[key] = encoded[index * len(cubes):(index + 1) * len(cubes)]
            if weights is not None:
                memory[key] = weights[index * len(cubes):(index + 1) * len(cubes)]
    return {key: codes[key] for task in tasks for key in task.keys}


def shared_codes(model: nn.Module, tasks: list[Task], cubes: Tensor) -> dict:
    """A ``shared`` dict for one training step: the codes of all snippets of ``tasks`` from a
    single encoder pass (fwd, bwd, rev, shu, acc: 5B snippets instead of 7B in phase 3)."""
    shared: dict = {}
    encode_snippets(model, cubes, list(tasks), shared)
    return shared


class Prediction(Task):
    """Bidirectional frame prediction, Eq. 1-3: L_pre = MSE(X^, X_{T+1}) and
    ``grad_weight`` * L_grd(X^, X_{T+1}), with X^ the mean of the forward and backward predictions.

    >>> from seqvad.model import SeqVADModel
    >>> losses = Prediction()(SeqVADModel(width=4, latent=8, projection=4), torch.zeros(2, 9, 1, 32, 32))
    >>> sorted(losses)
    ['grd', 'pre']
    """

    name = "pre"
    keys = ("fwd", "bwd")

    def __init__(self, grad_weight: float = 1.0):
        super().__init__()
        self.grad_weight = check_non_negative("tasks.pre.grad_weight", grad_weight)
        self.gradient_loss = GradientLoss()

    def forward(self, model: nn.Module, cubes: Tensor, shared: dict | None = None) -> dict[str, Tensor]:
        codes = encode_snippets(model, cubes, [self], shared)
        prediction = model.predict_from_codes(codes["fwd"], codes["bwd"])
        target = target_frame(cubes)
        return {"pre": F.mse_loss(prediction, target),
                "grd": self.grad_weight * self.gradient_loss(prediction, target)}


class Reconstruction(Task):
    """Frame reconstruction, Eq. 4: L_rec = MSE(H_rec(E(S)), S) with S the forward snippet.

    >>> from seqvad.model import SeqVADModel
    >>> list(Reconstruction()(SeqVADModel(width=4, latent=8, projection=4), torch.zeros(2, 9, 1, 32, 32)))
    ['rec']
    """

    name = "rec"
    keys = ("fwd",)

    def forward(self, model: nn.Module, cubes: Tensor, shared: dict | None = None) -> dict[str, Tensor]:
        code = encode_snippets(model, cubes, [self], shared)["fwd"]
        return {"rec": F.mse_loss(model.reconstruct_code(code), forward_snippet(cubes))}


class OrderClassification(Task):
    """Frame order classification with its contrastive loss, Eq. 5-10.

    The four snippets S, S_rev (label 1), S_shu, S_acc (label 0) are encoded in one batch; the
    projected codes feed both the classifier (``cls``, Eq. 5) and the contrastive loss
    (``con`` = ``con_weight`` * Eq. 10). Static cubes are left out as negatives.

    >>> from seqvad.model import SeqVADModel
    >>> cubes = torch.rand(2, 9, 1, 32, 32) * 2 - 1
    >>> sorted(OrderClassification()(SeqVADModel(width=4, latent=8, projection=4), cubes))
    ['cls', 'con']
    """

    name = "cls"
    keys = ("fwd", "rev", "shu", "acc")

    def __init__(self, tau: float = 0.1, con_weight: float = 1.0, static_threshold: float = 2.0,
                 acc_start: str = "fixed", generator: torch.Generator | None = None):
        super().__init__()
        self.contrastive = ContrastiveLoss(tau)
        self.order_loss = OrderLoss()
        self.con_weight = check_non_negative("tasks.cls.con_weight", con_weight)
        self.static_threshold = check_non_negative("tasks.cls.static_threshold", static_threshold)
        if acc_start not in ("fixed", "random"):
            raise ConfigError(f"tasks.cls.acc_start: {acc_start!r} is not 'fixed' or 'random'")
        self.acc_start = acc_start
        self.generator = generator

    def make_snippet(self, key: str, cubes: Tensor) -> Tensor:
        if key == "rev":
            return reverse(forward_snippet(cubes))
        if key == "shu":
            return shuffle(forward_snippet(cubes), self.generator)
        if key == "acc":
            start: int | Tensor = 0
            if self.acc_start == "random":  # any start whose frames, 2 apart, fit in the cube
                start = torch.randint(cubes.shape[1] - 2 * (window_of(cubes) - 1), (len(cubes),),
                                      generator=self.generator)
            return accelerate(cubes, start)
        return super().make_snippet(key, cubes)

    def snippets(self, cubes: Tensor) -> tuple[Tensor, ...]:
        """(S, S_rev, S_shu, S_acc), each (B, T, C, S, S)."""
        return tuple(self.make_snippet(key, cubes) for key in self.keys)

    def forward(self, model: nn.Module, cubes: Tensor, shared: dict | None = None) -> dict[str, Tensor]:
        # With BatchNorm, codes normalised in different batches would let the classifier tell S
        # from the others by batch statistics instead of frame order: the four must come from
        # one encoder pass, so a partial ``shared`` (only S from another task) is not used.
        if shared is not None and not all(key in shared.get("codes", {}) for key in self.keys):
            shared = None
        codes = encode_snippets(model, cubes, [self], shared)
        projected = model.project_code(torch.cat([codes[key] for key in self.keys]))
        logits = model.classify(projected)
        batch = len(cubes)
        moving = ~static_mask(cubes, self.static_threshold)
        ones = torch.ones(batch, device=cubes.device)
        labels = torch.cat([ones, ones, 0 * ones, 0 * ones])
        weights = torch.cat([ones, ones, moving.float(), moving.float()])
        anchor, positive, shuffled, accelerated = projected.split(batch)
        con = self.contrastive(anchor, positive, torch.stack([shuffled, accelerated], 1),
                               moving[:, None].expand(batch, 2))
        return {"cls": self.order_loss(logits, labels, weights), "con": self.con_weight * con}


class Sparsity(Task):
    """MemAE sparsity loss (Table 2's L_sps, Gong et al. 2019): the entropy of the memory
    addressing weights of the forward snippet's code, times ``weight`` (MemAE uses 2e-4).

    >>> from seqvad.model import SeqVADModel
    >>> model = SeqVADModel(width=4, latent=8, projection=4, memory={"items": 10})
    >>> bool(Sparsity()(model, torch.rand(2, 9, 1, 32, 32))["sps"] >= 0)
    True
    """

    name = "sps"
    keys = ("fwd",)

    def __init__(self, weight: float = 0.0002, eps: float = 1e-12):
        super().__init__()
        self.weight = check_non_negative("tasks.sps.weight", weight)
        self.eps = eps

    def forward(self, model: nn.Module, cubes: Tensor, shared: dict | None = None) -> dict[str, Tensor]:
        if getattr(model, "memory", None) is None:
            raise ConfigError("task sps needs a model with memory (set model.memory: {items: 100})")
        shared = {} if shared is None else shared
        encode_snippets(model, cubes, [self], shared)
        weights = shared["memory_weights"]["fwd"]
        # clamp inside the log: w * log(w) has an infinite slope at the zeros left by the shrinkage
        entropy = -(weights * weights.clamp_min(self.eps).log()).sum(-1).mean()
        return {"sps": self.weight * entropy.clamp_min(0)}


TASKS: dict[str, type[Task]] = {"pre": Prediction, "rec": Reconstruction, "cls": OrderClassification,
                                "sps": Sparsity}


def check_non_negative(key: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigError(f"{key}: must be a number >= 0, got {value!r}")
    return float(value)


def build_tasks(tasks_cfg: dict | None) -> dict[str, Task]:
    """Every task of ``TASKS``, configured from the config section ``tasks`` (missing sections take
    the defaults), e.g. ``{"pre": {"grad_weight": 1.0}, "cls": {"tau": 0.1}}``."""
    tasks_cfg = tasks_cfg or {}
    unknown = set(tasks_cfg) - set(TASKS)
    if unknown:
        raise ConfigError(f"tasks: unknown tasks {', '.join(sorted(unknown))} (known: {', '.join(TASKS)})")
    tasks = {}
    for name, cls in TASKS.items():
        options = tasks_cfg.get(name) or {}
        if not isinstance(options, dict):
            raise ConfigError(f"tasks.{name}: expected a mapping of options, got {options!r}")
        allowed = set(inspect.signature(cls.__init__).parameters) - {"self", "generator", "eps"}
        bad = set(options) - allowed
        if bad:
            raise ConfigError(f"tasks.{name}: unknown options {', '.join(sorted(bad))} "
                              f"(known: {', '.join(sorted(allowed)) or 'none'})")
        tasks[name] = cls(**options)
    return tasks


def prediction_error(model: nn.Module, cubes: Tensor, kind: str = "mse") -> Tensor:
    """Per-object anomaly score (Eq. 11 with Eq. 1's X^), shape (B,): the mean squared error of
    the bidirectional prediction (``"mse"``), or minus its PSNR (``"psnr"``, peak-to-peak 2 on the
    [-1, 1] scale) so that larger always means more anomalous. Runs without gradients and does not
    change the model's mode: call ``model.eval()`` first so BatchNorm uses its running statistics.
    """
    check_error_kind(kind)
    with torch.no_grad():
        prediction = model.predict(forward_snippet(cubes), backward_snippet(cubes))
        return error_of_prediction(prediction, cubes, kind)


def check_error_kind(kind: str) -> None:
    if kind not in ("mse", "psnr"):
        raise ConfigError(f"scoring.error: {kind!r} is not 'mse' or 'psnr'")


def error_of_prediction(prediction: Tensor, cubes: Tensor, kind: str = "mse") -> Tensor:
    """The error of a bidirectional prediction ``X^`` of each cube's middle frame, (B,)."""
    mse = (prediction - target_frame(cubes)).pow(2).flatten(1).mean(1)
    if kind == "mse":
        return mse
    return -10 * torch.log10(4.0 / mse.clamp_min(1e-10))
