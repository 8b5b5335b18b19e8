"""RBDC / TBDC on hand-made examples whose curves are worked out in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from seqvad.errors import DataError
from seqvad.scoring import regions as R


def square_mask(*boxes, shape=(20, 20)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    for x1, y1, x2, y2 in boxes:
        mask[y1:y2, x1:x2] = True
    return mask


def truth_of(*videos) -> R.Truth:
    """``videos``: per video a list of per-frame masks."""
    return R.truth_from_masks((len(masks), masks.__getitem__) for masks in videos)


A, B = (2, 2, 6, 6), (3, 2, 7, 6)  # one object moving one pixel right: one track of 2 regions
FAR = (12, 12, 16, 16)             # a box that overlaps no region


@pytest.fixture
def one_track() -> R.Truth:
    # 3 frames: region A in frame 0, region B in frame 1, nothing in frame 2
    return truth_of([square_mask(A), square_mask(B), square_mask()])


def run(truth, rows, **kwargs):
    """rows: (video, frame, box, score)"""
    video, frame, boxes, scores = zip(*rows) if rows else ((), (), np.zeros((0, 4)), ())
    return R.region_metrics(truth, video, frame, np.array(boxes, float).reshape(-1, 4), scores, **kwargs)


# -- ground truth ---------------------------------------------------------------------------------

def test_mask_regions_are_component_boxes_with_exclusive_ends():
    mask = square_mask((2, 3, 6, 6), (10, 10, 11, 11), (14, 0, 20, 4))
    mask[6, 6] = True  # touches the first square diagonally: 8-connected, so the same region
    # components come in raster order of their first pixel
    assert R.mask_regions(mask, min_area=1).tolist() == [[14, 0, 20, 4], [2, 3, 7, 7], [10, 10, 11, 11]]
    assert R.mask_regions(mask).tolist() == [[14, 0, 20, 4], [2, 3, 7, 7]]  # the 1-pixel speck dropped
    assert R.mask_regions(np.zeros((4, 4), bool)).shape == (0, 4)
    with pytest.raises(DataError, match="2-D"):
        R.mask_regions(np.zeros((2, 4, 4)))


def test_tracks_link_overlapping_regions_one_to_one_and_end_at_gaps():
    frames = [np.array([[0, 0, 4, 4], [10, 0, 14, 4]]),
              np.array([[11, 0, 15, 4], [1, 0, 5, 4], [1, 2, 5, 6]]),  # [1,0,5,4] overlaps best
              np.zeros((0, 4)),                                          # a gap ends both tracks
              np.array([[1, 0, 5, 4]])]
    ids = R.link_tracks(frames, start=5)
    assert [i.tolist() for i in ids] == [[5, 6], [6, 5, 7], [], [8]]


def test_truth_from_masks_numbers_regions_and_tracks_across_videos(one_track):
    truth = truth_of([square_mask(A), square_mask(B), square_mask()], [square_mask(), square_mask(A)])
    assert truth.regions == 3 and truth.tracks == 2 and truth.num_frames == 5
    assert truth.video.tolist() == [0, 0, 1] and truth.frame.tolist() == [0, 1, 1]
    assert truth.track.tolist() == [0, 0, 1]
    assert one_track.boxes.tolist() == [list(A), list(B)]


# -- hand-computed curves -------------------------------------------------------------------------

def test_rbdc_tbdc_on_a_worked_example(one_track):
    rows = [(0, 0, A, 0.9),    # hits A
            (0, 1, FAR, 0.8),  # false positive
            (0, 1, B, 0.5),    # hits B
            (0, 2, A, 0.3)]    # frame 2 has no region: false positive
    # thresholds 0.9 / 0.8 / 0.5 / 0.3 give (fp per frame, RBDR) = (0, 1/2), (1/3, 1/2), (1/3, 1),
    # (2/3, 1), held to (1, 1): area = 1/3 * 1/2 + 2/3 * 1 = 5/6. The track (2 regions, alpha 0.1
    # needs 1) is found at 0.9 with no false positive: TBDC = 1.
    m = run(one_track, rows)
    assert m["rbdc"] == pytest.approx(5 / 6) and m["tbdc"] == pytest.approx(1.0)
    assert (m["regions"], m["tracks"], m["frames"], m["detections"]) == (2, 1, 3, 4)
    # alpha 0.6 needs both regions: the track is found at 0.5, after 1/3 false positives per frame
    assert run(one_track, rows, alpha=0.6)["tbdc"] == pytest.approx(2 / 3)
    assert run(one_track, rows, alpha=0.5)["tbdc"] == pytest.approx(1.0)  # 1 of 2 regions is enough


def test_iou_threshold_beta_decides_a_hit(one_track):
    # box [5,2,9,6] against A = [2,2,6,6]: intersection 1x4, union 28, IoU 1/7 = 0.143
    rows = [(0, 0, (5, 2, 9, 6), 0.9), (0, 1, B, 0.5)]
    assert run(one_track, rows)["rbdc"] == pytest.approx(1.0)  # beta 0.1: both regions at no cost
    # beta 0.2: the first box is a false positive (1/3 per frame) before B is found (RBDR 1/2)
    assert run(one_track, rows, beta=0.2)["rbdc"] == pytest.approx(2 / 3 * 1 / 2)
    # [5.6,2,9.6,6]: intersection 0.4x4 = 1.6, union 30.4, IoU 0.053 < 0.1
    assert run(one_track, [(0, 0, (5.6, 2, 9.6, 6), 0.9), (0, 1, B, 0.5)])["rbdc"] == pytest.approx(2 / 3 * 1 / 2)


def test_all_miss_and_perfect_detectors(one_track):
    misses = [(0, f, FAR, s) for f, s in [(0, 0.9), (1, 0.8), (2, 0.7)]]
    assert run(one_track, misses)["rbdc"] == 0.0 and run(one_track, misses)["tbdc"] == 0.0
    assert run(one_track, [])["rbdc"] == 0.0
    # both regions above every false positive (even 5 of them, 5/3 per frame, further down)
    perfect = [(0, 0, A, 0.95), (0, 1, B, 0.9)] + [(0, f % 3, FAR, 0.1) for f in range(5)]
    m = run(one_track, perfect)
    assert m["rbdc"] == 1.0 and m["tbdc"] == 1.0 and m["max_rbdr"] == 1.0


def test_points_beyond_one_false_positive_per_frame_are_dropped(one_track):
    # 6 false positives (2 per frame) outrank the hits: at 1 fp/frame nothing was found yet
    rows = [(0, f % 3, FAR, 0.9 - 0.01 * f) for f in range(6)] + [(0, 0, A, 0.5), (0, 1, B, 0.4)]
    m = run(one_track, rows)
    assert m["rbdc"] == 0.0 and m["tbdc"] == 0.0 and m["max_rbdr"] == 1.0


def test_ties_move_together_and_a_second_box_on_a_found_region_is_free(one_track):
    # a hit and a false positive at the same score: one step from (0, 0) to (1/3, 1/2), then B at
    # 0.4: area = 1/3 * (0 + 1/2) / 2 + 2/3 * 1 = 3/4; the second box on A (0.8) costs nothing
    rows = [(0, 0, A, 0.7), (0, 2, FAR, 0.7), (0, 0, (2, 2, 6, 7), 0.6), (0, 1, B, 0.4)]
    assert run(one_track, rows)["rbdc"] == pytest.approx(0.75)


def test_regions_match_only_their_own_video_and_frame():
    truth = truth_of([square_mask(A)], [square_mask()])
    # the same box on frame 0 of video 1 (no region there) is a false positive: 1 per 2 frames
    m = run(truth, [(1, 0, A, 0.9), (0, 0, A, 0.5)])
    assert m["rbdc"] == pytest.approx(0.5)


def test_track_rule_counts_a_fraction_of_a_long_track():
    # one track over 20 frames; alpha 0.1 needs 2 of its regions, alpha 0.15 needs 3
    truth = truth_of([square_mask((2 + i % 2, 2, 6 + i % 2, 6)) for i in range(20)])
    assert truth.tracks == 1 and truth.regions == 20
    scores = [0.9, 0.8, 0.6]  # the rest undetected; one false positive at 0.7 in a 20-frame video
    rows = [(0, i, truth.boxes[i], s) for i, s in enumerate(scores)] + [(0, 5, FAR, 0.7)]
    # TBDR reaches 1 at 0.8 (2 regions) before the false positive: TBDC = 1
    assert run(truth, rows)["tbdc"] == pytest.approx(1.0)
    # alpha 0.15: the third region comes at 0.6, after one false positive (1/20 per frame)
    assert run(truth, rows, alpha=0.15)["tbdc"] == pytest.approx(1 - 1 / 20)
    # RBDR: 2/20 up to fp 1/20, then 3/20 to fp 1: 0.1 / 20 + 0.15 * 19 / 20 = 0.1475
    assert run(truth, rows)["rbdc"] == pytest.approx(0.1475)


def test_bad_input_is_one_clear_error(one_track):
    with pytest.raises(DataError, match="expected N, N"):
        R.region_metrics(one_track, [0], [0, 1], np.zeros((1, 4)), [0.5])
    with pytest.raises(DataError, match="finite"):
        R.region_metrics(one_track, [0], [0], np.zeros((1, 4)), [np.nan])
    with pytest.raises(DataError, match="x2 >= x1"):
        R.region_metrics(one_track, [0], [0], np.array([[5, 0, 1, 4]]), [0.5])
    with pytest.raises(DataError, match="beta"):
        run(one_track, [], beta=0)
    with pytest.raises(DataError, match="no ground-truth regions"):
        run(truth_of([square_mask()]), [])


def test_vectorised_on_a_ped2_sized_input():
    # 2010 frames, ~35k boxes: the matching is array work, not a Python loop per box
    import time

    rng = np.random.default_rng(0)
    n_frames, n_regions, n_boxes = 2010, 2400, 35000

    def random_boxes(n):
        corner, size = rng.uniform(0, 300, (n, 2)), rng.uniform(5, 60, (n, 2))
        return np.hstack([corner, corner + size])

    truth = R.Truth(np.zeros(n_regions, np.int64), rng.integers(0, n_frames, n_regions), random_boxes(n_regions),
                    np.arange(n_regions), n_frames)
    started = time.perf_counter()
    m = R.region_metrics(truth, np.zeros(n_boxes), rng.integers(0, n_frames, n_boxes), random_boxes(n_boxes),
                         rng.random(n_boxes))
    assert time.perf_counter() - started < 5.0
    assert 0.0 < m["rbdc"] < 1.0 and m["regions"] == n_regions and m["tracks"] == n_regions


# -- wiring into evaluate ---------------------------------------------------------------------

class FakeStore:
    """What evaluate reads of a cube store: video names, frame counts and the box index."""

    def __init__(self, videos, frame_counts, index):
        self.videos, self.frame_counts, self.index = videos, frame_counts, index


def test_evaluate_wiring_on_the_quick_synthetic_scene(tmp_path):
    from seqvad.config import load_config
    from seqvad.pipeline import load_videos, region_scores, region_truth

    config = load_config("demo_quick")
    _, test, _ = load_videos(config)
    names, counts = [v.name for v in test], [len(v) for v in test]
    truth = region_truth(config, FakeStore(names, counts, {}))
    assert truth is not None and truth.regions > 0 and truth.num_frames == sum(counts)
    # boxes on exactly the abnormal regions score 1, plus lower-scored boxes elsewhere
    far = np.tile([[0.0, 0.0, 1.0, 1.0]], (truth.regions, 1))
    boxes = np.vstack([truth.boxes, far])
    index = {"video": np.concatenate([truth.video, truth.video]), "frame": np.concatenate([truth.frame, truth.frame]),
             **{k: boxes[:, i] for i, k in enumerate(("x1", "y1", "x2", "y2"))}}
    scores = np.concatenate([np.ones(truth.regions), np.zeros(truth.regions)])
    assert region_scores(truth, FakeStore(names, counts, index), scores) == {"rbdc": 1.0, "tbdc": 1.0}
    # scores reversed: every region is found only after one false positive per region
    late = 1 - truth.regions / truth.num_frames
    assert region_scores(truth, FakeStore(names, counts, index), 1 - scores) == {"rbdc": pytest.approx(late),
                                                                                 "tbdc": pytest.approx(late)}
    # no masks to read (a dataset root that is not there, or videos the dataset lacks): no metrics
    missing = {**config, "data": {"dataset": "ped2", "root": str(tmp_path / "absent")}}
    assert region_truth(missing, FakeStore(names, counts, {})) is None
    assert region_truth(config, FakeStore(["not-a-video"], [5], {})) is None
