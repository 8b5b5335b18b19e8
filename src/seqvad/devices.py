"""Which torch device to use: the one asked for, checked against this machine, or what it has.

A model trained on a GPU stores ``train.device: cuda`` in its config; loading it must follow the
user's ``--device`` (default: this machine's), not the device that trained it.
"""

from __future__ import annotations

from seqvad.errors import ConfigError


def device_name(requested: str | None, default: str = "cpu") -> str:
    """Validate ``train.device`` / ``--device``: cpu, cuda, cuda:N, mps or auto (cuda if present)."""
    import torch

    name = str(requested or default).lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} requested but no CUDA GPU is available "
                              "(use --device cpu / train.device: cpu)")
    elif name not in ("cpu", "mps"):
        raise ConfigError(f"unknown device {name!r} (expected cpu, cuda, cuda:N, mps or auto)")
    return name


def inference_device(requested: str | None) -> str:
    """The device to load a trained model onto: the requested one, else this machine's best."""
    return device_name(requested, default="auto")
