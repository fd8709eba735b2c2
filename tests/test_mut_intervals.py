"""analysis.intervals, beyond tests/test_analysis_intervals.py: the edges of each interval
method (zero variance, exactly 2 shared samples, a seed with no samples), the decision units,
clipping and the caption's exact wording. Hand-built arrays of a few values."""
import statistics

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.intervals import (COVERS, NONE, SAMPLES, SEEDS, TWO_WAY, caption, crossed_variance,
                                decision_units, half_width, paired_units, seed_intervals,
                                seed_variance)


def test_crossed_variance_one_seed_by_hand():
    # y = 1, 0, 0, 1: mean 1/2, sample variance 1/3, / n = 1/12; n - 1 = 3 df
    var, df = crossed_variance([[1, 0, 0, 1]])
    assert var == pytest.approx(1 / 12) and df == 3.0
    assert np.shape(var) == () and np.shape(df) == ()


def test_crossed_variance_without_any_variation_has_infinite_df():
    # nothing varies: no variance part is estimated, so the t has infinite df (z), width 0
    var, df = crossed_variance(np.full((3, 4), 0.5))
    assert var == 0.0 and df == np.inf
    # seeds agree and one sample differs: B > 0 only, nu = nu_B = (n - 1) = 3 (MS_res = 0)
    var, df = crossed_variance([[1, 0, 0, 0], [1, 0, 0, 0]])
    # MS_samp = 2 * (9/16 + 3 * 1/16) / 3 = 1/2 -> B = 1/2 / 8 = 1/16
    assert var == pytest.approx(1 / 16) and df == pytest.approx(3.0)


def test_crossed_variance_seed_part_only_by_hand():
    # 3 seeds, every sample alike within a seed: y = 0, 1, 2 (+ nothing per sample)
    y = np.repeat(np.array([[0.0], [1.0], [2.0]]), 5, axis=1)
    var, df = crossed_variance(y)
    # A = MS_seed / (S n) = 5 * 2 / 2 / 15 = 1/3 = var([0, 1, 2]) / 3; B = 0; nu = k = 2
    assert var == pytest.approx(1 / 3) and df == pytest.approx(2.0)


def test_crossed_variance_sample_part_floored_at_zero():
    # MS_samp < MS_res: B is floored at 0 (not negative), the seed part alone remains
    y = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    # grand 1/2; seed means all 1/2 -> A = 0; sample means 2/3, 1/3 -> MS_samp = 3 * 2/36 / 1
    # = 1/6; residuals ±1/3, ∓2/3, ±1/3 -> MS_res = (4/9 + 8/9) / 2 = 2/3 > MS_samp -> B = 0
    var, df = crossed_variance(y)
    assert var == 0.0 and df == np.inf


def test_crossed_variance_two_way_by_hand_three_seeds():
    # 3 seeds x 3 samples: y = [[1, 1, 0], [1, 0, 0], [1, 1, 1]]; grand mean 2/3
    # seed means 2/3, 1/3, 1 -> MS_seed = 3 * (0 + 1/9 + 1/9) / 2 = 1/3, A = (1/3) / 9 = 1/27
    # sample means 1, 2/3, 1/3 -> MS_samp = 3 * (1/9 + 0 + 1/9) / 2 = 1/3
    # residuals y - a - b + g: [[0, 1/3, -1/3], [1/3, -1/3, 0], [-1/3, 0, 1/3]]
    # -> MS_res = (6/9) / 4 = 1/6; B = (1/3 - 1/6) / 9 = 1/54; V = 1/27 + 1/54 = 1/18
    # nu_B = (1/6)² / ((1/3)²/2 + (1/6)²/4) = (1/36) / (9/144) = 4/9
    # gamma = (2 + 4)/2 = 3: nu = (3/27 + 1/54)² / ((3/27)²/2 + (1/54)²/(4/9)) = 196/81
    var, df = crossed_variance([[1, 1, 0], [1, 0, 0], [1, 1, 1]])
    assert var == pytest.approx(1 / 18) and df == pytest.approx(196 / 81)


def test_crossed_variance_vectorised_leading_axes():
    # [3, 2, 3]: the hand-worked matrix, 1 - it (the same spread: the same V and df), zeros
    y = np.array([[1, 1, 0], [1, 0, 0]], float)
    ys = np.stack([y, 1 - y, np.zeros_like(y)])
    var, df = crossed_variance(ys)
    assert var.shape == (3,) and df.shape == (3,)
    assert var.tolist() == pytest.approx([1 / 12, 1 / 12, 0.0])
    assert df.tolist() == pytest.approx([49 / 30, 49 / 30, np.inf])
    one = crossed_variance(ys[:, :1])             # one seed each: [3, 1, 3]
    # y = 1, 1, 0: sample variance 1/3, / 3 = 1/9; 2 df
    assert one[1].tolist() == [2.0] * 3 and one[0].tolist() == pytest.approx([1 / 9, 1 / 9, 0])


def test_float32_input_is_computed_in_float64():
    # the coverage simulation passes float32 matrices; sums in float32 would lose ~1e-6 of the
    # variance of values near 1000. Exact references: statistics works in exact fractions.
    v = np.array([1000.0123, 1000.1456, 1000.2789], np.float32)
    exact = [float(x) for x in v]
    var, _ = crossed_variance(v[None, :])                        # one seed: var / n
    assert var == pytest.approx(statistics.variance(exact) / 3, rel=1e-12)
    var, _ = seed_variance(v)
    assert var == pytest.approx(statistics.variance(exact) / 3, rel=1e-12)
    assert half_width(np.float32(0.1), 10) == pytest.approx(
        stats.t.ppf(0.975, 10) * np.sqrt(float(np.float32(0.1))), rel=1e-12)
    acc = np.array([0.123456789, 0.3456789, 0.56789], np.float32)
    got = seed_intervals(acc, v, None)
    half = stats.t.ppf(0.975, 2) * np.sqrt(statistics.variance(exact) / 3)
    assert got["cost_lo"] == pytest.approx(statistics.mean(exact) - half, rel=1e-12)
    acc_exact = [float(x) for x in acc]
    half = stats.t.ppf(0.975, 2) * np.sqrt(statistics.variance(acc_exact) / 3)
    assert got["accuracy_hi"] == pytest.approx(statistics.mean(acc_exact) + half, rel=1e-12)


def test_seed_variance_by_hand_and_shapes():
    var, df = seed_variance([0.80, 0.82, 0.84])
    assert var == pytest.approx(0.0004 / 3) and df == 2.0
    var, df = seed_variance([[1.0, 3.0], [2.0, 2.0]])       # [2 configs, 2 seeds]
    assert var.tolist() == pytest.approx([1.0, 0.0]) and df.tolist() == [1.0, 1.0]


def test_half_width_by_hand():
    assert half_width(0.04, 10) == pytest.approx(stats.t.ppf(0.975, 10) * 0.2)
    assert half_width(0.04, 10, confidence=0.8) == pytest.approx(1.372184 * 0.2, abs=1e-6)
    assert half_width(4.0, np.inf) == pytest.approx(1.959964 * 2, abs=1e-6)
    # var 0 -> 0 whatever the df (even where t is undefined); elementwise
    assert half_width(0.0, 0.0) == 0.0
    assert half_width([0.0, 0.25], [5, 5]).tolist() == pytest.approx(
        [0.0, stats.t.ppf(0.975, 5) * 0.5])


def _decisions():
    """point a: samples 1, 0 at clean (correct 1, 0; cost 2, 4) and sample 1 at severe
    (correct 0, cost 6); point b: sample 0 at clean (correct True, cost 1); rows unsorted."""
    return pd.DataFrame({"point_id": ["a", "a", "b", "a"], "severity": ["clean", "clean",
                                                                         "clean", "severe"],
                         "sample_id": [1, 0, 0, 1], "correct": [True, False, True, False],
                         "cost": [2, 4, 1, 6], "label": 0, "target": "x"})


def test_decision_units_by_hand():
    units = decision_units(_decisions())
    assert set(units) == {("a", "clean"), ("a", "severe"), ("b", "clean"), ("a", "all"),
                          ("b", "all")}
    a = units[("a", "clean")]
    assert a.index.name == "sample_id" and a.index.tolist() == [0, 1]   # sorted by sample
    assert a.columns.tolist() == ["correct", "cost"]
    assert a["correct"].tolist() == [0.0, 1.0] and a["cost"].tolist() == [4.0, 2.0]
    assert a["correct"].dtype == float and a["cost"].dtype == float
    assert units[("a", "severe")]["cost"].tolist() == [6.0]
    # 'all': sample 1's two rows averaged (correct 1, 0 -> .5; cost 2, 6 -> 4)
    whole = units[("a", "all")]
    assert whole.index.name == "sample_id" and whole.index.tolist() == [0, 1]
    assert whole["correct"].tolist() == [0.0, 0.5] and whole["cost"].tolist() == [4.0, 4.0]
    assert units[("b", "all")]["correct"].tolist() == [1.0]


def _unit(ids, correct):
    return pd.DataFrame({"correct": np.asarray(correct, float),
                         "cost": np.asarray(correct, float) * 10},
                        index=pd.Index(ids, name="sample_id"))


def test_paired_units_shared_samples_in_the_first_seeds_order():
    got = paired_units([_unit([3, 1, 2], [1, 0, 1]), _unit([1, 2, 3, 4], [0, 0, 1, 1]),
                        _unit([2, 3, 1], [1, 1, 1])])
    correct, cost = got
    # shared ids 3, 1, 2 (all three seeds have them), in seed 0's order
    assert correct.tolist() == [[1, 0, 1], [1, 0, 0], [1, 1, 1]]
    assert cost.tolist() == [[10, 0, 10], [10, 0, 0], [10, 10, 10]]
    # the third seed lacks sample 1: only 3 and 2 are shared (2 samples: enough)
    correct, _ = paired_units([_unit([3, 1, 2], [1, 0, 1]), _unit([1, 2, 3], [0, 0, 1]),
                               _unit([2, 3], [0, 1])])
    assert correct.tolist() == [[1, 1], [1, 0], [1, 0]]


def test_paired_units_none_when_not_pairable():
    two = _unit([0, 1], [1, 0])
    assert paired_units([]) is None and paired_units(None) is None
    assert paired_units([two, None]) is None
    assert paired_units([two, two.iloc[:0]]) is None               # a seed with no samples
    assert paired_units([two, _unit([1, 2], [1, 1])]) is None      # 1 shared sample
    assert paired_units([_unit([0], [1])]) is None                 # 1 sample
    one = paired_units([two])
    assert one[0].tolist() == [[1.0, 0.0]]
    # bool correctness comes back as numbers (0/1 floats), ready for the variance
    flags = pd.DataFrame({"correct": [True, False], "cost": [1, 2]}, index=[0, 1])
    correct, cost = paired_units([flags, flags])
    assert correct.dtype == np.float64 and cost.dtype == np.float64


def test_seed_intervals_two_way_by_hand():
    # the 3 x 3 matrix above: V = 1/18, nu = 196/81; cost = 10 * correct
    rows = ([1, 1, 0], [1, 0, 0], [1, 1, 1])
    units = [_unit([0, 1, 2], r) for r in rows]
    half = stats.t.ppf(0.975, 196 / 81) * np.sqrt(1 / 18)
    got = seed_intervals([2 / 3, 1 / 3, 1.], [20 / 3, 10 / 3, 10.], units)
    assert (got["ci_method"], got["ci_note"]) == (TWO_WAY, "")
    assert (got["accuracy_lo"], got["accuracy_hi"]) == (0.0, 1.0)      # ± 0.86: clipped
    assert got["cost_lo"] == pytest.approx(20 / 3 - 10 * half)
    assert got["cost_hi"] == pytest.approx(20 / 3 + 10 * half)
    # two seeds are enough for the two-way interval: the 2 x 3 matrix, V = 1/12, nu = 49/30
    two = seed_intervals([2 / 3, 1 / 3], [20 / 3, 10 / 3], units[:2])
    assert two["ci_method"] == TWO_WAY
    assert two["cost_hi"] == pytest.approx(5 + 10 * stats.t.ppf(0.975, 49 / 30) / np.sqrt(12))
    half90 = stats.t.ppf(0.95, 196 / 81) * np.sqrt(1 / 18)
    got = seed_intervals([2 / 3, 1 / 3, 1.], [20 / 3, 10 / 3, 10.], units, confidence=0.9)
    assert got["cost_hi"] == pytest.approx(20 / 3 + 10 * half90)


def test_seed_intervals_clip_only_what_leaves_0_1():
    units = [_unit(range(8), [1, 1, 1, 1, 1, 1, 1, 0])]
    # one seed: 7/8 ± t_7 * sqrt(var / 8), var = 1/8 -> half = 2.3646 * 0.125 = 0.2956
    got = seed_intervals([7 / 8], [8.75], units)
    assert got["ci_method"] == SAMPLES and got["ci_note"] == "seed variation not estimable"
    half = stats.t.ppf(0.975, 7) * 0.125
    assert got["accuracy_lo"] == pytest.approx(7 / 8 - half) and got["accuracy_hi"] == 1.0
    assert got["cost_hi"] == pytest.approx(8.75 + 10 * half)
    units = [_unit(range(8), [0, 0, 0, 0, 0, 0, 0, 1])]
    got = seed_intervals([1 / 8], [1.25], units)
    assert got["accuracy_lo"] == 0.0 and got["accuracy_hi"] == pytest.approx(1 / 8 + half)
    # far from the edges: nothing clipped, the centre is the mean of the given values
    got = seed_intervals([.50, .52, .54], [1., 2., 3.], None)
    half = stats.t.ppf(0.975, 2) * 0.02 / np.sqrt(3)
    assert (got["accuracy_lo"], got["accuracy_hi"]) == pytest.approx((.52 - half, .52 + half))
    assert got["cost_lo"] == pytest.approx(2 - stats.t.ppf(0.975, 2) / np.sqrt(3))
    assert got["ci_note"] == "no per-sample decisions: test-sample variation not included"
    got = seed_intervals([.50, .52, .54], [1., 2., 3.], None, confidence=0.9)
    assert got["cost_hi"] == pytest.approx(2 + stats.t.ppf(0.95, 2) / np.sqrt(3))


def test_seed_intervals_unpaired_and_none_notes():
    got = seed_intervals([.5, .6], [1., 2.], [_unit([0, 1], [1, 0]), _unit([2, 3], [1, 0])])
    assert got["ci_method"] == SEEDS
    assert got["ci_note"] == "seeds' decisions not paired: test-sample variation not included"
    got = seed_intervals([.5], [1.], [None])        # one seed, its decisions missing
    assert (got["ci_method"], got["ci_note"]) == (NONE, "1 seed and no per-sample decisions")
    assert got.keys() == {"accuracy_lo", "accuracy_hi", "cost_lo", "cost_hi", "ci_method",
                          "ci_note"}
    got = seed_intervals([], [], [_unit([0, 1], [1, 0])])
    assert (got["ci_method"], got["ci_note"]) == (NONE, "no successful seed")


def test_caption_exact_wording():
    rows = pd.DataFrame({"ci_method": [SEEDS, TWO_WAY, SEEDS, NONE, NONE, NONE, SAMPLES],
                         "ci_note": ["x", "", "x", "no successful seed",
                                     "1 seed and no per-sample decisions",
                                     "no successful seed", ""]})
    assert caption(rows) == (
        "95% intervals by method (number of configuration × severity points): "
        f"{TWO_WAY} — covers {COVERS[TWO_WAY]}: 1; {SAMPLES} — covers {COVERS[SAMPLES]}: 1; "
        f"{SEEDS} — covers {COVERS[SEEDS]}: 2; no interval drawn (1 seed and no per-sample "
        "decisions: 1; no successful seed: 2).")
    assert caption(rows.iloc[:3], confidence=0.9) == (
        "90% intervals by method (number of configuration × severity points): "
        f"{TWO_WAY} — covers {COVERS[TWO_WAY]}: 1; {SEEDS} — covers {COVERS[SEEDS]}: 2.")
    assert caption(rows.iloc[:0]) == "" and caption(pd.DataFrame({"x": [1]})) == ""
