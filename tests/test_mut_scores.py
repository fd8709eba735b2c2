"""The frontier scores at their edges (analysis/scores.py), by hand: what mutation testing
showed test_analysis_scores.py let through."""
import numpy as np
import pandas as pd
import pytest

from analysis import scores as S


def test_clean_drops_a_point_with_either_value_missing():
    c, a = S._clean([1, np.nan, 3, 4], [0.5, 0.6, np.nan, 0.8])
    assert c.tolist() == [1.0, 4.0] and a.tolist() == [0.5, 0.8] and c.dtype == float


def test_hypervolume_points_on_the_reference_edges_add_nothing():
    """A point AT ref_cost or AT ref_accuracy bounds a zero-width box: excluded or not, the
    area is the other point's alone, (4 - 1) * 0.5 = 1.5; ints are read as numbers."""
    hv = S.hypervolume(cost=[1, 4, 2], accuracy=[0.5, 0.9, 0.0], ref_cost=4, ref_accuracy=0.0)
    assert hv == pytest.approx(1.5)
    # two front points with equal cost never happen (pareto); three front points, shuffled:
    hv = S.hypervolume(cost=[3.0, 1.0, 2.0], accuracy=[0.9, 0.5, 0.7], ref_cost=4.0)
    assert hv == pytest.approx(1 * 0.5 + 1 * 0.7 + 1 * 0.9)


def test_normalised_hypervolume_empty_box_is_nan_and_unit_box_is_identity():
    assert np.isnan(S.normalised_hypervolume(cost=[1], accuracy=[0.5], ref_cost=0.0))
    assert np.isnan(S.normalised_hypervolume(cost=[1], accuracy=[0.5], ref_cost=2.0,
                                             ref_accuracy=1.0))
    assert S.normalised_hypervolume(cost=[0.5], accuracy=[0.5], ref_cost=1.0) == \
        pytest.approx(0.25)


def test_aiq_degenerate_ranges_by_hand():
    """lo = hi: the hull's value there (flat beyond its last point), 0 below its first."""
    hull = dict(cost=[1.0, 3.0], accuracy=[0.4, 0.8])
    assert S.aiq(**hull, lo=2.0, hi=2.0) == pytest.approx(0.6)
    assert S.aiq(**hull, lo=5.0, hi=5.0) == pytest.approx(0.8)
    assert S.aiq(**hull, lo=0.5, hi=0.5) == 0.0
    assert S.aiq(**hull, lo=5.0, hi=4.0) == pytest.approx(0.8)              # hi < lo: at lo


def test_aiq_range_starting_at_or_beyond_the_hull():
    """[3, 5] over a hull ending at 3: flat 0.8 -> 0.8; [1, 3] exactly the hull: mean 0.6;
    [0, 1]: the hull starts at 1, so 0 everywhere."""
    hull = dict(cost=[1.0, 3.0], accuracy=[0.4, 0.8])
    assert S.aiq(**hull, lo=3.0, hi=5.0) == pytest.approx(0.8)
    assert S.aiq(**hull, lo=1.0, hi=3.0) == pytest.approx(0.6)
    assert S.aiq(**hull, lo=0.0, hi=1.0) == 0.0
    three = dict(cost=[1.0, 2.0, 3.0], accuracy=[0.4, 0.7, 0.8])
    assert S.aiq(**three, lo=2.0, hi=3.0) == pytest.approx(0.75)           # a knot at lo
    assert S.aiq(**three, lo=1.0, hi=2.0) == pytest.approx(0.55)           # a knot at hi


def test_pgr_by_hand_and_nan_without_a_gap():
    assert S.pgr([0.5, 0.7], weak=(1, 0.5), strong=(2, 0.9)).tolist() == pytest.approx([0, 0.5])
    out = S.pgr([0.5, 0.7], weak=(1, 0.5), strong=(2, 0.5))
    assert out.shape == (2,) and np.isnan(out).all()
    assert S.pgr([1, 2], weak=(1, 1), strong=(2, 2)).tolist() == [0.0, 1.0]      # gap 1: ints


def test_apgr_undefined_ranges_and_a_point_at_the_range_end():
    pts = dict(cost=[1.0, 2.0, 3.0], accuracy=[0.5, 0.7, 0.9])
    assert np.isnan(S.apgr(**pts, weak=(3.0, 0.5), strong=(1.0, 0.9)))      # hi < lo
    assert np.isnan(S.apgr(**pts, weak=(1.0, 0.5), strong=(3.0, 0.5)))      # no gap
    assert np.isnan(S.apgr(**pts, weak=(2.0, 0.5), strong=(2.0, 0.9)))      # hi = lo
    # over [1, 3]: PGR 0 on [1, 2), 0.5 on [2, 3) -> 0.25; the point at 3 adds no width
    assert S.apgr(**pts, weak=(1.0, 0.5), strong=(3.0, 0.9)) == pytest.approx(0.25)
    # over [1, 2] with a point at exactly 2: PGR 0 on [1, 2) -> 0
    assert S.apgr(**pts, weak=(1.0, 0.5), strong=(2.0, 0.9)) == pytest.approx(0.0)


def test_cpt_threshold_is_inclusive_and_empty_is_nan():
    pts = dict(cost=[1.0, 2.0], accuracy=[0.5, 0.7])
    assert S.cpt(**pts, weak=(1, 0.5), strong=(2, 0.9), fraction=0.5) == 2.0   # PGR exactly .5
    assert np.isnan(S.cpt(**pts, weak=(1, 0.5), strong=(2, 0.9), fraction=0.51))
    assert np.isnan(S.cpt(cost=[], accuracy=[], weak=(1, 0.5), strong=(2, 0.9), fraction=0.1))
    assert np.isnan(S.cpt(**pts, weak=(1, 0.5), strong=(2, 0.5), fraction=0.0))


def test_score_points_uses_the_weak_models_cost_and_ref_cost_as_the_aiq_range():
    """weak (1, .4), strong (3, .8), ref_cost 4; one point (2, .6): AIQ over [1, 4] = hull 0
    on [1, 2), 0.6 on [2, 4] -> 1.2 / 3 = 0.4; PGR of .6 is 0.5 -> CPT50 = 2, CPT80 NaN."""
    ref = {"weak": (1.0, 0.4), "strong": (3.0, 0.8), "ref_cost": 4.0}
    out = S.score_points(cost=[2.0], accuracy=[0.6], ref=ref)
    assert set(out) == {"hypervolume", "aiq", "apgr", "cpt50", "cpt80"}
    assert out["aiq"] == pytest.approx(0.4)
    assert out["cpt50"] == 2.0 and np.isnan(out["cpt80"])
    assert out["hypervolume"] == pytest.approx((4 - 2) * 0.6 / 4)
    out = S.score_points(cost=[2.0], accuracy=[0.8], ref=ref)            # PGR 1: both CPTs at 2
    assert out["cpt50"] == 2.0 and out["cpt80"] == 2.0
