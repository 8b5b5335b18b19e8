"""The built-in configs load and pass the whole-config check; per-detector recipes differ only where chosen."""

import pytest

from seqvad.config import builtin_config_names, diff, load_config
from seqvad.config_check import validate


@pytest.mark.parametrize("name", builtin_config_names())
def test_builtin_config_is_valid(name):
    validate(load_config(name))


def test_ped2_boxes_differs_from_ped2_only_in_detector_balance_and_score():
    # the two Ped2 recipes: the gradient lever and the score terms were chosen per detector on
    # the validation split
    changed = {line.split(":")[0] for line in diff(load_config("ped2"), load_config("ped2_boxes"))}
    assert changed == {"detector.name", "train.balance", "train.balance_ratio", "scoring.terms.rec",
                       "scoring.terms.knn"}
