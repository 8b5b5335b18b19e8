"""Check a whole config before anything runs: unknown keys (with the closest known key), types, ranges.

A typo such as ``trian.batch_size`` or ``train.epochs`` used to be ignored silently and the run
went on with the default; a value of the wrong type failed with a traceback minutes later.
:func:`validate` raises one :class:`~seqvad.errors.ConfigError` naming the key instead.

Known keys and their types come from ``config.DEFAULTS``; :data:`EXTRA` lists the keys that have
no default there (and the types of keys whose default is ``None``), :data:`RULES` the ranges.
"""

from __future__ import annotations

import difflib
import numbers
import re
from typing import Any, Callable, Mapping

from seqvad.config import DEFAULTS, ENGINES
from seqvad.errors import ConfigError

REAL = "number"
# key -> allowed types, for keys absent from DEFAULTS or whose default is None
EXTRA: dict[str, tuple] = {
    "base": (str,),
    "data.dataset": (str, None), "data.root": (str, None), "data.labels": (str, None),
    "data.scene": (str, dict, None), "data.scene_seed": (int, None), "data.label_source": (str, None),
    "detector.boxes": (str, dict, None), "detector.min_area": (REAL,),
    # no longer read (a config could unpickle any file): see detector_pickle_rule
    "detector.allow_pickle": (bool,),
    "detector.yolox.model": (str, None), "detector.yolox.threads": (int, None),
    "model.memory": (dict, None), "model.hidden": (int,),
    "train.threads": (int, None), "train.progress": (bool,),
    "schedule.epochs": (int, list), "schedule.lr": (REAL, list), "schedule.order": (str, list),
    "schedule.reset_optimizer": (bool, list), "schedule.freeze_encoder_steps": (int, list),
    "schedule.phases": (list, None),
}
# free-form mappings: their own modules check their keys (data.scene, tasks, schedule.weights...)
FREE = {"data.scene", "tasks", "schedule.weights", "schedule.phases", "model.memory", "detector.boxes",
        "validation"}


def _at_least(low: float, strict: bool = False) -> Callable[[Any], str | None]:
    def rule(value):
        bad = value <= low if strict else value < low
        return f"must be {'>' if strict else '>='} {low}, got {value!r}" if bad else None
    return rule


def _one_of(*choices: Any) -> Callable[[Any], str | None]:
    return lambda value: None if value in choices else f"must be one of {', '.join(map(str, choices))}, got {value!r}"


def _fraction(value):
    return None if 0 <= value <= 1 else f"must lie in [0, 1], got {value!r}"


def _device(value):
    known = value in ("cpu", "cuda", "mps", "auto") or re.fullmatch(r"cuda:\d+", str(value))
    return None if known else f"must be cpu, cuda, cuda:N, mps or auto, got {value!r}"


def _quantile(value):
    return None if 0 < value <= 1 else f"must lie in (0, 1], got {value!r}"


def _decay(value):
    return None if 0 <= value < 1 else f"must lie in [0, 1) (0 = off), got {value!r}"


RULES: dict[str, Callable[[Any], str | None]] = {
    "train.device": _device, "train.batch_size": _at_least(1), "train.checkpoint_minutes": _at_least(0),
    "train.checkpoint_every_steps": _at_least(0), "train.threads": _at_least(1), "train.num_workers": _at_least(0),
    "train.balance": _one_of("none", "project", "scale"), "train.balance_ratio": _at_least(0, strict=True),
    "train.epoch_fraction": _quantile, "train.ema_decay": _decay,
    "cubes.window": _at_least(1), "cubes.size": _at_least(4), "cubes.channels": _one_of(1, 3),
    "detector.merge_iou": _fraction, "detector.min_area": _at_least(0),
    "detector.yolox.score_threshold": _fraction, "detector.yolox.nms_iou": _fraction,
    "detector.yolox.stride": _at_least(1), "detector.yolox.batch": _at_least(1), "detector.yolox.threads": _at_least(1),
    "detector.yolox.min_area": _at_least(0), "detector.yolox.carry": _one_of("copy", "motion"),
    "detector.yolox.gate": _fraction,
    "detector.motion.method": _one_of("knn", "mog2", "diff"), "detector.motion.min_area": _at_least(0),
    "detector.motion.history": _at_least(1), "detector.motion.warmup": _at_least(0),
    "scoring.error": _one_of("mse", "psnr"), "scoring.median_window": _at_least(1),
    "scoring.engine": _one_of(*ENGINES),
    "scoring.threshold_quantile": _quantile, "scoring.knn_k": _at_least(1),
    "scoring.context.k": _at_least(1), "scoring.context.weight": _at_least(0),
    "data.avenue_labels": _one_of("masks", "intervals"),
}


def known_keys() -> dict[str, tuple]:
    """Every known dotted key -> its allowed types (``dict`` for sections)."""
    out: dict[str, tuple] = {}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            name = prefix + key
            if isinstance(value, Mapping) and name not in FREE:
                out[name] = (dict,)
                walk(value, name + ".")
            else:
                out[name] = _types_of(value)
    walk(DEFAULTS, "")
    out.update(EXTRA)
    return out


def _types_of(default: Any) -> tuple:
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, int):
        return (int,)
    if isinstance(default, float):
        return (REAL,)
    if default is None:
        return (object,)
    return (dict if isinstance(default, Mapping) else type(default),)


def _matches(value: Any, kind: Any) -> bool:
    if kind is None:
        return value is None
    if kind is object:
        return True
    if isinstance(value, bool) and kind is not bool:
        return False  # YAML's true is not the number 1
    if kind == REAL:
        return isinstance(value, numbers.Real)
    if kind is dict:
        return isinstance(value, Mapping)
    return isinstance(value, kind)


def _type_names(kinds: tuple) -> str:
    names = {None: "null", dict: "a mapping", list: "a list", str: "a string", int: "an integer",
             bool: "true/false", REAL: "a number"}
    return " or ".join(names.get(k, getattr(k, "__name__", str(k))) for k in kinds)


def suggestion(name: str, known: Mapping[str, Any]) -> str:
    """`` (did you mean X?)`` for an unknown dotted key, or nothing."""
    leaf = name.rsplit(".", 1)[-1]
    same_leaf = sorted(k for k in known if k.rsplit(".", 1)[-1] == leaf)
    close = same_leaf or difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    if not close:  # a misspelt section: correct the section, keep the rest
        head, _, rest = name.partition(".")
        sections = difflib.get_close_matches(head, [k for k in known if "." not in k], n=1, cutoff=0.6)
        close = [f"{sections[0]}.{rest}" if rest else sections[0]] if sections else []
    return f" (did you mean {close[0]}?)" if close else ""


def validate(config: Mapping[str, Any], source: str = "config") -> None:
    """Raise ConfigError naming the first unknown key, wrong type or value out of range."""
    known = known_keys()

    def walk(node: Any, prefix: str) -> None:
        for key, value in node.items():
            name = prefix + str(key)
            if name not in known:
                raise ConfigError(f"{source}: unknown key {name}{suggestion(name, known)}")
            kinds = known[name]
            if not any(_matches(value, kind) for kind in kinds):
                raise ConfigError(f"{source}: {name} must be {_type_names(kinds)}, got {value!r}")
            if isinstance(value, Mapping) and name not in FREE:
                walk(value, name + ".")
            elif name in RULES and value is not None and not isinstance(value, (list, Mapping)):
                problem = RULES[name](value)
                if problem:
                    raise ConfigError(f"{source}: {name} {problem}")

    if not isinstance(config, Mapping):
        raise ConfigError(f"{source}: a config must be a mapping of sections, got {config!r}")
    walk(config, "")
    _check_with_owners(config, source)


def _check_with_owners(config: Mapping[str, Any], source: str) -> None:
    """Sections whose own modules know their rules: the schedule, the tasks, the model, the detector."""
    from seqvad.curriculum import Schedule
    from seqvad.objects.detectors import detector_names

    name = (config.get("detector") or {}).get("name")
    if name is not None and name not in detector_names():
        raise ConfigError(f"{source}: detector.name must be one of {', '.join(detector_names())}, got {name!r}")
    if (config.get("detector") or {}).get("allow_pickle"):
        raise ConfigError(f"{source}: detector.allow_pickle is no longer read from configs (a config could "
                          "unpickle any file); convert the boxes once with `seqvad boxes convert IN.npy OUT.npz "
                          "--allow-pickle`, or pass --allow-pickle on the command line")
    try:
        Schedule.from_config(config.get("schedule"))
        from seqvad.model import MODEL_KEYS
        from seqvad.tasks import build_tasks

        build_tasks(config.get("tasks"))
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: invalid value ({exc})") from None
    unknown = sorted(set(config.get("model") or {}) - set(MODEL_KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown key model.{unknown[0]} (known: {', '.join(MODEL_KEYS)})")
