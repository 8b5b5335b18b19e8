"""The scorer network for inference: only what the object score needs, BatchNorm folded.

An object score needs the encoder on a cube's two snippets and, per term (``scoring.terms``,
:mod:`seqvad.scoring.errors`): the prediction head (``pre``, the paper's Eq. 11), the
reconstruction head on the forward code (``rec``), the projection and order classifier on it
(``order``), the pooled mean code (``knn``, scored against the training codes outside the network).
Heads no weighted term needs are left out. In eval mode a BatchNorm layer is a fixed affine map
per channel, so it folds into the convolution before it (weights and bias rescaled): one pass over
the activations fewer per layer, the same result up to float rounding (``tests/test_compact.py``
states the tolerance).

:class:`ObjectTerms` maps uint8 cubes ``(N, 2T+1, C, S, S)`` to its raw terms with the
preprocessing (``x / 127.5 - 1``, :func:`seqvad.scoring.errors.to_unit_range`) inside, so the
same module is the whole scorer network in torch (engine ``folded``) and in ONNX (engine ``onnx``,
and the file ``seqvad export`` writes).
"""

from __future__ import annotations

import copy
import io
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from seqvad.config import ENGINES
from seqvad.errors import ConfigError
from seqvad.scoring.errors import ERROR_KINDS, check_terms

ONNX_INPUT = "cubes"
# the ONNX output of each term; "error" is the prediction error's name since the first export
ONNX_OUTPUTS = {"pre": "error", "rec": "rec", "order": "order", "knn": "codes"}
ONNX_OUTPUT = ONNX_OUTPUTS["pre"]
ONNX_OPSET = 18


def fold_batchnorm(layers: nn.Sequential) -> nn.Sequential:
    """A copy of ``layers`` with every BatchNorm2d that follows a (transposed) convolution folded into it."""
    modules = [copy.deepcopy(m).eval() for m in layers]
    out: list[nn.Module] = []
    i = 0
    while i < len(modules):
        conv, following = modules[i], modules[i + 1] if i + 1 < len(modules) else None
        if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(following, nn.BatchNorm2d):
            out.append(fuse_conv_bn_eval(conv, following, transpose=isinstance(conv, nn.ConvTranspose2d)))
            i += 2
        else:
            out.append(conv)
            i += 1
    return nn.Sequential(*out)


class ObjectTerms(nn.Module):
    """uint8 cubes ``(N, 2T+1, C, S, S)`` -> one tensor per name of ``names``, in that order:

    * ``pre``: the error of the bidirectional prediction of each cube's middle crop ``(N,)``, mean
      squared error on [-1, 1] or minus PSNR (``kind``);
    * ``rec``: the mean squared error of the forward snippet's reconstruction ``(N,)``;
    * ``order``: minus the order classifier's in-order logit of the forward snippet ``(N,)``;
    * ``knn``: the mean of the forward and backward codes, pooled to 2x2 cells ``(N, D)``.

    Each is what :func:`seqvad.scoring.errors.object_terms` computes with the whole model."""

    def __init__(self, model, names: tuple[str, ...] = ("pre",), kind: str = "mse"):
        super().__init__()
        if kind not in ERROR_KINDS:
            raise ConfigError(f"scoring.error={kind!r}: choose mse or psnr")
        self.names, self.kind, self.window = check_terms(names), kind, model.window
        self.encoder = fold_batchnorm(model.encoder.layers)
        self.memory = copy.deepcopy(model.memory)
        self.prediction = fold_batchnorm(model.prediction_head.layers) if "pre" in names else None
        self.reconstruction = fold_batchnorm(model.reconstruction_head.layers) if "rec" in names else None
        self.order = nn.Sequential(copy.deepcopy(model.projection.layers),
                                   copy.deepcopy(model.classification_head.layers)) if "order" in names else None
        # frames t+T..t+1: the backward snippet as a gather (exports to ONNX, unlike flip on old opsets)
        self.register_buffer("backward", torch.arange(2 * self.window, self.window, -1), persistent=False)
        side = model.code_shape[-1]
        # 2x2 cells as a plain average pool where they tile the code: it exports to ONNX, the
        # adaptive pool of a dynamic shape does not
        self.cell = side // 2 if side % 2 == 0 else None
        self.channels_last = bool(getattr(model, "channels_last", False))
        if self.channels_last:
            self.to(memory_format=torch.channels_last)
        self.eval()

    def forward(self, cubes: Tensor) -> tuple[Tensor, ...]:
        x = cubes.float() / 127.5 - 1.0
        n, T = x.shape[0], self.window
        forward_snippet = x[:, :T].flatten(1, 2)
        snippets = torch.cat([forward_snippet, x.index_select(1, self.backward).flatten(1, 2)])
        if self.channels_last:
            snippets = snippets.contiguous(memory_format=torch.channels_last)
        codes = self.encoder(snippets)
        if self.memory is not None:
            codes, _ = self.memory(codes)
        out = {}
        if self.prediction is not None:
            both = self.prediction(codes)
            mse = ((both[:n] + both[n:]) / 2 - x[:, T]).pow(2).flatten(1).mean(1)
            out["pre"] = mse if self.kind == "mse" else -10 * torch.log10(4.0 / mse.clamp_min(1e-10))
        if self.reconstruction is not None:
            out["rec"] = (self.reconstruction(codes[:n]) - forward_snippet).pow(2).flatten(1).mean(1)
        if self.order is not None:
            out["order"] = -self.order(codes[:n]).squeeze(-1)
        if "knn" in self.names:
            mean = (codes[:n] + codes[n:]) / 2
            pooled = F.avg_pool2d(mean, self.cell) if self.cell else F.adaptive_avg_pool2d(mean, 2)
            out["knn"] = pooled.flatten(1)
        return tuple(out[name] for name in self.names)


def export_onnx(module: ObjectTerms, target, example: Tensor) -> None:
    """``module`` as ONNX into ``target`` (a path or a binary file), one output per term
    (``ONNX_OUTPUTS``), the batch dimension dynamic."""
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
    except ImportError:
        raise ConfigError("ONNX export needs the onnx package: pip install 'seqvad[onnx]'") from None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice; it needs no onnxscript
        outputs = [ONNX_OUTPUTS[name] for name in module.names]
        torch.onnx.export(module, (example,), target, input_names=[ONNX_INPUT], output_names=outputs,
                          dynamic_axes={name: {0: "objects"} for name in [ONNX_INPUT, *outputs]},
                          opset_version=ONNX_OPSET, dynamo=False)


def example_cubes(module: ObjectTerms, channels: int, size: int, count: int = 2) -> Tensor:
    return torch.zeros((count, 2 * module.window + 1, channels, size, size), dtype=torch.uint8)


class Engine:
    """Raw per-object terms of uint8 cubes through the folded module, in torch or onnxruntime."""

    def __init__(self, model, kind: str = "mse", engine: str = "folded", device: str = "cpu",
                 threads: int | None = None, batch_size: int = 1024, names: tuple[str, ...] = ("pre",)):
        """``threads``: onnxruntime's intra-op threads (None: torch's current number, as ``--threads`` sets it)."""
        if engine not in ("folded", "onnx"):
            raise ConfigError(f"scoring.engine={engine!r}: choose one of {', '.join(ENGINES)}")
        self.name, self.device, self.batch_size = engine, device, batch_size
        self.module = ObjectTerms(model, names, kind).to(device)
        self.session = None
        if engine == "onnx":
            if device != "cpu":
                raise ConfigError("scoring.engine=onnx runs on the CPU; use folded with --device cuda")
            buffer = io.BytesIO()
            export_onnx(self.module, buffer, example_cubes(self.module, model.channels, model.size))
            self.session = onnx_session(buffer.getvalue(), threads or torch.get_num_threads())

    @property
    def names(self) -> tuple[str, ...]:
        return self.module.names

    def terms(self, cubes: np.ndarray) -> dict[str, np.ndarray]:
        """Each term of ``names`` for uint8 cubes ``(N, 2T+1, C, S, S)``: float64 ``(N,)``, ``knn``
        float32 codes ``(N, D)`` (as :func:`seqvad.scoring.errors.object_terms`)."""
        out: dict[str, list[np.ndarray]] = {name: [] for name in self.names}
        for start in range(0, len(cubes), self.batch_size):
            # a copy: the cube cache is a read-only memory map that torch must not alias
            batch = np.array(cubes[start:start + self.batch_size], dtype=np.uint8)
            if self.session is not None:
                values = self.session.run([ONNX_OUTPUTS[name] for name in self.names], {ONNX_INPUT: batch})
            else:
                with torch.inference_mode():
                    values = [v.cpu().numpy() for v in self.module(torch.from_numpy(batch).to(self.device))]
            for name, value in zip(self.names, values):
                out[name].append(value)
        return {name: np.concatenate(values).astype(np.float32 if name == "knn" else np.float64)
                if values else np.zeros(0) for name, values in out.items()}

    def errors(self, cubes: np.ndarray) -> np.ndarray:
        """Float64 ``(N,)`` prediction errors of uint8 cubes (``pre`` among ``names``)."""
        return self.terms(cubes)["pre"]


def onnx_session(model_bytes_or_path, threads: int | None = None):
    """An onnxruntime CPU session; ``threads`` intra-op threads (None: 1, as ``seqvad detect --threads``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, int(threads or 1))
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # idle pool threads sleep: spinning ones would take the core the detector runs on
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model_bytes_or_path, options, providers=["CPUExecutionProvider"])
