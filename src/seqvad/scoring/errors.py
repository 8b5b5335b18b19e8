"""Per-object raw terms, from one pass of the trained model over each batch of cubes.

* ``pre``: the paper's prediction error (Eq. 11): the error of the bidirectional prediction of
  the cube's middle crop, mean squared error or minus PSNR (``scoring.error``);
* ``rec``: the reconstruction error of its forward snippet (Eq. 4's loss, per object);
* ``order``: how strongly the order classifier doubts that its own snippet is in order (minus
  the in-order logit of Eq. 6);
* ``knn``: the latent code (the encoder output of the forward and backward snippets, averaged
  and pooled to 2x2 cells), to be scored against the training codes by
  :class:`seqvad.scoring.terms.LatentDensity`.

Also the one mapping of pixel values, uint8 [0, 255] -> float [-1, 1], that the trainer, the
scorer and the API share (:func:`to_unit_range`).
"""

from __future__ import annotations

import numpy as np

from seqvad.errors import ConfigError

TERMS = ("pre", "rec", "order", "knn")
ERROR_KINDS = ("mse", "psnr")


def to_unit_range(batch):
    """uint8 [0, 255] -> float32 [-1, 1] (``x / 127.5 - 1``), a torch tensor, in place after the cast."""
    return batch.float().div_(127.5).sub_(1.0)


def from_unit_range(values: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_unit_range`, rounded and clipped to uint8 (for pictures)."""
    return np.clip((np.asarray(values, np.float32) + 1.0) * 127.5, 0, 255).round().astype(np.uint8)


def cubes_to_tensor(cubes: np.ndarray, device: str = "cpu"):
    """A batch of uint8 cubes as a float tensor on [-1, 1] on ``device``.

    ``np.array`` copies: the cube cache is a read-only memory map that torch must not alias."""
    import torch

    return to_unit_range(torch.from_numpy(np.array(cubes)).to(device))


def check_terms(names) -> tuple[str, ...]:
    unknown = [str(n) for n in names if n not in TERMS]
    if unknown:
        raise ConfigError(f"scoring.terms: unknown term(s) {', '.join(unknown)} (known: {', '.join(TERMS)})")
    return tuple(names)


def object_terms(model, cubes: np.ndarray, names: tuple[str, ...] = TERMS, kind: str = "mse",
                 batch_size: int = 1024, device: str = "cpu") -> dict[str, np.ndarray]:
    """Raw per-object terms of ``cubes`` (N, 2T+1, C, S, S) uint8, float64 ``(N,)`` each;
    ``knn`` gives the codes ``(N, D)`` (float32) to score with ``LatentDensity``.

    ``kind`` is ``scoring.error``, the error of ``pre``: ``mse`` or ``psnr``."""
    import torch
    import torch.nn.functional as F

    from seqvad.tasks import backward_snippet, error_of_prediction, forward_snippet

    if kind not in ERROR_KINDS:
        raise ConfigError(f"scoring.error={kind!r}: choose mse or psnr")
    names = check_terms(names)
    model.eval()
    out: dict[str, list[np.ndarray]] = {name: [] for name in names}
    with torch.inference_mode():
        for start in range(0, len(cubes), batch_size):
            batch = cubes_to_tensor(cubes[start:start + batch_size], device)
            forward, backward = forward_snippet(batch), backward_snippet(batch)
            codes = model.encode(torch.cat([forward, backward]))  # as model.predict does
            fwd_code, bwd_code = codes[: len(batch)], codes[len(batch):]
            if "pre" in names:
                prediction = model.predict_from_codes(fwd_code, bwd_code)
                out["pre"].append(error_of_prediction(prediction, batch, kind).double().cpu().numpy())
            if "rec" in names:
                rebuilt = model.reconstruct_code(fwd_code)
                out["rec"].append((rebuilt - forward).pow(2).flatten(1).mean(1).double().cpu().numpy())
            if "order" in names:
                out["order"].append((-model.classify(model.project_code(fwd_code))).double().cpu().numpy())
            if "knn" in names:
                pooled = F.adaptive_avg_pool2d((fwd_code + bwd_code) / 2, 2).flatten(1)
                out["knn"].append(pooled.float().cpu().numpy())
    return {name: np.concatenate(values) if values else np.zeros(0) for name, values in out.items()}


def object_errors(model, cubes: np.ndarray, kind: str = "mse", batch_size: int = 1024,
                  device: str = "cpu") -> np.ndarray:
    """The paper's prediction error of every cube ``(N, 2T+1, C, S, S)`` uint8 -> float64 ``(N,)``."""
    return object_terms(model, cubes, ("pre",), kind=kind, batch_size=batch_size, device=device)["pre"]
