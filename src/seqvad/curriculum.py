"""The learning order (Sec. 3.4, Tab. 1): which pretext tasks are on in which phase.

The config section ``schedule`` reads::

    order: "pre,rec,cls"       # cumulative phases: [pre], [pre, rec], [pre, rec, cls]
    epochs: [10, 10, 10]       # one per phase, or one int for every phase
    lr: 1.0e-3                 # one float, or one per phase
    reset_optimizer: false     # one bool, or one per phase: start the phase with fresh Adam state
    weights: {}                # per-task loss weight, e.g. {pre: 1, rec: 1, cls: 1}; default 1.0
    freeze_encoder_steps: 0    # one int, or one per phase: the phase's first N steps train only
                               # the heads (the shared encoder keeps what earlier phases learned
                               # while a new head starts from random weights)

``order`` grammar:

* ``"a,b,c"``: phase k trains the first k names (any order and any subset of the known tasks,
  e.g. ``"rec,cls,pre"``; ``"pre"`` alone is a single phase). ``"pre=1,rec=0.5"`` also sets
  weights.
* ``"simultaneous:pre=3,rec=2,cls=1"``: ONE phase training every listed task at once with those
  weights (the paper's re-weighted "equivalent" of Tab. 5); plain ``"simultaneous"`` is
  ``pre,rec,cls`` with equal weights. An epochs list is summed, so the simultaneous run trains
  as many epochs as the sequential one it is compared with; ``lr`` and ``reset_optimizer``
  must then be single values (or lists of one).

Instead of ``order``, ``phases`` may list the phases explicitly::

    phases: [{tasks: [pre], epochs: 5}, {tasks: [pre, rec], epochs: 5, lr: 5.0e-4, weights: {rec: 2}}]

where a missing key takes the section-level value. Weights given in the order string override
``weights``; a phase's ``weights`` hold exactly its tasks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from seqvad.errors import ConfigError


def known_tasks() -> tuple[str, ...]:
    """The pretext tasks' names, in order: those of :data:`seqvad.tasks.TASKS` (the one list)."""
    from seqvad.tasks import TASKS  # torch: loaded when a schedule is checked, not with this module

    return tuple(TASKS)


def __getattr__(name: str):
    if name == "KNOWN_TASKS":  # derived, still importable: ``from seqvad.curriculum import KNOWN_TASKS``
        return known_tasks()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


SCHEDULE_KEYS = ("order", "epochs", "lr", "reset_optimizer", "weights", "phases", "freeze_encoder_steps")
PHASE_KEYS = ("tasks", "epochs", "lr", "reset_optimizer", "weights", "name", "freeze_encoder_steps")
SIMULTANEOUS = "simultaneous"


@dataclass
class Phase:
    tasks: list[str]
    epochs: int
    weights: dict[str, float] = field(default_factory=dict)
    lr: float = 1e-3
    reset_optimizer: bool = False
    name: str = ""
    freeze_encoder_steps: int = 0

    def __post_init__(self) -> None:
        check_tasks(self.tasks)
        self.epochs = check_epochs(self.epochs)
        self.lr = check_lr(self.lr)
        if not isinstance(self.reset_optimizer, bool):
            raise ConfigError(f"schedule.reset_optimizer: expected true or false, got {self.reset_optimizer!r}")
        self.weights = {task: check_weight(task, self.weights.get(task, 1.0)) for task in self.tasks}
        self.name = self.name or "+".join(self.tasks)
        steps = self.freeze_encoder_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ConfigError(f"schedule.freeze_encoder_steps: expected a whole number >= 0, got {steps!r}")


@dataclass
class Schedule:
    phases: list[Phase]

    def __post_init__(self) -> None:
        if not self.phases:
            raise ConfigError("schedule: at least one phase is needed")

    @classmethod
    def from_config(cls, schedule_cfg: dict[str, Any] | None) -> "Schedule":
        """The schedule of the config section ``schedule`` (see the module docstring)."""
        cfg = dict(schedule_cfg or {})
        unknown = set(cfg) - set(SCHEDULE_KEYS)
        if unknown:
            raise ConfigError(f"schedule: unknown keys {', '.join(sorted(unknown))} "
                              f"(known: {', '.join(SCHEDULE_KEYS)})")
        epochs, lr = cfg.get("epochs", 10), cfg.get("lr", 1e-3)
        reset, weights = cfg.get("reset_optimizer", False), cfg.get("weights") or {}
        freeze = cfg.get("freeze_encoder_steps", 0)
        if cfg.get("phases"):
            return cls.from_phase_list(cfg["phases"], epochs, lr, reset, weights, freeze)
        return cls.parse(cfg.get("order", "pre,rec,cls"), epochs=epochs, lr=lr,
                         reset_optimizer=reset, weights=weights, freeze_encoder_steps=freeze)

    @classmethod
    def parse(cls, text: str, epochs: int | Sequence[int] = 10, lr: float | Sequence[float] = 1e-3,
              reset_optimizer: bool | Sequence[bool] = False,
              weights: dict[str, float] | None = None,
              freeze_encoder_steps: int | Sequence[int] = 0) -> "Schedule":
        """A schedule from an order string: ``"pre,rec,cls"``, ``"simultaneous:pre=3,rec=2,cls=1"``."""
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"schedule.order: expected a string such as 'pre,rec,cls', got {text!r}")
        if not isinstance(weights or {}, dict):
            raise ConfigError(f"schedule.weights: expected a mapping such as {{pre: 1, rec: 1}}, got {weights!r}")
        weights = dict(weights or {})
        check_tasks(list(weights), what="schedule.weights")
        text = text.strip().lower()
        head, _, rest = text.partition(":")
        if head.strip() == SIMULTANEOUS:
            tasks, string_weights = parse_weighted_tasks(rest) if rest.strip() else (["pre", "rec", "cls"], {})
            total = sum(map(check_epochs, per_phase(epochs, None, "epochs")))
            phase = Phase(tasks=tasks, epochs=total, weights={**weights, **string_weights},
                          lr=per_phase(lr, 1, "lr")[0],
                          reset_optimizer=per_phase(reset_optimizer, 1, "reset_optimizer")[0],
                          name=f"{SIMULTANEOUS}-" + "+".join(tasks),
                          freeze_encoder_steps=per_phase(freeze_encoder_steps, 1, "freeze_encoder_steps")[0])
            return cls([phase])
        names, string_weights = parse_weighted_tasks(text)
        count = len(names)
        epoch_list = per_phase(epochs, count, "epochs")
        lr_list = per_phase(lr, count, "lr")
        reset_list = per_phase(reset_optimizer, count, "reset_optimizer")
        freeze_list = per_phase(freeze_encoder_steps, count, "freeze_encoder_steps")
        phases = [Phase(tasks=names[: k + 1], epochs=epoch_list[k], weights={**weights, **string_weights},
                        lr=lr_list[k], reset_optimizer=reset_list[k],
                        name=f"phase{k + 1}-" + "+".join(names[: k + 1]),
                        freeze_encoder_steps=freeze_list[k])
                  for k in range(count)]
        return cls(phases)

    @classmethod
    def from_phase_list(cls, phases: Any, epochs: Any = 10, lr: Any = 1e-3, reset_optimizer: Any = False,
                        weights: dict[str, float] | None = None, freeze_encoder_steps: Any = 0) -> "Schedule":
        """Explicit phases; a key a phase leaves out takes the section-level value (a list there
        is read per phase)."""
        if not isinstance(phases, list) or not all(isinstance(p, dict) for p in phases):
            raise ConfigError("schedule.phases: expected a list of mappings such as {tasks: [pre], epochs: 5}")
        count = len(phases)
        defaults = {"epochs": per_phase(epochs, count, "epochs"), "lr": per_phase(lr, count, "lr"),
                    "reset_optimizer": per_phase(reset_optimizer, count, "reset_optimizer"),
                    "freeze_encoder_steps": per_phase(freeze_encoder_steps, count, "freeze_encoder_steps")}
        out = []
        for k, spec in enumerate(phases):
            unknown = set(spec) - set(PHASE_KEYS)
            if unknown:
                raise ConfigError(f"schedule.phases[{k}]: unknown keys {', '.join(sorted(unknown))} "
                                  f"(known: {', '.join(PHASE_KEYS)})")
            tasks = spec.get("tasks")
            if isinstance(tasks, str):
                tasks = [t.strip() for t in tasks.split(",")]
            if not isinstance(tasks, list):
                raise ConfigError(f"schedule.phases[{k}].tasks: expected a list of task names, got {tasks!r}")
            out.append(Phase(tasks=tasks, epochs=spec.get("epochs", defaults["epochs"][k]),
                             weights={**(weights or {}), **(spec.get("weights") or {})},
                             lr=spec.get("lr", defaults["lr"][k]),
                             reset_optimizer=spec.get("reset_optimizer", defaults["reset_optimizer"][k]),
                             name=spec.get("name") or f"phase{k + 1}-" + "+".join(tasks),
                             freeze_encoder_steps=spec.get("freeze_encoder_steps",
                                                           defaults["freeze_encoder_steps"][k])))
        return cls(out)

    def total_epochs(self) -> int:
        return sum(phase.epochs for phase in self.phases)

    def describe(self) -> str:
        """One line per phase, for logs and reports."""
        return "\n".join(f"{p.name}: tasks {', '.join(f'{t}:{p.weights[t]:g}' for t in p.tasks)}; "
                         f"{p.epochs} epochs, lr {p.lr:g}{', fresh optimizer' if p.reset_optimizer else ''}"
                         for p in self.phases)


def parse_weighted_tasks(text: str) -> tuple[list[str], dict[str, float]]:
    """``"pre=3, rec=2,cls"`` -> (["pre", "rec", "cls"], {"pre": 3.0, "rec": 2.0})."""
    names, weights = [], {}
    for item in text.split(","):
        name, eq, value = (part.strip() for part in item.partition("="))
        if not name:
            raise ConfigError(f"schedule.order: empty task name in {text!r}")
        names.append(name)
        if eq:
            try:
                weights[name] = float(value)
            except ValueError:
                raise ConfigError(f"schedule.order: weight {value!r} of task {name} is not a number") from None
    check_tasks(names, what="schedule.order")
    return names, weights


def check_tasks(tasks: list[str], what: str = "schedule") -> None:
    known = known_tasks()
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise ConfigError(f"{what}: unknown tasks {', '.join(map(str, unknown))} (known: {', '.join(known)})")
    if what != "schedule.weights" and not tasks:
        raise ConfigError(f"{what}: a phase needs at least one task")
    repeated = sorted({t for t in tasks if tasks.count(t) > 1})
    if repeated:
        raise ConfigError(f"{what}: tasks listed twice: {', '.join(repeated)}")


def per_phase(value: Any, count: int | None, key: str) -> list[Any]:
    """A scalar for every phase, or a list that must hold one value per phase."""
    if isinstance(value, (list, tuple)):
        if count is not None and len(value) != count:
            raise ConfigError(f"schedule.{key}: {len(value)} values for {count} phase(s)")
        return list(value)
    return [value] * (count or 1)


def check_epochs(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"schedule.epochs: each phase needs a whole number of epochs >= 1, got {value!r}")
    return value


def check_lr(value: Any) -> float:
    if isinstance(value, str):  # YAML reads 1e-3 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"schedule.lr: expected a learning rate > 0, got {value!r}")
    return float(value)


def check_weight(task: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigError(f"schedule.weights.{task}: expected a number >= 0, got {value!r}")
    return float(value)
