import numpy as np
import pytest

from seqvad import scoring as S
from seqvad.errors import ConfigError


def test_frames_without_objects_score_zero_and_max_aggregation():
    # video 0 has 4 frames, video 1 has 3; objects on (0,1) x2, (0,3), (1,0)
    errors = np.array([0.2, 0.7, 0.1, 0.4])
    per_video = S.frame_scores(errors, video_ids=np.array([0, 0, 0, 1]), frames=np.array([1, 1, 3, 0]),
                               frame_counts=[4, 3])
    np.testing.assert_allclose(per_video[0], [0, 0.7, 0, 0.1])
    np.testing.assert_allclose(per_video[1], [0.4, 0, 0])


def test_no_objects_at_all_gives_zero_scores():
    out = S.frame_scores(np.array([]), np.array([], int), np.array([], int), [3])
    np.testing.assert_array_equal(out[0], np.zeros(3))


def test_median_filter_window_and_edges():
    spike = np.zeros(21)
    spike[10] = 5.0  # a lone spike shorter than half the window vanishes
    assert S.smooth([spike], window=17)[0].max() == 0
    plateau = np.zeros(40)
    plateau[10:25] = 1.0  # 15 frames > 17 // 2: survives, edges kept in place
    out = S.smooth([plateau], window=17)[0]
    assert out[17] == 1.0 and out[5] == 0.0 and out[30] == 0.0
    ramp = np.arange(10, dtype=float)  # at the edges the border value repeats (no zero padding)
    out = S.smooth([ramp], window=5)[0]
    assert out[0] == 0.0 and out[-1] == 9.0 and out[1] == 1.0
    assert S.smooth([ramp], window=1)[0].tolist() == ramp.tolist()
    with pytest.raises(ConfigError, match="odd"):
        S.smooth([ramp], window=4)


def test_micro_and_macro_auc_by_hand():
    labels = [np.array([0, 0, 1, 1]), np.array([0, 1, 1, 0])]
    scores = [np.array([0.1, 0.4, 0.35, 0.8]), np.array([0.2, 0.9, 0.3, 0.1])]
    # video 0: pairs (neg,pos): (.1,.35)+ (.1,.8)+ (.4,.35)- (.4,.8)+ -> 3/4
    # video 1: negatives .2,.1; positives .9,.3 -> all 4 pairs right -> 1
    macro, count = S.macro_auc(labels, scores)
    assert macro == pytest.approx((0.75 + 1.0) / 2) and count == 2
    # joined: negatives .1 .4 .2 .1, positives .35 .8 .9 .3 -> wrong pairs: (.4,.35), (.4,.3) -> 14/16
    assert S.micro_auc(labels, scores) == pytest.approx(14 / 16)


def test_single_class_video_left_out_of_macro_kept_in_micro():
    labels = [np.array([0, 1, 0, 1]), np.array([1, 1, 1])]
    scores = [np.array([0.1, 0.9, 0.2, 0.8]), np.array([0.05, 0.05, 0.05])]
    macro, count = S.macro_auc(labels, scores)
    assert count == 1 and macro == 1.0
    # in micro, the all-abnormal video's low scores fall below the negatives: AUC < 1
    assert S.micro_auc(labels, scores) == pytest.approx(2 / 5 * 1 + 3 / 5 * 0)


def test_equal_error_rate_perfect_and_random():
    y = [np.array([0, 0, 1, 1])]
    assert S.equal_error_rate(y, [np.array([0.0, 0.1, 0.8, 0.9])]) == 0.0
    m = S.evaluate_scores(y, [np.array([0.9, 0.8, 0.1, 0.0])])
    assert m.micro_auc == 0.0 and m.eer == 1.0


def test_negative_errors_psnr_style_empty_frames_lowest():
    out = S.frame_scores(np.array([-30.0, -20.0]), np.array([0, 0]), np.array([0, 2]), [3])
    np.testing.assert_allclose(out[0], [-30.0, -30.0, -20.0])
