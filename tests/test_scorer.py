"""The fitted Scorer (seqvad.scoring.scorer): terms, normalisation, context, kNN, threshold, state."""

import io

import numpy as np
import pytest
import torch

from seqvad import scoring
from seqvad.config import DEFAULTS
from seqvad.errors import ConfigError
from seqvad.model import build_model
from seqvad.scoring import NotFittedError, Scorer


@pytest.fixture(scope="module")
def tiny():
    """An untrained tiny model (eval mode), training and test objects that move along a row."""
    torch.manual_seed(0)
    cubes_cfg = DEFAULTS["cubes"]
    model = build_model({**DEFAULTS["model"], "width": 4, "latent": 8, "projection": 8}, cubes_cfg["channels"],
                        window=cubes_cfg["window"], size=cubes_cfg["size"]).eval()
    rng = np.random.default_rng(0)

    def objects(n, videos, frames_per_video):
        shape = (n, 2 * cubes_cfg["window"] + 1, cubes_cfg["channels"], cubes_cfg["size"], cubes_cfg["size"])
        x1 = rng.uniform(0, 60, n).astype(np.float32)
        y1 = rng.uniform(20, 30, n).astype(np.float32)
        index = {"video": rng.integers(0, videos, n), "frame": rng.integers(0, frames_per_video, n),
                 "x1": x1, "y1": y1, "x2": x1 + 20, "y2": y1 + 30}
        return rng.integers(0, 256, shape, dtype=np.uint8), index

    train_cubes, train_index = objects(60, 2, 30)
    test_cubes, test_index = objects(25, 1, 20)
    return {"model": model, "train": (train_cubes, train_index, [30, 30]), "test": (test_cubes, test_index)}


def test_defaults_score_the_raw_prediction_error(tiny):
    model, (cubes, index) = tiny["model"], tiny["test"]
    scorer = Scorer({"engine": "torch"})  # nothing fitted: the paper's score needs nothing
    assert scorer.raw and scorer.term_names == ("pre",)
    np.testing.assert_array_equal(scorer.object_scores(model, cubes, index), scoring.object_errors(model, cubes))
    # the default engine: the folded network (tests/test_compact.py states its tolerance)
    np.testing.assert_allclose(Scorer().object_scores(model, cubes, index), scoring.object_errors(model, cubes),
                               rtol=1e-5, atol=1e-7)


def test_pre_plus_rec_is_the_sum_of_normalised_terms_clipped_at_zero(tiny):
    model, (train_cubes, train_index, counts), (cubes, index) = tiny["model"], tiny["train"], tiny["test"]
    scorer = Scorer({"terms": {"pre": 1, "rec": 1}}).fit(model, train_cubes, train_index, counts)
    assert not scorer.raw and scorer.term_names == ("pre", "rec")
    reference = scoring.object_terms(model, train_cubes, ("pre", "rec"))
    values = scoring.object_terms(model, cubes, ("pre", "rec"))
    expected = 0.0
    for name in ("pre", "rec"):
        q1, median, q3 = np.percentile(reference[name], [25, 50, 75])
        assert scorer.stats_[name] == pytest.approx({"median": median, "iqr": q3 - q1}, rel=1e-12)
        expected = expected + (values[name] - median) / (q3 - q1)
    scores = scorer.object_scores(model, cubes, index)
    np.testing.assert_allclose(scores, np.maximum(expected, 0.0), rtol=1e-12, atol=1e-12)
    assert (scores == 0).any() and (scores > 0).any()
    # the threshold: the configured quantile of the smoothed training frame scores
    _, smoothed = scorer.frame_scores(scorer.object_scores(model, train_cubes, train_index), train_index, counts)
    assert scorer.threshold_ == pytest.approx(np.quantile(np.concatenate(smoothed), 0.99))


def test_state_round_trips_weights_only_with_knn_and_context(tiny):
    model, (train_cubes, train_index, counts), (cubes, index) = tiny["model"], tiny["train"], tiny["test"]
    config = {"normalize": True, "terms": {"pre": 1.0, "knn": 0.5, "order": 0.25}, "knn_k": 3,
              "context": {"enabled": True, "k": 3, "weight": 0.5}}
    scorer = Scorer(config).fit(model, train_cubes, train_index, counts)
    assert scorer.density_ is not None and scorer.context_ is not None and scorer.threshold_ is not None
    before = scorer.object_scores(model, cubes, index)
    buffer = io.BytesIO()
    torch.save(scorer.state_dict(), buffer)
    buffer.seek(0)
    loaded = Scorer.from_state(torch.load(buffer, weights_only=True))
    assert loaded.stats_ == scorer.stats_ and loaded.threshold_ == scorer.threshold_
    assert loaded.config == scorer.config
    np.testing.assert_array_equal(loaded.object_scores(model, cubes, index), before)
    assert len(loaded.density_.codes_) == len(train_cubes)  # bounded: at most 20000 codes are kept


def test_context_adds_to_the_normalised_error(tiny):
    model, (train_cubes, train_index, counts), (cubes, index) = tiny["model"], tiny["train"], tiny["test"]
    scorer = Scorer({"context": {"enabled": True, "k": 3, "weight": 2.0}}).fit(model, train_cubes, train_index,
                                                                               counts, threshold=False)
    stats = scorer.stats_["pre"]
    errors = scoring.object_errors(model, cubes)
    expected = np.maximum(errors - stats["median"], 0) / stats["iqr"] + 2.0 * scorer.context_scores(cubes, index)
    np.testing.assert_array_equal(scorer.object_scores(model, cubes, index), expected)


def test_unfitted_scorer_says_what_is_missing(tiny):
    model, (cubes, index) = tiny["model"], tiny["test"]
    with pytest.raises(NotFittedError, match="stats:pre missing.*call fit"):
        Scorer({"normalize": True}).object_scores(model, cubes, index)
    with pytest.raises(NotFittedError, match="context missing"):
        Scorer({"context": {"enabled": True}}).object_scores(model, cubes, index)


@pytest.mark.parametrize("terms, message", [
    ({"pre": 1, "speed": 1}, r"unknown term\(s\) speed \(known: pre, rec, order, knn\)"),
    ({"pre": 0}, "every weight is 0"),
    ({"rec": -1}, "weight >= 0"),
    ({"rec": "a lot"}, "expected a number"),
])
def test_bad_terms_are_one_line_config_errors(terms, message):
    with pytest.raises(ConfigError, match=message):
        Scorer({"terms": terms})


def test_streaming_frames_equal_batch_frames():
    rng = np.random.default_rng(3)
    length, window = 41, 7
    groups = [rng.uniform(0.1, 1, rng.integers(0, 3)) for _ in range(length)]
    video = np.concatenate([np.full(len(g), 0) for g in groups]).astype(np.int64)
    frames = np.concatenate([np.full(len(g), i) for i, g in enumerate(groups)]).astype(np.int64)
    raw = scoring.frame_scores(np.concatenate(groups), video, frames, [length])
    smoothed = scoring.smooth(raw, window)[0]
    stream = scoring.StreamingFrames(window)
    out, raws = [], []
    for start in range(0, length, 5):  # groups of 5 frames, as a stream hands them in
        chunk = groups[start:start + 5]
        for offset, value in enumerate(stream.raw(chunk)):
            raws.append(value)
            out += stream.push(start + offset, value)
    out += stream.finish(length)
    np.testing.assert_array_equal(raws, raw[0])
    assert [i for i, _ in out] == list(range(length))
    np.testing.assert_array_equal([s for _, s in out], smoothed)


def test_normalize_by_height_and_count_uses_training_objects_only(tiny):
    from sklearn.isotonic import IsotonicRegression

    model, (train_cubes, train_index, counts), (cubes, index) = tiny["model"], tiny["train"], tiny["test"]
    rng = np.random.default_rng(1)  # objects of many heights
    train_index = {**train_index, "y2": train_index["y1"] + rng.uniform(10, 60, len(train_cubes)).astype(np.float32)}
    index = {**index, "y2": index["y1"] + rng.uniform(10, 60, len(cubes)).astype(np.float32)}
    scorer = Scorer({"engine": "torch", "normalize_by": ["height", "count"]}).fit(model, train_cubes, train_index,
                                                                                  counts)
    assert not scorer.paper_score
    # an object's score: its error in units of the training errors of its height decile
    train_errors, errors = scoring.object_errors(model, train_cubes), scoring.object_errors(model, cubes)
    heights = train_index["y2"] - train_index["y1"]
    edges = np.percentile(heights, np.arange(10, 100, 10))
    train_bins, bins = np.digitize(heights, edges), np.digitize(index["y2"] - index["y1"], edges)
    q1, median, q3 = np.array([np.percentile(train_errors[train_bins == b], [25, 50, 75]) for b in bins]).T
    objects = scorer.object_scores(model, cubes, index)
    np.testing.assert_allclose(objects, (errors - median) / (q3 - q1), rtol=1e-9)
    # a frame's score: its maximum less the training frames' expected maximum at its object count
    train_objects = scorer.object_scores(model, train_cubes, train_index)
    train_max, _ = Scorer().frame_scores(train_objects, train_index, counts)
    train_counts = scoring.frames.object_counts(train_index, counts)
    seen = train_counts > 0
    expected = IsotonicRegression(out_of_bounds="clip").fit(train_counts[seen], np.concatenate(train_max)[seen])
    (raw,), _ = scorer.frame_scores(objects, index, [20])
    (plain,), _ = Scorer().frame_scores(objects, index, [20])
    count = scoring.frames.object_counts(index, [20])
    np.testing.assert_allclose(raw[count > 0], plain[count > 0] - expected.predict(count[count > 0]), rtol=1e-9)
    assert (count == 0).any() and (raw[count == 0] == scorer.empty_).all() and scorer.empty_ < raw[count > 0].min()
    # streaming gives the same frame scores
    groups = [objects[index["frame"] == f] for f in range(20)]
    np.testing.assert_allclose(scorer.streaming_frames().raw(groups), raw, rtol=1e-12)
    # the fitted normalisations travel with the model, weights only
    buffer = io.BytesIO()
    torch.save(scorer.state_dict(), buffer)
    buffer.seek(0)
    loaded = Scorer.from_state(torch.load(buffer, weights_only=True))
    np.testing.assert_array_equal(loaded.object_scores(model, cubes, index), objects)
    np.testing.assert_array_equal(loaded.frame_scores(objects, index, [20])[0][0], raw)
    with pytest.raises(ConfigError, match="normalize_by: unknown size"):
        Scorer({"normalize_by": ["size"]})
    with pytest.raises(ConfigError, match="needs scoring.error: mse"):
        Scorer({"normalize_by": ["count"], "error": "psnr"})


def test_latent_density_is_exact_and_a_refit_forgets_the_old_codes():
    """The kNN term against a brute-force search; fitting again on other codes of the same
    number must not reuse anything kept from the first fit."""
    from seqvad.scoring import LatentDensity

    rng = np.random.default_rng(0)
    first, second, queries = rng.normal(size=(50, 6)), rng.normal(3.0, 2.0, size=(50, 6)), rng.normal(size=(7, 6))
    density = LatentDensity(k=4).fit(first)
    density.score(queries)  # a first query keeps what it can reuse
    density.fit(second)
    standard = (second - second.mean(0)) / (second.std(0) + 1e-6)
    query = (queries - second.mean(0)) / (second.std(0) + 1e-6)
    brute = np.sort(np.linalg.norm(query[:, None] - standard[None], axis=2), axis=1)[:, :4].mean(1)
    np.testing.assert_allclose(density.score(queries), brute, rtol=1e-4, atol=1e-5)
