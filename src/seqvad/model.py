"""The network of Sec. 3.2: one shared encoder, two decoder heads, a projection block and a classifier.

Pure ``nn.Module`` s: nothing here knows about losses, schedules or files.

Shapes (defaults: window 4, 32x32 crops, ``blocks=2``, ``width=8``, ``latent=32``)::

    snippet (B, 4, C, 32, 32) --stack frames on channels--> (B, 4C, 32, 32)
    Encoder E:       stem conv 4C->8 @32 | block 8->16 @16 | block 16->32 @8  -> code (B, 32, 8, 8)
    [Memory]:        optional MemAE read-out of every spatial code vector (Table 2 study only)
    PredictionHead:  deconv block 32->16 @16 | deconv block 16->8 @32 | conv 8->C,  tanh -> (B, C, 32, 32)
    ReconstructionHead: same blocks          | conv 8->4C, tanh -> (B, 4, C, 32, 32)
    Projection B_pro: flatten -> FC 256 -> ReLU -> FC ``projection``
    ClassificationHead H_cls: FC 64 -> ReLU -> FC 1 (a raw logit)

The small default width is chosen for training on 2 CPU cores: one grey-scale snippet costs about
4.1 MFLOP through the encoder, and a phase-3 training step (all tasks, forward and backward)
about 0.1 GFLOP per cube. Width 16 costs 3.5x more; width 4 is no faster on CPU (memory bound)
and predicts markedly worse. GPU users can raise ``width`` and ``latent`` in the config.

Decisions the paper leaves open:

* An encoder block is ``conv3x3 stride 2 - norm - ReLU - conv3x3 - norm - ReLU``: with the stride
  in the first convolution both run at the reduced resolution (a conv-then-maxpool block would
  run its convolution at 4x the pixels).
* Widths double per block from ``width``; ``latent`` (if given) sets the channels of the last
  block, i.e. of the latent code, so the code size is independent of the width.
* A decoder block is ``ConvTranspose2d(k=2, stride 2) - norm - ReLU - conv3x3 - norm - ReLU``
  (kernel 2, stride 2 tiles the output without overlap: no checkerboard and 4x cheaper than k=4).
* Both heads end in one 3x3 convolution and ``tanh``: targets are pixels scaled to [-1, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqvad.errors import ConfigError

NORMS = ("batch", "group", "none")
MODEL_KEYS = ("blocks", "width", "latent", "projection", "norm", "memory", "hidden", "channels_last")


def make_norm(kind: str, channels: int) -> nn.Module:
    """BatchNorm, GroupNorm (up to 8 groups that divide ``channels``) or nothing."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"model.norm: {kind!r} is not one of {', '.join(NORMS)}")


def conv_norm_relu(c_in: int, c_out: int, norm: str, stride: int = 1) -> list[nn.Module]:
    # A bias is redundant right before a normalisation layer.
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=norm == "none"),
            make_norm(norm, c_out), nn.ReLU(inplace=True)]


class Encoder(nn.Module):
    """E(.): a stem convolution and ``blocks`` blocks, each halving the resolution (a UNet
    encoder without skip connections, Sec. 3.2 / 4.2).

    >>> enc = Encoder(in_channels=4, blocks=2, width=8, latent=16)
    >>> enc(torch.zeros(2, 4, 32, 32)).shape
    torch.Size([2, 16, 8, 8])
    """

    def __init__(self, in_channels: int, blocks: int, width: int, latent: int, norm: str = "batch"):
        super().__init__()
        widths = encoder_widths(blocks, width, latent)
        layers = conv_norm_relu(in_channels, widths[0], norm)
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += conv_norm_relu(c_in, c_out, norm, stride=2) + conv_norm_relu(c_out, c_out, norm)
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class Decoder(nn.Module):
    """A head of deconvolution blocks mirroring the encoder, ending in one convolution and tanh.

    H_pre (``out_channels = C``) and H_rec (``out_channels = 4C``) share this architecture and
    differ only in the last convolution, as in Sec. 4.2.

    >>> dec = Decoder(out_channels=1, blocks=2, width=8, latent=16)
    >>> dec(torch.zeros(2, 16, 8, 8)).shape
    torch.Size([2, 1, 32, 32])
    """

    def __init__(self, out_channels: int, blocks: int, width: int, latent: int, norm: str = "batch"):
        super().__init__()
        widths = encoder_widths(blocks, width, latent)[::-1]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 2, stride=2, bias=norm == "none"),
                       make_norm(norm, c_out), nn.ReLU(inplace=True)]
            layers += conv_norm_relu(c_out, c_out, norm)
        layers += [nn.Conv2d(widths[-1], out_channels, 3, padding=1), nn.Tanh()]
        self.layers = nn.Sequential(*layers)

    def forward(self, code: Tensor) -> Tensor:
        return self.layers(code)


class Projection(nn.Module):
    """B_pro(.): fully-connected layers from the flattened latent code to ``projection`` dims
    (the SimCLR projection block the paper cites for Eq. 6-10).

    >>> Projection(in_features=16 * 8 * 8, hidden=32, out_features=8)(torch.zeros(2, 16, 8, 8)).shape
    torch.Size([2, 8])
    """

    def __init__(self, in_features: int, hidden: int, out_features: int):
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(inplace=True),
                                    nn.Linear(hidden, out_features))

    def forward(self, code: Tensor) -> Tensor:
        return self.layers(code)


class ClassificationHead(nn.Module):
    """H_cls(.): fully-connected layers from a projected code to one in-order logit (Eq. 6).

    >>> ClassificationHead(8)(torch.zeros(3, 8)).shape
    torch.Size([3])
    """

    def __init__(self, in_features: int, hidden: int = 64):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))

    def forward(self, projected: Tensor) -> Tensor:
        return self.layers(projected).squeeze(-1)


class Memory(nn.Module):
    """MemAE memory (Gong et al. 2019, the paper's [11]; used only for the Table 2 study).

    Every spatial code vector z (dimension D) is replaced by a convex combination of N learned
    items: addressing weights w = softmax_i(cos(z, m_i)), hard-shrunk with threshold lambda by the
    continuous form w' = relu(w - lambda) * w / (|w - lambda| + eps), then re-normalised to sum 1.
    ``forward`` returns the read-out code and the weights (B, s, s, N) for the sparsity loss
    (the entropy of w', see ``tasks.Sparsity``).

    >>> mem = Memory(items=10, dim=16)
    >>> code, weights = mem(torch.randn(2, 16, 4, 4))
    >>> code.shape, weights.shape, bool(torch.allclose(weights.sum(-1), torch.ones(2, 4, 4)))
    (torch.Size([2, 16, 4, 4]), torch.Size([2, 4, 4, 10]), True)
    """

    def __init__(self, items: int = 100, dim: int = 64, shrink: float | None = None, eps: float = 1e-12):
        super().__init__()
        if items < 1:
            raise ConfigError(f"model.memory.items: must be >= 1, got {items}")
        self.items = nn.Parameter(torch.empty(items, dim).uniform_(-1 / math.sqrt(dim), 1 / math.sqrt(dim)))
        # MemAE recommends a threshold in [1/N, 3/N]; with cosine logits the softmax is flat, so
        # a threshold just below 1/N keeps the above-average items.
        self.shrink = 1.0 / items if shrink is None else float(shrink)
        self.eps = eps

    def forward(self, code: Tensor) -> tuple[Tensor, Tensor]:
        z = code.permute(0, 2, 3, 1)  # (B, s, s, D): one query per spatial position
        similarity = F.normalize(z, dim=-1) @ F.normalize(self.items, dim=-1).t()
        weights = similarity.softmax(dim=-1)
        if self.shrink > 0:
            shifted = weights - self.shrink
            shrunk = F.relu(shifted) * weights / (shifted.abs() + self.eps)
            total = shrunk.sum(dim=-1, keepdim=True)
            # A query with no item above the threshold (e.g. an all-zero code after ReLU gives a
            # uniform softmax) keeps its soft weights instead of reading nothing.
            weights = torch.where(total > 0, shrunk / total.clamp_min(self.eps), weights)
        read = weights @ self.items
        return read.permute(0, 3, 1, 2).contiguous(), weights


def encoder_widths(blocks: int, width: int, latent: int) -> list[int]:
    """Channels after the stem and after each block: width, 2w, 4w, ... with the last = latent."""
    widths = [width * 2 ** k for k in range(blocks + 1)]
    widths[-1] = latent
    return widths


class SeqVADModel(nn.Module):
    """The shared encoder with its prediction, reconstruction, projection and classification heads.

    >>> model = SeqVADModel(channels=1, width=8, latent=16, projection=8)
    >>> cubes = torch.rand(2, 9, 1, 32, 32) * 2 - 1
    >>> model.predict(cubes[:, 0:4], cubes[:, [8, 7, 6, 5]]).shape
    torch.Size([2, 1, 32, 32])
    >>> snippet = cubes[:, 0:4]
    >>> model.reconstruct(snippet).shape, model.project(snippet).shape, model.order_logit(snippet).shape
    (torch.Size([2, 4, 1, 32, 32]), torch.Size([2, 8]), torch.Size([2]))
    """

    def __init__(self, channels: int = 1, window: int = 4, size: int = 32, blocks: int = 2, width: int = 8,
                 latent: int | None = 32, projection: int = 64, norm: str = "batch", memory: dict | None = None,
                 hidden: int = 256, channels_last: bool = True):
        super().__init__()
        check_positive(channels=channels, window=window, size=size, blocks=blocks, width=width,
                       projection=projection, hidden=hidden)
        if size % 2 ** blocks:
            raise ConfigError(f"model.blocks: crop size {size} is not divisible by 2**{blocks}")
        if norm not in NORMS:
            raise ConfigError(f"model.norm: {norm!r} is not one of {', '.join(NORMS)}")
        latent = width * 2 ** blocks if latent is None else latent
        check_positive(latent=latent)
        self.channels, self.window, self.size = channels, window, size
        self.code_shape = (latent, size // 2 ** blocks, size // 2 ** blocks)

        self.encoder = Encoder(window * channels, blocks, width, latent, norm)
        self.memory = build_memory(memory, latent)
        self.prediction_head = Decoder(channels, blocks, width, latent, norm)
        self.reconstruction_head = Decoder(window * channels, blocks, width, latent, norm)
        self.projection = Projection(math.prod(self.code_shape), hidden, projection)
        self.classification_head = ClassificationHead(projection)
        self.last_memory_weights: Tensor | None = None
        # NHWC convolutions are ~1.4x faster on CPU (oneDNN) and suit GPU tensor cores; the
        # weights keep this layout through .to(device) and load_state_dict.
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def encode(self, snippet: Tensor) -> Tensor:
        """E(S): (B, window, C, S, S) -> latent code (B, D, s, s); through the memory when on."""
        self.check_snippet(snippet)
        stacked = snippet.flatten(1, 2)  # frames stacked along channels
        if self.channels_last:
            stacked = stacked.contiguous(memory_format=torch.channels_last)
        code = self.encoder(stacked)
        if self.memory is not None:
            code, self.last_memory_weights = self.memory(code)
        return code

    def predict(self, forward: Tensor, backward: Tensor) -> Tensor:
        """Eq. 1: X^ = (H_pre(E(S_fwd)) + H_pre(E(S_bwd))) / 2, shape (B, C, S, S)."""
        # One pass over both directions: half the kernel launches, same BatchNorm batch.
        codes = self.encode(torch.cat([forward, backward]))
        return self.predict_from_codes(codes[: len(forward)], codes[len(forward):])

    def predict_from_codes(self, forward_code: Tensor, backward_code: Tensor) -> Tensor:
        """Eq. 1 on latent codes already computed by ``encode``."""
        both = self.prediction_head(torch.cat([forward_code, backward_code]))
        return (both[: len(forward_code)] + both[len(forward_code):]) / 2

    def reconstruct(self, snippet: Tensor) -> Tensor:
        """H_rec(E(S)) (Eq. 4): the rebuilt snippet, shape (B, window, C, S, S)."""
        return self.reconstruct_code(self.encode(snippet))

    def reconstruct_code(self, code: Tensor) -> Tensor:
        """H_rec on a latent code already computed by ``encode``."""
        return self.reconstruction_head(code).unflatten(1, (self.window, self.channels))

    def project(self, snippet: Tensor) -> Tensor:
        """B_pro(E(S)): the projected code used by the contrastive loss (Eq. 7-10), (B, projection)."""
        return self.project_code(self.encode(snippet))

    def project_code(self, code: Tensor) -> Tensor:
        """B_pro on a latent code already computed by ``encode``."""
        return self.projection(code)

    def order_logit(self, snippet: Tensor) -> Tensor:
        """g(S) = H_cls(B_pro(E(S))) (Eq. 6) as a raw logit, shape (B,)."""
        return self.classify(self.project(snippet))

    def classify(self, projected: Tensor) -> Tensor:
        """H_cls on already projected codes, so a task can reuse one encoding for Eq. 5 and Eq. 10."""
        return self.classification_head(projected)

    def check_snippet(self, snippet: Tensor) -> None:
        expected = (self.window, self.channels, self.size, self.size)
        if snippet.dim() != 5 or tuple(snippet.shape[1:]) != expected:
            raise ConfigError(f"snippet shape {tuple(snippet.shape)} does not match the model's "
                              f"(B, {', '.join(map(str, expected))}); check cubes.channels / cubes.size")


def build_memory(memory: dict | None, dim: int) -> Memory | None:
    if not memory:
        return None
    if not isinstance(memory, dict):
        raise ConfigError(f"model.memory: expected a mapping such as {{items: 100}} or null, got {memory!r}")
    unknown = set(memory) - {"items", "shrink"}
    if unknown:
        raise ConfigError(f"model.memory: unknown keys {', '.join(sorted(unknown))} (known: items, shrink)")
    return Memory(items=int(memory.get("items", 100)), dim=dim, shrink=memory.get("shrink"))


def check_positive(**values: int) -> None:
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"model.{key}: must be a positive integer, got {value!r}")


def build_model(model_cfg: dict, channels: int, window: int = 4, size: int = 32) -> SeqVADModel:
    """The model from the config section ``model`` (keys: blocks, width, latent, projection, norm,
    memory, hidden) and the cube geometry from section ``cubes``."""
    unknown = set(model_cfg or {}) - set(MODEL_KEYS)
    if unknown:
        raise ConfigError(f"model: unknown keys {', '.join(sorted(unknown))} (known: {', '.join(MODEL_KEYS)})")
    return SeqVADModel(channels=channels, window=window, size=size, **(model_cfg or {}))
