"""What each study trains: its variants (config overrides) and the budget shared by all.

The budget is fixed from wall time alone, before any study result (one timing run of the
default curriculum, whose AUC was not read): 1 epoch per phase over half the training cubes
(``train.epoch_fraction``: each epoch a fresh random half), i.e. about 1/8 of the training
steps of the default Ped2 curriculum (epochs 5 / 4 / 3 over all cubes). On the 2-core CPU a
sequential run then takes about 2 minutes of training and 1 of scoring, so the three studies
(26 variants x 3 seeds) fit in about an hour on two parallel processes. Every variant of a
study trains the same number of steps: a simultaneous run trains as many epochs as the
sequential run it stands for (3), and every Tab. 2 loss combination trains 3 epochs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import permutations
from typing import Any

from seqvad.errors import ConfigError

BUDGET: dict[str, Any] = {"schedule": {"epochs": [1, 1, 1]}, "train": {"epoch_fraction": 0.5}}
BUDGET_TEXT = ("1 epoch per phase (3 in all) over a fresh random half of the training cubes per epoch "
               "(train.epoch_fraction 0.5): about 1/8 of the default Ped2 curriculum's training steps")
NAMES = {"pre": "Pre", "rec": "Rec", "cls": "Cls"}
DEFAULT_ORDER = ("pre", "rec", "cls")
# the paper's Tab. 5 rows, in its order
ORDERS = [("pre", "rec", "cls"), ("pre", "cls", "rec"), ("rec", "pre", "cls"), ("rec", "cls", "pre"),
          ("cls", "pre", "rec"), ("cls", "rec", "pre")]
assert sorted(ORDERS) == sorted(permutations(DEFAULT_ORDER))


@dataclass(frozen=True)
class Variant:
    name: str  # file-name safe, unique across studies for one config
    label: str  # as the paper's table writes it
    overrides: dict = field(default_factory=dict)
    paper_ped2: Any = None  # the paper's Ped2 AUC (%) for this row: a number or a list per phase


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    variants: tuple[Variant, ...]

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise ConfigError(f"study {self.name}: no variant {name!r} (known: {', '.join(v.name for v in self.variants)})")


def sequential(order: tuple[str, ...], paper=None) -> Variant:
    return Variant("seq-" + "-".join(order), "-".join(NAMES[t] for t in order),
                   {"schedule": {"order": ",".join(order)}}, paper)


def simultaneous(order: tuple[str, ...], paper=None) -> Variant:
    """The order's re-weighted equivalent (Tab. 5, last column): one phase with every task, the
    weight of each task its number of phases in the sequential run (3:2:1 for Pre-Rec-Cls)."""
    weights = ",".join(f"{task}={len(order) - i}" for i, task in enumerate(order))
    ratio = ":".join(str(len(order) - i) for i in range(len(order)))
    return Variant("sim-" + "-".join(order), f"{'-'.join(NAMES[t] for t in order)} {ratio}",
                   {"schedule": {"order": f"simultaneous:{weights}", "epochs": [1] * len(order)}}, paper)


# Tab. 5, Ped2: phase AUCs of the sequential orders (None where the paper gives none), and
# the simultaneous equivalents
PAPER_ORDERS = {("pre", "rec", "cls"): ([91.34, 95.17, 97.57], 87.97),
                ("pre", "cls", "rec"): ([91.34, 93.44, 95.66], 91.46),
                ("rec", "pre", "cls"): ([73.12, 93.01, 94.18], 88.04),
                ("rec", "cls", "pre"): ([73.12, 88.34, 92.02], 90.85),
                ("cls", "pre", "rec"): ([None, 94.29, 95.31], 87.53),
                ("cls", "rec", "pre"): ([None, 59.73, 93.41], 91.41)}


def _orders() -> tuple[Variant, ...]:
    rows = [sequential(order, PAPER_ORDERS[order][0]) for order in ORDERS]
    rows += [simultaneous(order, PAPER_ORDERS[order][1]) for order in ORDERS]
    # the dotted line of Fig. 1 for the default order: Pre and Rec at once (2:1), 2 epochs
    rows.append(simultaneous(DEFAULT_ORDER[:2]))
    return tuple(rows)


# Tab. 2: (losses, Ped2 AUC). Each row trains its losses at once, summed with weight 1, for the
# 3 epochs of the budget. The memory module (Gong et al.) is on exactly where L_sps is (in
# seqvad the sparsity loss joins whenever the model has a memory); L_grd is the prediction
# task's gradient term, L_con the order task's contrastive term.
PAPER_LOSSES = [(("pre", "grd", "rec", "sps", "cls", "con"), 83.85), (("pre", "grd", "rec", "sps", "cls"), 76.50),
                (("rec", "sps", "cls", "con"), 63.76), (("pre", "grd", "cls", "con"), 88.40),
                (("rec", "sps"), 82.69), (("pre", "grd"), 72.04), (("pre",), 92.29)]
MEMORY = {"items": 100, "shrink": 0.0025}


def loss_combination(losses: tuple[str, ...], paper=None) -> Variant:
    tasks = [task for task in ("pre", "rec", "cls") if task in losses]
    overrides: dict[str, Any] = {"schedule": {"order": "simultaneous:" + ",".join(f"{t}=1" for t in tasks),
                                              "epochs": [3]},
                                 "tasks": {"pre": {"grad_weight": 1.0 if "grd" in losses else 0.0},
                                           "cls": {"con_weight": 1.0 if "con" in losses else 0.0}},
                                 "model": {"memory": dict(MEMORY) if "sps" in losses else None}}
    if len(tasks) == 1:  # one task: a plain single phase
        overrides["schedule"]["order"] = tasks[0]
    return Variant("loss-" + "-".join(losses), "+".join(losses), overrides, paper)


STUDIES: dict[str, Study] = {
    "orders": Study("orders", "Learning orders and their simultaneous equivalents (Tab. 5, Fig. 1)", _orders()),
    "losses": Study("losses", "Loss combinations trained at once (Tab. 2)",
                    tuple(loss_combination(losses, paper) for losses, paper in PAPER_LOSSES)),
    "phases": Study("phases", "Each added phase raises AUC (Fig. 4)",
                    (sequential(DEFAULT_ORDER, PAPER_ORDERS[DEFAULT_ORDER][0]),)),
}


def get_study(name: str) -> Study:
    if name not in STUDIES:
        raise ConfigError(f"{name}: no such study (known: {', '.join(STUDIES)})")
    return STUDIES[name]
