"""On-disk formats of checkpoints and model files, and their safe loaders.

Two kinds of file hold a trained model:

* a **checkpoint** (``RUN/checkpoints/phaseK.pt``, ``last.pt``), written by the trainer: the
  model's weights, the resolved config, the cube geometry and, for ``last.pt``, everything a
  resume needs (optimiser, RNG states, position);
* a **model file** (``RUN/model.pt``, :meth:`seqvad.api.Detector.save`): weights, config and
  the fitted scorer (``seqvad.scoring.Scorer.state_dict``: error statistics, alarm threshold,
  the optional motion-context model and kNN codes), for inference.

Both hold only tensors and plain Python data, and both are read with
``torch.load(weights_only=True)``: loading a file never runs code from it.  Numpy arrays are
stored as tensors and turned back into arrays on load.  Model files of format 1 (statistics,
threshold and context model as separate keys, not yet a scorer; the oldest with numpy arrays
pickled as such) still load: numpy's array reconstruction is the only thing the loader allows
beyond weights.

Nothing here imports the trainer: inference (``api``, ``stream``) reads models through this
module only.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from seqvad import __version__
from seqvad.atomic import write_bytes
from seqvad.errors import DataError

CHECKPOINT_FORMAT = 1
MODEL_FORMAT = "seqvad-model"
MODEL_FORMAT_VERSION = 2  # 2: the fitted scorer under "scorer"
READABLE_MODEL_FORMATS = (1, 2)


def _save(state: Mapping[str, Any], path: str | os.PathLike) -> None:
    import torch

    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    write_bytes(Path(path), buffer.getvalue())


def _numpy_globals() -> list:
    """What unpickling a plain numpy array needs (no code of the file's choosing runs)."""
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    dtypes = {type(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32,
                                           np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.bool_)}
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtypes]


def _load_weights_only(path: Path, map_location: Any = "cpu", allow_numpy: bool = False) -> Any:
    import torch

    if not allow_numpy:
        return torch.load(path, map_location=map_location, weights_only=True)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception:  # an older file holding numpy arrays: allow numpy's reconstruction only
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)


def nonfinite_entries(state: Any, prefix: str = "") -> list[str]:
    """Names of the floating-point tensors in ``state`` (nested dicts and lists) holding NaN or inf."""
    import torch

    if isinstance(state, torch.Tensor):
        return [prefix or "tensor"] if state.is_floating_point() and not bool(torch.isfinite(state).all()) else []
    if isinstance(state, Mapping):
        return [name for key, value in state.items() for name in nonfinite_entries(value, f"{prefix}{key}.")]
    if isinstance(state, (list, tuple)):
        return [name for i, value in enumerate(state) for name in nonfinite_entries(value, f"{prefix}{i}.")]
    return []


def _names(entries: list[str]) -> str:
    entries = [e.rstrip(".") for e in entries]
    return ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")


def load_weights(model, state_dict: Mapping[str, Any], path: Path) -> None:
    """``model.load_state_dict`` with one-line errors: non-finite values (a diverged run), or
    weights that do not fit the model the file's config describes (an edited config)."""
    bad = nonfinite_entries(state_dict)
    if bad:
        raise DataError(f"{path}: the weights hold NaN or infinite values ({_names(bad)}): a diverged run, "
                        "not usable; use an earlier checkpoint or retrain with a lower schedule.lr")
    try:
        model.load_state_dict(state_dict)
    except (RuntimeError, KeyError, TypeError) as exc:
        first = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), str(exc))
        raise DataError(f"{path}: the weights do not fit the model its config describes (edited config?): "
                        f"{first.rstrip('.')}") from None


# -- checkpoints (the trainer's) ---------------------------------------------------------------

def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write a checkpoint atomically (readers see the old file or the new one)."""
    _save(state, path)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a seqvad checkpoint; DataError if it is missing, corrupt or of another format."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint file does not exist")
    try:
        # weights_only: checkpoints hold only tensors and plain Python data (no pickled code).
        state = _load_weights_only(path, map_location)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise DataError(f"{path}: not a readable checkpoint (corrupt or truncated?): "
                        f"{type(exc).__name__}") from None
    if not isinstance(state, dict) or "format" not in state or "model" not in state:
        raise DataError(f"{path}: not a seqvad checkpoint")
    if state["format"] != CHECKPOINT_FORMAT:
        raise DataError(f"{path}: checkpoint format {state['format']} (seqvad "
                        f"{state.get('seqvad_version', '?')}) cannot be read by seqvad {__version__} "
                        f"(format {CHECKPOINT_FORMAT})")
    return state


def load_model(path: str | os.PathLike, map_location: Any = "cpu"):
    """Load a trained model from ``phase{k}.pt`` or ``last.pt``: ``(model in eval mode, config, info)``.

    ``info`` holds the cube geometry (``window``, ``channels``, ``size``) and, for phase
    checkpoints, the phase (1-based ``phase``, ``name``, ``tasks``, final ``losses``).
    """
    import torch

    from seqvad.model import build_model

    state = load_checkpoint(path, map_location)
    geometry = state["cube_geometry"]
    try:
        model = build_model(state["config"]["model"], geometry["channels"],
                            window=geometry["window"], size=geometry["size"])
    except (TypeError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: its config does not describe a model ({type(exc).__name__}: {exc})") from None
    load_weights(model, state["model"], Path(path))
    model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu").eval()
    info = {**geometry, **state.get("info", {}), "kind": state.get("kind"),
            "seqvad_version": state.get("seqvad_version")}
    return model, state["config"], info


# -- model files (the API's) --------------------------------------------------------------------

def _arrays_to_tensors(value: Any) -> Any:
    import torch

    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {k: _arrays_to_tensors(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_arrays_to_tensors(v) for v in value)
    return value


def _tensors_to_arrays(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.cpu().numpy()
    if isinstance(value, Mapping):
        return {k: _tensors_to_arrays(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_tensors_to_arrays(v) for v in value)
    return value


def save_model_file(path: str | os.PathLike, payload: Mapping[str, Any]) -> Path:
    """Write a model file: ``payload`` (``config``, ``state_dict``, ``scorer``, ``phase_info``,
    ``channels``) with the format header, numpy arrays as tensors."""
    path = Path(path)
    state = {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, "seqvad_version": __version__,
             **{k: (v if k == "state_dict" else _arrays_to_tensors(v)) for k, v in payload.items()}}
    _save(state, path)
    return path


def read_model_file(path: str | os.PathLike) -> dict[str, Any]:
    """The payload of a model file (weights-only load), checked; a format-1 context state as numpy arrays."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: model file does not exist")
    try:
        payload = _load_weights_only(path, "cpu", allow_numpy=True)
    except Exception as exc:  # torch raises many types for damaged files
        why = "it holds more than weights and data (refused: nothing in it was run)" \
            if type(exc).__name__ == "UnpicklingError" else type(exc).__name__
        raise DataError(f"{path}: not a readable seqvad model file: {why}") from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise DataError(f"{path}: not a seqvad model file (train one with `seqvad train`)")
    missing = [key for key in ("config", "state_dict", "channels") if key not in payload]
    if missing or not isinstance(payload.get("config"), Mapping):
        raise DataError(f"{path}: damaged seqvad model file (missing {', '.join(missing) or 'a config mapping'})")
    if payload.get("format_version") not in READABLE_MODEL_FORMATS:
        raise DataError(f"{path}: model file format {payload.get('format_version')} is not supported by "
                        f"seqvad {__version__} (expects {MODEL_FORMAT_VERSION}); retrain or upgrade")
    if payload.get("context") is not None:
        payload["context"] = _tensors_to_arrays(payload["context"])
    return payload
