"""benchmarks/summary.py: the seeds' mean AUC and its bootstrap interval over videos."""

import importlib.util

import numpy as np
from sklearn.metrics import roc_auc_score
import pytest

from conftest import REPO
from test_studies import made_up as studies_made_up

spec = importlib.util.spec_from_file_location("summary", REPO / "benchmarks" / "summary.py")
summary = importlib.util.module_from_spec(spec)
spec.loader.exec_module(summary)


def made_up(seed=0):
    return studies_made_up(n_videos=8, frames=50, seed=seed)


def test_bootstrap_interval_of_a_perfect_and_a_useless_score():
    videos, labels, rng = made_up()
    low, high = summary.bootstrap_mean_auc(videos, labels, [labels + 0.1 * rng.random(len(labels))], draws=200)
    assert low == pytest.approx(1.0) and high == pytest.approx(1.0)
    noise = [rng.random(len(labels)) for _ in range(3)]
    low, high = summary.bootstrap_mean_auc(videos, labels, noise, draws=300)
    assert low < 0.5 < high and high - low < 0.2


def test_bootstrap_interval_contains_the_observed_mean():
    videos, labels, rng = made_up(seed=1)
    seeds = [labels * 0.3 + rng.random(len(labels)) for _ in range(3)]
    observed = np.mean([roc_auc_score(labels, s) for s in seeds])
    low, high = summary.bootstrap_mean_auc(videos, labels, seeds, draws=300)
    assert low <= observed <= high and 0.5 < low
