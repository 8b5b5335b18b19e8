"""Trainer: runs a curriculum of pretext tasks over a cube store, with checkpoints and resume.

The trainer knows nothing of datasets: it takes a resolved config and a ``uint8`` array of
object cubes of shape ``(N, 2T+1, C, S, S)`` (a ``np.memmap`` is fine) and writes a run folder::

    run_dir/config.yaml              the resolved config (written at start)
    run_dir/log.csv, log.json        one row per epoch: phase, epoch, each named loss, lr, seconds
    run_dir/checkpoints/phase{k}.pt  the model after phase k (what evaluation loads)
    run_dir/checkpoints/last.pt      everything needed to continue exactly (see ``fit(resume=True)``)

Exact resume: ``last.pt`` is written at step granularity (every ``train.checkpoint_minutes``
minutes, every ``train.checkpoint_every_steps`` steps when set, at each epoch end and at each
phase end). It stores the position (phase, epoch, step within the epoch), the model and
optimiser state, the RNG states and the running loss sums of the unfinished epoch. The order of
the cubes in an epoch is derived from ``(train.seed, phase, epoch)``, so it needs no storing.
Resuming therefore replays the same batches with the same random augmentations.

Distributed data parallel: launched by ``torchrun`` (``WORLD_SIZE`` > 1) each process trains on
its shard of every epoch's permutation; ``train.batch_size`` stays the *global* batch size (each
rank takes ``ceil(batch_size / world_size)``), so a config means the same thing on any number of
processes. Only rank 0 writes files and shows progress.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import nn

from seqvad import __version__
from seqvad.config import RESUMABLE_KEYS, diff, load_config
from seqvad.errors import ConfigError, DataError, SeqvadError
from seqvad.progress import duration
from seqvad.atomic import write_bytes as atomic_write_bytes
from seqvad.averaging import WeightAverage
from seqvad.devices import device_name
from seqvad.checkpoint import (CHECKPOINT_FORMAT, load_checkpoint, load_model, nonfinite_entries,  # noqa: F401
                               save_checkpoint)
from seqvad.scoring.errors import to_unit_range
from seqvad.tasks import shared_codes

log = logging.getLogger(__name__)

# Config sections whose values decide the trained weights; a resume must match them. (The cube
# data itself is checked by a fingerprint, so detector/cubes settings need no comparing.)
TRAINING_SECTIONS = ("model", "tasks", "schedule", "train")
MEMORY_TASK = "sps"  # the memory sparsity loss, on in every phase when model.memory is set
# How the gradient of a phase's later tasks on the shared encoder is combined with the gradient of
# its first task (the anchor: the prediction task in the paper's order, the one that scores):
# none = plain sum; project = drop the component that points against the anchor's (PCGrad, Yu et
# al. 2020, one-sided); scale = shrink it to at most train.balance_ratio x the anchor's norm.
BALANCE_METHODS = ("none", "project", "scale")


class TrainingError(SeqvadError):
    """Training cannot go on (e.g. a loss became NaN or infinite)."""


# --------------------------------------------------------------------------------------------
# Model + tasks as one module


class TaskRunner(nn.Module):
    """The model and its pretext tasks behind a single ``forward(cubes, weights)``.

    Why a wrapper: tasks call model methods (``predict``, ``reconstruct``, ...), not
    ``model.forward``, but DistributedDataParallel only synchronises gradients of work done
    inside the wrapped module's ``forward``. Running every active task inside this forward makes
    DDP see the whole step; the single-process path uses the same module, so there is one path.

    Returns the named losses of all active tasks plus ``"loss"``, their weighted sum
    (weight of the task times the sum of that task's named losses).
    """

    def __init__(self, model: nn.Module, tasks: Mapping[str, nn.Module]):
        super().__init__()
        self.model = model
        self.tasks = nn.ModuleDict(dict(tasks))

    def forward(self, cubes: torch.Tensor, weights: Mapping[str, float]) -> dict[str, torch.Tensor]:
        named: dict[str, torch.Tensor] = {}
        self.task_totals: dict[str, torch.Tensor] = {}  # weighted loss of each task (for balancing)
        total = cubes.new_zeros(())
        active = {name: weight for name, weight in weights.items() if weight != 0}  # weight 0 = off
        # One encoder pass for the snippets of all active tasks (~1.3x faster in phase 3).
        shared = shared_codes(self.model, [self.tasks[name] for name in active], cubes)
        for task_name, weight in active.items():
            for loss_name, value in self.tasks[task_name](self.model, cubes, shared=shared).items():
                # Loss names are short ("pre", "grd", "cls"...); prefix only on a clash.
                key = loss_name if loss_name not in named and loss_name != "loss" else f"{task_name}.{loss_name}"
                named[key] = value
                total = total + weight * value
                self.task_totals[task_name] = self.task_totals.get(task_name, 0) + weight * value
        return {"loss": total, **named}


def _numpy_rng_state() -> dict[str, Any]:
    # Plain lists, so that checkpoints load with torch.load(weights_only=True).
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
            "cached": float(cached)}


def _set_numpy_rng_state(state: Mapping[str, Any]) -> None:
    np.random.set_state((state["name"], np.asarray(state["keys"], dtype=np.uint32), state["pos"],
                         state["has_gauss"], state["cached"]))


def capture_rng_state(device: torch.device) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": _numpy_rng_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    _set_numpy_rng_state(state["numpy"])
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------------------------
# Small pieces of the training loop


@dataclass
class Position:
    """Where training stands: the next step to run is ``step`` of ``epoch`` of ``phase`` (0-based)."""

    phase: int = 0
    epoch: int = 0
    step: int = 0
    global_step: int = 0


@dataclass
class EpochStats:
    """Running sums of the named losses over one epoch (weighted by batch size)."""

    sums: dict[str, float] = field(default_factory=dict)
    count: int = 0
    seconds: float = 0.0

    def add(self, losses: Mapping[str, float], n: int) -> None:
        for name, value in losses.items():
            self.sums[name] = self.sums.get(name, 0.0) + value * n
        self.count += n

    def means(self) -> dict[str, float]:
        return {name: total / max(self.count, 1) for name, total in self.sums.items()}


@dataclass
class Distributed:
    """This process's place in a DDP job (world_size 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # we called init_process_group, so we also tear it down

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup_distributed(device_type: str) -> Distributed:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return Distributed(rank=dist.get_rank(), world_size=dist.get_world_size(),
                       local_rank=int(os.environ.get("LOCAL_RANK", "0")), owns_group=owns)


def resolve_device(name: str, ddp: Distributed) -> torch.device:
    if name.startswith("cuda") and ddp.enabled:
        return torch.device("cuda", ddp.local_rank)  # one GPU per process
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        # An explicit index: torch.cuda.set_device / mem_get_info refuse a bare "cuda".
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def place_cubes(cubes: np.ndarray, device: torch.device) -> torch.Tensor:
    """The uint8 cube tensor where batches are gathered: on the GPU when it takes at most a
    quarter of the free memory (gathers then cost no host->device copy), else in host memory."""
    data = torch.from_numpy(in_memory(cubes))
    if device.type != "cuda":
        return data
    free, _ = torch.cuda.mem_get_info(device)
    if data.numel() <= free // 4:
        return data.to(device)
    return data.pin_memory()


def epoch_permutation(n: int, seed: int, phase: int, epoch: int) -> torch.Tensor:
    """The cube order of one epoch: a function of (seed, phase, epoch) only, same on every rank."""
    mixed = np.random.SeedSequence([seed, phase, epoch]).generate_state(1, dtype=np.uint64)[0]
    generator = torch.Generator().manual_seed(int(mixed))
    return torch.randperm(n, generator=generator)


def split_batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    batches = list(torch.split(order, batch_size))
    # A last batch of one cube breaks BatchNorm (one value per channel); drop it.
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches.pop()
    return batches


def cube_fingerprint(data: np.ndarray) -> str:
    """A cheap identity of a cube array: its shape and a hash of up to 256 evenly spaced cubes."""
    picks = np.linspace(0, len(data) - 1, num=min(len(data), 256)).astype(np.int64)
    digest = hashlib.blake2b(str(data.shape).encode(), digest_size=12)
    digest.update(np.ascontiguousarray(data[picks]).tobytes())
    return digest.hexdigest()


def in_memory(cubes: np.ndarray) -> np.ndarray:
    """A writable, C-contiguous in-memory copy of a memmap (or read-only) array; others as they are.

    Why: random per-batch gathers from a memmap would hit the disk every step, and torch
    refuses to wrap read-only buffers safely.
    """
    if isinstance(cubes, np.memmap) or not cubes.flags.writeable:
        return np.array(cubes, order="C", copy=True)
    return np.ascontiguousarray(cubes)


def to_float_cubes(batch: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]: the scorer's mapping (``seqvad.scoring.errors``)."""
    return to_unit_range(batch)


LOG_FIELDS = ("phase", "phase_name", "epoch", "lr", "seconds")  # log row keys that are not losses


def row_losses(row: Mapping[str, Any]) -> dict[str, float]:
    return {key: value for key, value in row.items() if key not in LOG_FIELDS}


def _training_view(config: Mapping[str, Any]) -> dict[str, Any]:
    return {section: config.get(section) for section in TRAINING_SECTIONS}


def config_mismatches(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Differences (``key: old -> new``) in what decides the trained weights."""
    differences = diff(_training_view(saved), _training_view(current))
    return [line for line in differences if line.split(":", 1)[0] not in RESUMABLE_KEYS]


def combine_gradients(anchor: list[torch.Tensor], other: list[torch.Tensor], method: str,
                      ratio: float = 1.0) -> list[torch.Tensor]:
    """The encoder gradient anchor + other' where other' is ``other`` (``none``), ``other``
    without its component against ``anchor`` when they conflict (``project``), or ``other``
    scaled down to at most ``ratio`` times the anchor's norm (``scale``). Lists of tensors are
    treated as one flat vector.

    >>> a, o = [torch.tensor([1.0, 0.0])], [torch.tensor([-1.0, 1.0])]
    >>> combine_gradients(a, o, "project")[0].tolist()
    [1.0, 1.0]
    """
    if method == "none":
        return [a + o for a, o in zip(anchor, other)]
    dot = sum((a * o).sum() for a, o in zip(anchor, other))
    anchor_sq = sum((a * a).sum() for a in anchor)
    if method == "project":
        coef = torch.where(dot < 0, dot / anchor_sq.clamp_min(1e-30), torch.zeros_like(dot))
        return [a + o - coef * a for a, o in zip(anchor, other)]
    if method == "scale":
        other_norm = torch.sqrt(sum((o * o).sum() for o in other))
        factor = torch.clamp(ratio * torch.sqrt(anchor_sq) / other_norm.clamp_min(1e-30), max=1.0)
        return [a + factor * o for a, o in zip(anchor, other)]
    raise ConfigError(f"train.balance: {method!r} is not one of {', '.join(BALANCE_METHODS)}")


# --------------------------------------------------------------------------------------------
# The trainer


StepCallback = Callable[[dict[str, Any]], None]


class Trainer:
    """Train a model on a cube array through the config's curriculum.

    >>> trainer = Trainer(load_config("ped2"), cubes, Path("runs/ped2"))   # doctest: +SKIP
    >>> summary = trainer.fit()                                              # doctest: +SKIP

    ``on_step`` (optional) is called after every optimiser step, after any checkpoint of that
    step was written, with ``{"phase", "epoch", "step", "global_step", "losses"}``; raising
    from it stops training (tests use it to simulate a kill).
    """

    def __init__(self, config: Mapping[str, Any], cubes: np.ndarray, run_dir: str | os.PathLike,
                 device: str | None = None, progress: bool = True,
                 on_step: StepCallback | None = None):
        self.config = load_config(dict(config))  # fill every default, so the saved config is complete
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.on_step = on_step
        train_cfg = self.config["train"]
        self.seed = int(train_cfg["seed"])
        self.batch_size = self._positive_int(train_cfg, "batch_size")
        self.checkpoint_seconds = float(train_cfg.get("checkpoint_minutes") or 0) * 60.0
        self.checkpoint_every_steps = int(train_cfg.get("checkpoint_every_steps") or 0)
        self.keep_epoch_checkpoints = bool(train_cfg.get("keep_epoch_checkpoints", False))
        self.balance = str(train_cfg.get("balance") or "none")
        self.balance_ratio = float(train_cfg.get("balance_ratio", 1.0))
        self.epoch_fraction = train_cfg.get("epoch_fraction", 1.0)
        if isinstance(self.epoch_fraction, bool) or not isinstance(self.epoch_fraction, (int, float)) \
                or not 0 < self.epoch_fraction <= 1:
            raise ConfigError(f"train.epoch_fraction: must lie in (0, 1], got {self.epoch_fraction!r}")
        if self.balance not in BALANCE_METHODS:
            raise ConfigError(f"train.balance: {self.balance!r} is not one of {', '.join(BALANCE_METHODS)}")
        if not self.balance_ratio > 0:
            raise ConfigError(f"train.balance_ratio: must be > 0, got {self.balance_ratio}")
        self.ema_decay = train_cfg.get("ema_decay", 0.0)
        if isinstance(self.ema_decay, bool) or not isinstance(self.ema_decay, (int, float)) \
                or not 0 <= self.ema_decay < 1:
            raise ConfigError(f"train.ema_decay: must lie in [0, 1) (0 = off), got {self.ema_decay!r}")

        self.geometry = self._check_cubes(cubes)
        self.fingerprint = cube_fingerprint(cubes)
        name = device_name(device or train_cfg.get("device"))
        self.ddp = setup_distributed("cuda" if name.startswith("cuda") else "cpu")
        self.device = resolve_device(name, self.ddp)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if self.ddp.enabled and self.balance != "none":
            raise ConfigError("train.balance needs per-task gradients, which DDP all-reduces as one: "
                              "use train.balance: none with torchrun")
        if train_cfg.get("threads"):
            torch.set_num_threads(int(train_cfg["threads"]))
        self.data = place_cubes(cubes, self.device)

        seed_everything(self.seed)  # before building, so initial weights follow train.seed
        self.schedule, self.runner = self._build()
        self.runner.to(self.device)
        self.engine = self._wrap_for_ddp(self.runner)
        self.optimizer = self._new_optimizer(self.schedule.phases[0].lr)
        self.ema = WeightAverage(self.runner.model, self.ema_decay) if self.ema_decay else None
        self.position = Position()
        self._steps_per_epoch = 0
        self.stats = EpochStats()
        self.history: list[dict[str, Any]] = []
        self._last_checkpoint_time = time.monotonic()

    # ---- construction ------------------------------------------------------------------

    @staticmethod
    def _positive_int(section: Mapping[str, Any], key: str) -> int:
        value = section.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"train.{key} must be a positive integer, got {value!r}")
        return value

    @staticmethod
    def _check_cubes(cubes: np.ndarray) -> dict[str, int]:
        shape = getattr(cubes, "shape", None)
        if shape is None or len(shape) != 5:
            raise DataError(f"cube array must have shape (N, 2T+1, C, S, S), got {shape}")
        if getattr(cubes, "dtype", None) != np.uint8:
            raise DataError(f"cube array must be uint8, got {cubes.dtype}")
        n, frames, channels, height, width = shape
        if n == 0:
            raise DataError("cube array is empty (no objects were found in the training videos)")
        if frames < 3 or frames % 2 == 0 or height != width:
            raise DataError(f"cube array shape {tuple(shape)} is not (N, 2T+1, C, S, S)")
        return {"window": (frames - 1) // 2, "channels": channels, "size": height}

    def _build(self) -> tuple[Any, TaskRunner]:
        from seqvad.curriculum import Schedule
        from seqvad.model import build_model
        from seqvad.tasks import build_tasks

        schedule = Schedule.from_config(self.config["schedule"])
        if not schedule.phases:
            raise ConfigError("schedule has no phases")
        model = build_model(self.config["model"], self.geometry["channels"],
                            window=self.geometry["window"], size=self.geometry["size"])
        tasks = build_tasks(self.config["tasks"])
        missing = sorted({name for phase in schedule.phases for name in self.phase_weights(phase)}
                         - set(tasks))
        if missing:
            raise ConfigError(f"schedule uses unknown task(s) {', '.join(missing)} "
                              f"(known: {', '.join(sorted(tasks))})")
        return schedule, TaskRunner(model, tasks)

    def phase_weights(self, phase: Any) -> dict[str, float]:
        """The active tasks of a phase and their weights (the memory loss joins every phase)."""
        names = list(phase.tasks)
        if self.config["model"].get("memory") and MEMORY_TASK not in names:
            names.append(MEMORY_TASK)
        return {name: float(phase.weights.get(name, 1.0)) for name in names}

    def _wrap_for_ddp(self, runner: TaskRunner) -> nn.Module:
        if not self.ddp.enabled:
            return runner
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.device.index] if self.device.type == "cuda" else None
        # find_unused_parameters: early phases leave heads (rec, cls) without gradients.
        return DistributedDataParallel(runner, device_ids=device_ids, find_unused_parameters=True)

    def _new_optimizer(self, lr: float) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.runner.parameters(), lr=lr)

    # ---- run folder ----------------------------------------------------------------------

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def last_path(self) -> Path:
        return self.checkpoint_dir / "last.pt"

    def phase_path(self, phase_index: int) -> Path:
        return self.checkpoint_dir / f"phase{phase_index + 1}.pt"

    def _prepare_run_dir(self, resume: bool, overwrite: bool) -> None:
        if resume and not self.last_path.is_file():
            raise DataError(f"{self.run_dir}: nothing to resume ({self.last_path} does not exist)")
        older = sorted(p.name for p in [*self.checkpoint_dir.glob("*.pt"), *self.checkpoint_dir.glob("epochs/*.pt")])
        if not resume and older and not overwrite:  # any checkpoint, not only last.pt: never lose one
            raise ConfigError(f"{self.run_dir} already holds a training run ({', '.join(older[:3])}); "
                              "resume it (--resume), move it aside (--fresh) or choose another run folder")
        self._barrier()  # every rank has checked the folder before rank 0 writes into it
        if self.ddp.is_main:
            if not resume and older:  # overwrite: the older run is moved aside, never deleted
                from seqvad.runfolder import move_aside

                log.warning("%s: the older run moved to %s", self.run_dir, move_aside(self.run_dir))
            if not resume:  # logs of a run killed before its first checkpoint: nothing to keep
                for stale in (self.run_dir / "log.csv", self.run_dir / "log.json"):
                    stale.unlink(missing_ok=True)
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.run_dir / "config.yaml",
                               yaml.safe_dump(self.config, sort_keys=False).encode())

    def _write_logs(self) -> None:
        if not self.ddp.is_main:
            return
        atomic_write_bytes(self.run_dir / "log.json", json.dumps(self.history, indent=1).encode())
        columns: list[str] = []
        for row in self.history:  # loss columns differ per phase: take the union, in order
            columns += [key for key in row if key not in columns]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(self.history)
        atomic_write_bytes(self.run_dir / "log.csv", text.getvalue().encode())

    # ---- checkpoints ---------------------------------------------------------------------

    def _common_state(self, averaged: bool = False) -> dict[str, Any]:
        """What every checkpoint holds; ``averaged``: the model's weights are the moving average
        (its BatchNorm statistics recomputed)."""
        model = self.ema.model_state(self.runner.model, self.data, self.batch_size) if averaged \
            else self.runner.model.state_dict()
        return {"format": CHECKPOINT_FORMAT, "seqvad_version": __version__,
                "config": copy.deepcopy(self.config), "cube_geometry": dict(self.geometry), "model": model}

    def _refuse_nonfinite(self, state: Mapping[str, Any], path: Path) -> None:
        """A checkpoint is the 'last good state': never write one holding NaN or inf (a diverging
        run can poison BatchNorm's running statistics while its losses still look finite)."""
        bad = [name.rstrip(".") for name in nonfinite_entries(state)]
        if bad:
            raise TrainingError(
                f"{', '.join(bad[:3])}{' and more' if len(bad) > 3 else ''} became NaN or infinite in phase "
                f"{self.position.phase + 1}, epoch {self.position.epoch + 1}; training stopped without writing "
                f"{path.name}, {self.last_path} holds the last good state (try a lower schedule.lr)")

    def _save_last(self) -> None:
        self._last_checkpoint_time = time.monotonic()
        if not self.ddp.is_main:
            return
        self._refuse_nonfinite({"model": self.runner.model.state_dict(), "tasks": self.runner.tasks.state_dict()},
                               self.last_path)
        state = {**self._common_state(), "kind": "last",
                 "tasks": self.runner.tasks.state_dict(),
                 "optimizer": self.optimizer.state_dict(),
                 "position": asdict(self.position), "epoch_stats": asdict(self.stats),
                 "history": copy.deepcopy(self.history), "rng": capture_rng_state(self.device),
                 "cubes": {"n": int(self.data.shape[0]), "fingerprint": self.fingerprint},
                 "world_size": self.ddp.world_size}
        if self.ema is not None:
            state["ema"] = self.ema.state
        save_checkpoint(state, self.last_path)

    def _save_phase(self, phase_index: int, path: Path | None = None) -> None:
        """The model as it stands in ``phase_index``: at the phase end (``phaseK.pt``), or at an
        epoch end (``path`` under checkpoints/epochs/, ``train.keep_epoch_checkpoints``)."""
        if not self.ddp.is_main:
            return
        phase = self.schedule.phases[phase_index]
        rows = [row for row in self.history if row["phase"] == phase_index + 1]
        info = {"phase": phase_index + 1, "name": phase.name, "tasks": list(self.phase_weights(phase)),
                "epochs": phase.epochs, "epoch": len(rows), "global_step": self.position.global_step,
                "losses": row_losses(rows[-1]) if rows else {}}
        path = path or self.phase_path(phase_index)
        self._refuse_nonfinite({"model": self.runner.model.state_dict()}, path)
        if self.ema is None:
            save_checkpoint({**self._common_state(), "kind": "phase", "info": info}, path)
            return
        self._refuse_nonfinite({"ema": self.ema.state}, path)
        save_checkpoint({**self._common_state(averaged=True), "kind": "phase",
                         "info": {**info, "ema_decay": self.ema_decay}}, path)
        raw = path.parent / "raw" / path.name  # the weights as trained, beside the averaged ones
        raw.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint({**self._common_state(), "kind": "phase", "info": info}, raw)

    def epoch_path(self, phase_index: int, epoch: int) -> Path:
        return self.checkpoint_dir / "epochs" / f"phase{phase_index + 1}-epoch{epoch:03d}.pt"

    def _restore(self, state: Mapping[str, Any]) -> None:
        mismatches = config_mismatches(state["config"], self.config)
        if mismatches:
            raise ConfigError(f"cannot resume {self.run_dir}: config differs from the checkpoint in "
                              + "; ".join(mismatches))
        saved_cubes = state["cubes"]
        if saved_cubes["fingerprint"] != self.fingerprint:
            raise DataError(f"cannot resume {self.run_dir}: the cube array differs from the one it "
                            f"was trained on ({saved_cubes['n']} cubes then, {len(self.data)} now)")
        self.runner.model.load_state_dict(state["model"])
        self.runner.tasks.load_state_dict(state["tasks"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.position = Position(**state["position"])
        self.stats = EpochStats(**state["epoch_stats"])
        self.history = list(state["history"])
        if self.ema is not None:
            self.ema.load(state["ema"])
        restore_rng_state(state["rng"], self.device)
        if state.get("world_size", 1) != self.ddp.world_size:
            log.warning("resuming a %d-process run with %d processes: training continues, but not "
                        "bit-identically", state.get("world_size", 1), self.ddp.world_size)

    def _sync_buffers(self) -> None:
        """Give every rank rank 0's BatchNorm statistics (each rank's last step updated its own)."""
        if self.ddp.enabled:
            for buffer in self.runner.buffers():
                dist.broadcast(buffer, 0)

    def _barrier(self) -> None:
        if self.ddp.enabled:
            dist.barrier()

    # ---- the loop ------------------------------------------------------------------------

    def fit(self, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
        """Run (or with ``resume=True`` continue) the whole schedule; return a summary.

        A fresh fit into a folder that already holds a run is refused unless ``overwrite``,
        which first moves that run aside (``seqvad.runfolder.move_aside``).
        """
        self._prepare_run_dir(resume, overwrite)
        if resume:
            # On the CPU: RNG states must stay CPU tensors; load_state_dict moves the rest.
            self._restore(load_checkpoint(self.last_path, map_location="cpu"))
        self.runner.train()
        try:
            while self.position.phase < len(self.schedule.phases):
                self._run_phase(self.position.phase)
        finally:
            if self.ddp.owns_group and dist.is_initialized():
                dist.destroy_process_group()
                self.ddp.owns_group = False
        return self.summary()

    def _run_phase(self, index: int) -> None:
        phase = self.schedule.phases[index]
        at_phase_start = self.position.epoch == 0 and self.position.step == 0
        if at_phase_start and index > 0 and phase.reset_optimizer:
            self.optimizer = self._new_optimizer(phase.lr)
        for group in self.optimizer.param_groups:
            group["lr"] = phase.lr
        if at_phase_start:
            log.info("phase %d/%d (%s): tasks %s, %d epochs, lr %g", index + 1,
                     len(self.schedule.phases), phase.name, ",".join(self.phase_weights(phase)),
                     phase.epochs, phase.lr)
        while self.position.epoch < phase.epochs:
            self._run_epoch(index, phase)
        self._sync_buffers()
        self._save_phase(index)
        self.position = Position(phase=index + 1, global_step=self.position.global_step)
        self._save_last()

    def _epoch_batches(self, phase_index: int, epoch: int) -> list[torch.Tensor]:
        """This rank's batches of one epoch: its shard of the shared permutation."""
        world, n = self.ddp.world_size, len(self.data)
        if n < world:
            raise DataError(f"{n} cubes cannot be shared among {world} processes")
        order = epoch_permutation(n, self.seed, phase_index, epoch)
        if self.epoch_fraction < 1.0:  # a shorter epoch: its own random subset of the cubes
            order = order[: max(world, round(n * self.epoch_fraction))]
            n = len(order)
        order = order[: n - n % world][self.ddp.rank::world]  # equal shards: same step count per rank
        return split_batches(order, math.ceil(self.batch_size / world))

    def _run_epoch(self, phase_index: int, phase: Any) -> None:
        batches = self._epoch_batches(phase_index, self.position.epoch)
        self._steps_per_epoch = len(batches)
        weights = self.phase_weights(phase)
        bar = self._progress_bar(phase_index, phase, len(batches))
        try:
            tick = time.perf_counter()
            for step in range(self.position.step, len(batches)):
                losses = self.train_step(batches[step], weights, phase_index)
                self.stats.add(losses, len(batches[step]) * self.ddp.world_size)
                now = time.perf_counter()
                self.stats.seconds += now - tick
                tick = now
                self.position.step = step + 1
                self.position.global_step += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in self.stats.means().items()}, refresh=False)
                self._maybe_checkpoint()
                if self.on_step is not None:
                    self.on_step({"phase": phase_index, "epoch": self.position.epoch,
                                  "step": self.position.step, "global_step": self.position.global_step,
                                  "losses": losses})
        finally:
            if bar is not None:
                bar.close()
        self._end_epoch(phase_index, phase)

    def _end_epoch(self, phase_index: int, phase: Any) -> None:
        row = {"phase": phase_index + 1, "phase_name": phase.name, "epoch": self.position.epoch + 1,
               **self.stats.means(), "lr": phase.lr, "seconds": round(self.stats.seconds, 3)}
        self.history.append(row)
        self._write_logs()
        if self.keep_epoch_checkpoints:
            self._sync_buffers()
            self._save_phase(phase_index, self.epoch_path(phase_index, self.position.epoch + 1))
        if self.ddp.is_main:  # one line per epoch: what a run under nohup or a pipe shows (seqvad.progress)
            seconds = max(self.stats.seconds, 1e-9)
            left = phase.epochs - self.position.epoch - 1 + sum(
                p.epochs for p in self.schedule.phases[phase_index + 1:])
            log.info("phase %d/%d %s epoch %d/%d: %s, %.0f cubes/s, %.1f s, ETA ~%s (%d more epoch%s at this "
                     "pace)", phase_index + 1, len(self.schedule.phases), phase.name,
                     self.position.epoch + 1, phase.epochs,
                     " ".join(f"{k} {v:.4g}" for k, v in self.stats.means().items()),
                     self.stats.count / seconds, self.stats.seconds, duration(left * self.stats.seconds), left,
                     "" if left == 1 else "s")
        self.position.epoch += 1
        self.position.step = 0
        self.stats = EpochStats()
        if self.position.epoch < phase.epochs:  # the phase end writes its own checkpoint
            self._save_last()

    def train_step(self, indices: torch.Tensor, weights: Mapping[str, float],
                   phase_index: int = 0) -> dict[str, float]:
        """One optimiser step on the cubes ``indices`` with the tasks/weights of a phase.

        Returns the loss values (averaged over ranks); raises TrainingError, before any
        weight changes, when one is NaN or infinite.
        """
        cubes = to_float_cubes(self.data[indices.to(self.data.device)].to(self.device, non_blocking=True))
        losses = self.engine(cubes, weights)
        values = self._reduced_loss_values(losses, len(indices))
        bad = [name for name, value in values.items() if not math.isfinite(value)]
        if bad:
            # Stop before backward/step: the parameters and the last checkpoint stay good. This
            # forward pass may have updated BatchNorm's running statistics: say which went bad.
            poisoned = [name.rstrip(".") for name in nonfinite_entries(self.runner.model.state_dict())]
            also = f" (non-finite in memory: {', '.join(poisoned[:3])})" if poisoned else ""
            raise TrainingError(
                f"loss {', '.join(bad)} became {values[bad[0]]} in phase {phase_index + 1}, epoch "
                f"{self.position.epoch + 1}, step {self.position.step + 1}{also}; training stopped, "
                f"{self.last_path} holds the last good state (try a lower schedule.lr)")
        self.optimizer.zero_grad(set_to_none=True)
        totals = self.runner.task_totals
        if self.balance != "none" and len(totals) > 1:
            self._balanced_backward(totals, next(iter(weights)))
        else:
            losses["loss"].backward()
        if self._phase_step() < self.schedule.phases[phase_index].freeze_encoder_steps:
            for parameter in self.runner.model.encoder.parameters():
                parameter.grad = None  # Adam leaves parameters without a gradient untouched
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.runner.model)
        return values

    def _phase_step(self) -> int:
        """Steps already taken in the current phase (before this one)."""
        return self.position.epoch * self._steps_per_epoch + self.position.step

    def _balanced_backward(self, totals: Mapping[str, torch.Tensor], anchor: str) -> None:
        """Backward with the later tasks' encoder gradient combined with the anchor task's
        (``train.balance``); heads get their plain gradients."""
        encoder = [p for p in self.runner.model.encoder.parameters() if p.requires_grad]
        others = sum(value for name, value in totals.items() if name != anchor)
        totals[anchor].backward(retain_graph=True)
        anchor_grads = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in encoder]
        for p in encoder:
            p.grad = None
        others.backward()
        other_grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in encoder]
        combined = combine_gradients(anchor_grads, other_grads, self.balance, self.balance_ratio)
        for p, grad in zip(encoder, combined):
            p.grad = grad

    def _reduced_loss_values(self, losses: Mapping[str, torch.Tensor], n: int) -> dict[str, float]:
        """Loss values as floats, averaged over all ranks (so every rank sees the same NaN)."""
        names = list(losses)
        vector = torch.stack([losses[name].detach().float() for name in names])
        if self.ddp.enabled:
            vector = vector * n
            count = torch.tensor([float(n)], device=vector.device)
            packed = torch.cat([vector, count])
            dist.all_reduce(packed)
            vector = packed[:-1] / packed[-1]
        return dict(zip(names, vector.tolist()))

    def _maybe_checkpoint(self) -> None:
        every_steps = self.checkpoint_every_steps and self.position.global_step % self.checkpoint_every_steps == 0
        overdue = self.checkpoint_seconds > 0 and time.monotonic() - self._last_checkpoint_time >= self.checkpoint_seconds
        if self.ddp.enabled and self.checkpoint_seconds > 0:
            # Clocks differ between ranks: follow rank 0, so all ranks checkpoint at the same step.
            flag = torch.tensor([float(bool(every_steps or overdue))], device=self.device)
            dist.broadcast(flag, 0)
            overdue, every_steps = bool(flag.item()), False
        if every_steps or overdue:
            self._save_last()

    def _progress_bar(self, phase_index: int, phase: Any, total: int):
        if not (self.progress and self.ddp.is_main and sys.stderr.isatty()):
            return None
        from tqdm import tqdm

        description = (f"phase {phase_index + 1}/{len(self.schedule.phases)} {phase.name} "
                       f"epoch {self.position.epoch + 1}/{phase.epochs}")
        return tqdm(total=total, initial=self.position.step, desc=description, leave=False,
                    dynamic_ncols=True)

    # ---- results -------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        phases = []
        for index, phase in enumerate(self.schedule.phases):
            rows = [row for row in self.history if row["phase"] == index + 1]
            phases.append({
                "phase": index + 1, "name": phase.name, "tasks": list(self.phase_weights(phase)),
                "epochs": phase.epochs,
                "losses": row_losses(rows[-1]) if rows else {},
                "seconds": round(sum(row["seconds"] for row in rows), 3),
                "checkpoint": str(self.phase_path(index)) if index < self.position.phase else None,
            })
        return {"run_dir": str(self.run_dir), "last": str(self.last_path),
                "global_steps": self.position.global_step, "world_size": self.ddp.world_size,
                "device": str(self.device), "phases": phases}
