"""The scorer network for inference: only what the object score needs, BatchNorm folded.

The paper's object score (Eq. 11) needs the encoder on a cube's two snippets and the prediction
head (Eq. 1); the reconstruction, projection and order heads are training-only.  In eval mode a
BatchNorm layer is a fixed affine map per channel, so it folds into the convolution before it
(weights and bias rescaled): one pass over the activations fewer per layer, the same result up to
float rounding (``tests/test_compact.py`` states the tolerance).

:class:`PredictionError` maps uint8 cubes ``(N, 2T+1, C, S, S)`` to their prediction errors with
the preprocessing (``x / 127.5 - 1``, :func:`seqvad.scoring.errors.to_unit_range`) inside, so the
same module is the whole scorer network in torch (engine ``folded``) and in ONNX (engine ``onnx``,
and the file ``seqvad export`` writes).
"""

from __future__ import annotations

import copy
import io
import warnings

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from seqvad.errors import ConfigError
from seqvad.config import ENGINES
ONNX_INPUT, ONNX_OUTPUT = "cubes", "error"
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


class PredictionError(nn.Module):
    """uint8 cubes ``(N, 2T+1, C, S, S)`` -> the error of the bidirectional prediction of each
    cube's middle crop ``(N,)``: mean squared error on [-1, 1], or minus PSNR (``kind``)."""

    def __init__(self, model, kind: str = "mse"):
        super().__init__()
        if kind not in ("mse", "psnr"):
            raise ConfigError(f"scoring.error={kind!r}: choose mse or psnr")
        self.kind, self.window = kind, model.window
        self.encoder = fold_batchnorm(model.encoder.layers)
        self.memory = copy.deepcopy(model.memory)
        self.head = fold_batchnorm(model.prediction_head.layers)
        # frames t+T..t+1: the backward snippet as a gather (exports to ONNX, unlike flip on old opsets)
        self.register_buffer("backward", torch.arange(2 * self.window, self.window, -1), persistent=False)
        self.channels_last = bool(getattr(model, "channels_last", False))
        if self.channels_last:
            self.to(memory_format=torch.channels_last)
        self.eval()

    def forward(self, cubes: Tensor) -> Tensor:
        x = cubes.float() / 127.5 - 1.0
        n, T = x.shape[0], self.window
        snippets = torch.cat([x[:, :T], x.index_select(1, self.backward)]).flatten(1, 2)
        if self.channels_last:
            snippets = snippets.contiguous(memory_format=torch.channels_last)
        codes = self.encoder(snippets)
        if self.memory is not None:
            codes, _ = self.memory(codes)
        both = self.head(codes)
        prediction = (both[:n] + both[n:]) / 2
        mse = (prediction - x[:, T]).pow(2).flatten(1).mean(1)
        if self.kind == "mse":
            return mse
        return -10 * torch.log10(4.0 / mse.clamp_min(1e-10))


def export_onnx(module: PredictionError, target, example: Tensor) -> None:
    """``module`` as ONNX into ``target`` (a path or a binary file), the batch dimension dynamic."""
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
    except ImportError:
        raise ConfigError("ONNX export needs the onnx package: pip install 'seqvad[onnx]'") from None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice; it needs no onnxscript
        torch.onnx.export(module, (example,), target, input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT],
                          dynamic_axes={ONNX_INPUT: {0: "objects"}, ONNX_OUTPUT: {0: "objects"}},
                          opset_version=ONNX_OPSET, dynamo=False)


def example_cubes(module: PredictionError, channels: int, size: int, count: int = 2) -> Tensor:
    return torch.zeros((count, 2 * module.window + 1, channels, size, size), dtype=torch.uint8)


class Engine:
    """Prediction errors of uint8 cubes through the folded module, in torch or onnxruntime."""

    def __init__(self, model, kind: str = "mse", engine: str = "folded", device: str = "cpu",
                 threads: int | None = None, batch_size: int = 1024):
        """``threads``: onnxruntime's intra-op threads (None: torch's current number, as ``--threads`` sets it)."""
        if engine not in ("folded", "onnx"):
            raise ConfigError(f"scoring.engine={engine!r}: choose one of {', '.join(ENGINES)}")
        self.name, self.device, self.batch_size = engine, device, batch_size
        self.module = PredictionError(model, kind).to(device)
        self.session = None
        if engine == "onnx":
            if device != "cpu":
                raise ConfigError("scoring.engine=onnx runs on the CPU; use folded with --device cuda")
            buffer = io.BytesIO()
            export_onnx(self.module, buffer, example_cubes(self.module, model.channels, model.size))
            self.session = onnx_session(buffer.getvalue(), threads or torch.get_num_threads())

    def errors(self, cubes: np.ndarray) -> np.ndarray:
        """Float64 ``(N,)`` prediction errors of uint8 cubes ``(N, 2T+1, C, S, S)``."""
        out = []
        for start in range(0, len(cubes), self.batch_size):
            # a copy: the cube cache is a read-only memory map that torch must not alias
            batch = np.array(cubes[start:start + self.batch_size], dtype=np.uint8)
            if self.session is not None:
                out.append(self.session.run([ONNX_OUTPUT], {ONNX_INPUT: batch})[0])
            else:
                with torch.inference_mode():
                    out.append(self.module(torch.from_numpy(batch).to(self.device)).cpu().numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


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
