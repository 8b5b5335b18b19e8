"""Configuration: nested dicts with a default for every knob, loaded from YAML.

A config is built as ``DEFAULTS`` <- dataset YAML <- user YAML <- command-line overrides.
Each component reads its own section (``detector``, ``cubes``, ``model``, ``tasks``,
``schedule``, ``train``, ``scoring``) and nothing else.
"""

from __future__ import annotations

import copy
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from seqvad.errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "name": "default",
    "data": {"dataset": None, "root": None, "avenue_labels": "masks"},
    "detector": {
        "name": "motion",  # motion | yolox | yolox+motion | precomputed
        # 'precomputed': a .npz of plain arrays (`seqvad boxes convert`) or a .csv
        # (video,frame,x1,y1,x2,y2[,score,class]); may contain {split}; relative to data.root.
        # A .npy object array is a pickle: it loads only with --allow-pickle on the command line
        "boxes": None,
        "merge_iou": 0.3,  # a motion box overlapping a detector box by more is dropped
        "yolox": {
            "model": None,  # None: the bundled seqvad/assets/yolox_nano.onnx
            # [width, height] (multiples of 32), keyframe stride (the network runs on every stride-th
            # frame), how boxes are carried to the frames between keyframes (copy: unchanged;
            # motion: moved with the motion blob each overlaps) and the motion gate (0: off; > 0:
            # also a keyframe when the motion mask's 1 - IoU with the last keyframe's exceeds it).
            # Chosen on the Ped2 *training* split only (results/detect_ped2.json
            # "keyframe_selection", `python benchmarks/keyframes.py`), rule: among settings whose
            # `seqvad detect` keeps >= 60 frames/s on 2 cores (estimated from per-stage costs), the
            # largest recall of the reference boxes at IoU 0.3 (yolox+motion):
            #   672x448 stride 6 carry motion 0.944 (IoU 0.5: 0.838) 5.5 CPU-ms/frame, est. 63 fps  <- chosen
            #   672x448 stride 6 copy 0.943 (0.787) est. 64 | 768x512 stride 8 motion 0.938 est. 63
            #   576x384 stride 4 copy 0.926 est. 65 | 576x384 stride 2 copy (before) 0.930 est. 47
            #   (measured 47.0) | 768x512 stride 6 0.955 est. 56 (too slow)
            # Gating never beat the fixed stride of the same keyframe rate (576x384, gate 0.5, max
            # stride 8: 0.926 at 26 % keyframes vs stride 4: 0.926 at 25 %) and bounds no cost: off.
            "input_size": [672, 448],
            "stride": 6,
            "carry": "motion",
            "gate": 0.0,
            "score_threshold": 0.25,
            "nms_iou": 0.45,
            "classes": ["person", "bicycle", "car", "motorcycle", "bus", "truck", "skateboard"],
            "min_area": 64,
            "batch": 1,  # batching gave no measurable gain on CPU
            "threads": None,  # onnxruntime threads per process; None: cores / workers
        },
        # KNN with threshold 200 and a 20-frame warm-up: recall 0.636 of the Ped2 training
        # boxes, against 0.53 for MOG2 (threshold 16) and 0.46 for frame differencing
        "motion": {"method": "knn", "history": 200, "var_threshold": 200.0, "min_area": 40,
                   "kernel": 3, "warmup": 20,
                   # warm-up frames cleaned of what passes through them (grey levels from their
                   # per-pixel median; 0: off; motion.clean_of_passers_by). Ped2 training split:
                   # spurious boxes 4869 vs 5006, small ones 1773 vs 2377, recall 0.9434 vs 0.9447
                   # (results/ped2/warmup_variants.json); validation guard passed (selection.csv)
                   "warmup_clean": 25},
    },
    "cubes": {"window": 4, "size": 32, "channels": 1},
    # width 8 / latent 32: the smallest that beats frame interpolation at predicting crops, and
    # fast on 2 CPU cores (about 101 MFLOP per cube per phase-3 training step, fwd+bwd;
    # width 16 / latent 64 costs 359 MFLOP and 3.5x the time). See results/train_speed.json.
    "model": {"blocks": 2, "width": 8, "latent": 32, "projection": 64, "norm": "batch",
              "memory": None},  # memory: {items: 100, shrink: 0.0025} for the Table 2 study
    "tasks": {
        "pre": {"grad_weight": 1.0},
        "rec": {},
        "cls": {"tau": 0.1, "con_weight": 1.0, "static_threshold": 2.0, "acc_start": "fixed"},
        "sps": {"weight": 0.0002},
    },
    "schedule": {"order": "pre,rec,cls", "epochs": [10, 10, 10], "lr": 1e-3,
                 "reset_optimizer": False, "weights": {}, "freeze_encoder_steps": 0},
    "train": {"batch_size": 256, "seed": 0, "device": "cpu", "checkpoint_minutes": 10.0,
              "checkpoint_every_steps": 0,  # 0 = off; tests use 1 to kill and resume at any step
              "threads": None,  # torch threads; None = torch's default (the number of cores)
              "num_workers": 0,
              # the later tasks' gradient on the shared encoder against the first task's:
              # none | project | scale (seqvad.train.combine_gradients)
              "balance": "none", "balance_ratio": 1.0,
              # exponential moving average of the model's weights, updated after every step across
              # all phases: phase checkpoints (what is scored) hold the average, its BatchNorm
              # statistics recomputed on training cubes; checkpoints/raw/ the weights as trained.
              # 0 = off (the paper's recipe)
              "ema_decay": 0.0,
              # each epoch trains on this fraction of the cubes (a fresh random subset per epoch):
              # a fixed, smaller step budget for many-run studies (seqvad.studies); 1 = full epochs
              "epoch_fraction": 1.0,
              # also keep the model after every epoch (checkpoints/epochs/), for
              # `seqvad evaluate --every-epoch` (the paper's best-epoch protocol, labelled oracle)
              "keep_epoch_checkpoints": False},
    # The validation split (seqvad.data.validation): training videos held out of training, with
    # injected labelled anomalies; every model choice is made on it, never on test labels.
    # Used by `seqvad experiment --validate`; `videos` names the held-out videos (none by default).
    # 'rush' (a real person replayed too fast; optional, not in the default kinds): rush_speed 2
    # (twice walking pace, a jogger or a slow cyclist) fixed from the footage, before any result.
    "validation": {"videos": [], "kinds": ["glide", "foreign", "fast"], "seed": 0, "span": 24,
                   "speed": 1.25, "object_speed": 1.25, "rush_speed": 2.0, "gap": 16,
                   "copies": 3},
    # seqvad.scoring: the object score is the paper's prediction error (error: mse | psnr);
    # frame score = max over objects, median-filtered over median_window frames; the alarm
    # threshold is the threshold_quantile of the training frame scores
    "scoring": {"error": "mse", "normalize": False, "median_window": 17, "threshold_quantile": 0.99,
                # the network that computes the object terms (seqvad.scoring.compact): folded
                # (torch, BatchNorm folded, only the heads the weighted terms need) | onnx (the same
                # in onnxruntime, needs the onnx package) | torch (the whole model)
                "engine": "folded",
                # optional motion context (seqvad.context): place + velocity of each object
                # against the training objects', added to its normalised prediction error
                "context": {"enabled": False, "weight": 1.0, "k": 10},
                # optional normalisation by nuisances measured on training objects
                # (seqvad.scoring.nuisance): [height] and/or [count]; none is the paper's score
                "normalize_by": [],
                # optional per-object terms (seqvad.scoring.errors), term -> weight: any nonzero
                # weight besides pre sums every weighted term normalised by its training
                # median / IQR; choose them on the validation split, never on test
                "terms": {"pre": 1.0, "rec": 0.0, "order": 0.0, "knn": 0.0}, "knn_k": 10,
                # frame scores -> events (seqvad.scoring.events): an event opens over the threshold,
                # closes once the score stays under close_ratio x threshold for min_gap seconds, and
                # is dropped when shorter than min_duration seconds. 1 s / 0.5 s: a watcher wants
                # "one thing happened for 9 s", not every dip of the median-filtered score
                "events": {"close_ratio": 0.8, "min_gap": 1.0, "min_duration": 0.5}},
}

# scoring.engine: the full model, the folded torch module, onnxruntime (seqvad.scoring.compact)
ENGINES = ("torch", "folded", "onnx")

# Keys that change how training runs but not what it computes: a resume may change them.
RESUMABLE_KEYS = frozenset({
    "train.checkpoint_minutes", "train.checkpoint_every_steps", "train.device",
    "train.num_workers", "train.progress", "train.threads", "train.keep_epoch_checkpoints", "scoring.engine",
})


# Real footage (`seqvad train --folder`, `seqvad.api.Detector()`): the bundled YOLOX detector plus the
# motion boxes it misses; DEFAULTS' "motion" alone suits the synthetic demo scene
FOOTAGE_DETECTOR = "yolox+motion"


def footage_config() -> dict[str, Any]:
    """The config for one's own footage when none is given: DEFAULTS with :data:`FOOTAGE_DETECTOR`."""
    return load_config({"detector": {"name": FOOTAGE_DETECTOR}})


def section(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``config[name]`` over its defaults: a key the config leaves out takes its one default here."""
    return {**DEFAULTS[name], **(config.get(name) or {})}


def cube_geometry(config: Mapping[str, Any]) -> dict[str, int]:
    """``window`` (T: a cube spans 2T+1 frames), ``size`` and ``channels`` of the config's cubes."""
    cubes = section(config, "cubes")
    return {key: int(cubes[key]) for key in ("window", "size", "channels")}


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in (override or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def builtin_config_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("seqvad.configs").iterdir() if p.name.endswith(".yaml"))


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections")
    return data


def load_config(source: str | Path | Mapping[str, Any] | None = None,
                overrides: Mapping[str, Any] | None = None, _chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """Defaults <- (a built-in name such as ``ped2``, a YAML path, or a dict) <- overrides."""
    if source is None:
        user: Mapping[str, Any] = {}
    elif isinstance(source, Mapping):
        user = source
    elif Path(source).suffix in (".yaml", ".yml") or Path(source).is_file():  # a folder named demo is no config
        user = read_yaml(source)
    else:
        name = str(source)
        if name not in builtin_config_names():
            raise ConfigError(f"{name}: no such config file or built-in config "
                              f"(built-in: {', '.join(builtin_config_names())})")
        user = yaml.safe_load(resources.files("seqvad.configs").joinpath(name + ".yaml").read_text())
    config = deep_merge(DEFAULTS, user)
    if user.get("base"):
        base, here = _config_id(user["base"]), "<config>" if isinstance(source, Mapping) else _config_id(source)
        if base in _chain or base == here:  # a config that is its own base would recurse forever
            raise ConfigError(f"{here}: base: {base} refers back to itself ({' -> '.join([*_chain, here, base])})")
        config = deep_merge(load_config(base, _chain=(*_chain, here)), {k: v for k, v in user.items() if k != "base"})
    return deep_merge(config, overrides or {})


def _config_id(source: str | Path) -> str:
    """One name per config, however a path to it is written (for the ``base:`` cycle check)."""
    path = Path(source)
    return str(path.resolve()) if path.is_file() else str(source)


def set_dotted(config: dict[str, Any], dotted: str, value: Any) -> None:
    """``set_dotted(cfg, 'train.batch_size', 64)``: used for ``--set key=value`` overrides."""
    keys = dotted.split(".")
    if not all(keys):
        raise ConfigError(f"{dotted}: not a config key (expected section.key, e.g. train.batch_size)")
    node = config
    for depth, key in enumerate(keys[:-1]):
        node = node.setdefault(key, {})
        if not isinstance(node, dict):  # e.g. train.seed.x: train.seed is a number, not a section
            raise ConfigError(f"{dotted}: {'.'.join(keys[:depth + 1])} is a value ({node!r}), not a section")
    node[keys[-1]] = value


def config_hash(section: Any) -> str:
    """A stable short hash of a config section (cache keys, resume checks)."""
    return hashlib.sha256(json.dumps(section, sort_keys=True, default=str).encode()).hexdigest()[:16]


def diff(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two configs."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        name = f"{prefix}{key}"
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out += diff(va, vb, name + ".")
        elif va != vb:
            out.append(f"{name}: {va!r} -> {vb!r}")
    return out
