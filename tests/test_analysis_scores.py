"""Hypervolume, AIQ, APGR, CPT on hand-computed values and the seed papers' numbers."""
import numpy as np
import pytest

from analysis.scores import (aiq, apgr, cpt, hypervolume, normalised_hypervolume, pgr,
                             score_points, scores_table)
from analysis.stats import aggregate_seeds
from tests.fake_results import em_paper_points

EXIT_C, EXIT_A = [.25, .5, .75, 1.0], [.4359, .6635, .8984, .9497]
SINGLE_C, SINGLE_A = [2.14, 7.56, 10.59], [.6206, .8672, .7257]  # Sq, DeiT, MobileViT
GATER_C, GATER_A = [5.39, 8.01, 7.89, 8.33, 8.38], [.8271, .8674, .8672, .8672, .8658]
WEAK, STRONG = (.25, .4359), (1.0, .9497)


def test_hypervolume_single_box_and_empty():
    assert hypervolume(cost=[.5], accuracy=[.8], ref_cost=1.0) == pytest.approx(.4)
    assert hypervolume(cost=[1.5], accuracy=[.8], ref_cost=1.0) == 0.0  # outside the box
    assert hypervolume(cost=[], accuracy=[], ref_cost=1.0) == 0.0


def test_hypervolume_two_points_overlap_counted_once():
    # boxes [.2,1]x[0,.5] and [.6,1]x[0,.9]: .8*.5 + .4*.4 = .56
    assert hypervolume(cost=[.2, .6], accuracy=[.5, .9], ref_cost=1.0) == pytest.approx(.56)
    # a dominated point adds nothing
    assert hypervolume(cost=[.2, .6, .7], accuracy=[.5, .9, .6],
                       ref_cost=1.0) == pytest.approx(.56)


def test_hypervolume_reference_point_bounds_the_area():
    # points (.1, .3), (.2, .5), (.6, .9), all on the front for ref (1, 0)
    c, a = [.2, .6, .1], [.5, .9, .3]
    # ref (1, 0): strips .1 * .3 + .4 * .5 + .4 * .9
    assert hypervolume(cost=c, accuracy=a, ref_cost=1.0) == pytest.approx(.59)
    # ref (1, .4): (.1, .3) lies below the reference accuracy; .4 * (.5 - .4) + .4 * (.9 - .4)
    assert hypervolume(cost=c, accuracy=a, ref_cost=1.0, ref_accuracy=.4) == pytest.approx(.24)
    # ref (.8, .4): the last strip ends at .8: .4 * .1 + .2 * .5
    assert hypervolume(cost=c, accuracy=a, ref_cost=.8, ref_accuracy=.4) == pytest.approx(.14)
    # ref (.5, 0): (.6, .9) costs more than the reference; .1 * .3 + .3 * .5
    assert hypervolume(cost=c, accuracy=a, ref_cost=.5) == pytest.approx(.18)
    # normalised by the box [0, ref_cost] x [ref_accuracy, 1]: .24 / (1 * .6), .14 / (.8 * .6)
    assert normalised_hypervolume(cost=c, accuracy=a, ref_cost=1.0,
                                  ref_accuracy=.4) == pytest.approx(.4)
    assert normalised_hypervolume(cost=c, accuracy=a, ref_cost=.8,
                                  ref_accuracy=.4) == pytest.approx(.14 / .48)


def test_aiq_range_by_hand():
    # hull (.2, .4) -> (.6, .8): H(c) = c + .2 on [.2, .6], .8 above, 0 below .2
    c, a = [.2, .6], [.4, .8]
    assert aiq(cost=c, accuracy=a) == pytest.approx(.6)                        # own range
    # [.4, 1]: .2 * (.6 + .8) / 2 + .4 * .8 = .46 over .6
    assert aiq(cost=c, accuracy=a, lo=.4, hi=1.0) == pytest.approx(.46 / .6)
    # [0, .4]: 0 on [0, .2], then .2 * (.4 + .6) / 2 = .1 over .4
    assert aiq(cost=c, accuracy=a, lo=0.0, hi=.4) == pytest.approx(.25)
    # [.3, .5]: inside the hull, the mean of c + .2 = .6
    assert aiq(cost=c, accuracy=a, lo=.3, hi=.5) == pytest.approx(.6)


def test_hypervolume_em_exits():
    # strips: .25*.4359 + .25*.6635 + .25*.8984 (exit4 sits on the reference cost)
    assert hypervolume(cost=EXIT_C, accuracy=EXIT_A, ref_cost=1.0) == pytest.approx(.49945)
    with_oracle = hypervolume(cost=EXIT_C + [.4855], accuracy=EXIT_A + [.9691], ref_cost=1.0)
    assert with_oracle == pytest.approx(.2355 * .4359 + .5145 * .9691)


def test_hypervolume_gater_paper():
    hv = hypervolume(cost=SINGLE_C, accuracy=SINGLE_A, ref_cost=10.59)
    assert hv == pytest.approx(5.42 * .6206 + 3.03 * .8672)
    assert normalised_hypervolume(cost=SINGLE_C, accuracy=SINGLE_A,
                                  ref_cost=10.59) == pytest.approx(hv / 10.59)
    both = hypervolume(cost=SINGLE_C + GATER_C, accuracy=SINGLE_A + GATER_A, ref_cost=10.59)
    assert both == pytest.approx(3.25 * .6206 + 2.17 * .8271 + .45 * .8672 + 2.58 * .8674)


def test_aiq_em_exits_hull_area():
    # hull exit1 -> exit3 -> exit4: (.5*(.4359+.8984)/2 + .25*(.8984+.9497)/2) / .75
    assert aiq(cost=EXIT_C, accuracy=EXIT_A) == pytest.approx(
        (.5 * (.4359 + .8984) / 2 + .25 * (.8984 + .9497) / 2) / .75)


def test_aiq_ranges():
    c, a = EXIT_C + [.4855], EXIT_A + [.9691]
    assert aiq(cost=c, accuracy=a) == pytest.approx((.4359 + .9691) / 2)  # own range
    assert aiq(cost=c, accuracy=a, lo=.25, hi=1.0) == pytest.approx(
        (.2355 * .7025 + .5145 * .9691) / .75)  # flat beyond the oracle
    assert aiq(cost=[.5], accuracy=[.6], lo=.25, hi=1.0) == pytest.approx(.4)  # 0 below .5
    assert aiq(cost=[.5], accuracy=[.6]) == pytest.approx(.6)  # a single point
    assert np.isnan(aiq(cost=[], accuracy=[]))


def test_pgr_and_apgr_branchynet():
    assert pgr(.8756, weak=WEAK, strong=STRONG) == pytest.approx(.4397 / .5138)
    # zero until .6452, then .8558 up to 1.0, averaged over [.25, 1.0]
    got = apgr(cost=[.6452], accuracy=[.8756], weak=WEAK, strong=STRONG)
    assert got == pytest.approx(.4397 / .5138 * .3548 / .75)


def test_apgr_gater_paper():
    got = apgr(cost=GATER_C, accuracy=GATER_A, weak=(2.14, .6206), strong=(7.56, .8672))
    assert got == pytest.approx((.8271 - .6206) / .2466 * 2.17 / 5.42)


def test_apgr_undefined():
    assert np.isnan(apgr(cost=[1], accuracy=[.5], weak=(1, .5), strong=(1, .5)))


def test_cpt_em_paper():
    c, a = [.6384, .6452, .75, .4855], [.7501, .8756, .8984, .9691]
    assert cpt(cost=c, accuracy=a, weak=WEAK, strong=STRONG, fraction=.5) == .4855  # oracle
    c, a = c[:3], a[:3]
    assert cpt(cost=c, accuracy=a, weak=WEAK, strong=STRONG, fraction=.5) == .6384  # random
    assert cpt(cost=c, accuracy=a, weak=WEAK, strong=STRONG, fraction=.8) == .6452  # branchy
    assert np.isnan(cpt(cost=[.6384], accuracy=[.7501], weak=WEAK, strong=STRONG,
                        fraction=.8))


def test_cpt_gater_lambda_07():
    got = cpt(cost=GATER_C, accuracy=GATER_A, weak=(2.14, .6206), strong=(7.56, .8672),
              fraction=.8)
    assert got == 5.39  # recovers 83.7% of the SqueezeNet -> DeiT gap


def test_score_points_and_scores_table():
    ref = {"weak": WEAK, "strong": STRONG, "ref_cost": 1.0}
    got = score_points(cost=[.6452], accuracy=[.8756], ref=ref)
    assert got["hypervolume"] == pytest.approx(.3548 * .8756)
    table = scores_table(aggregate_seeds(em_paper_points()))
    row = table[table["method"] == "branchynet"].iloc[0]
    assert row["apgr"] == pytest.approx(.4397 / .5138 * .3548 / .75)
    assert row["weak"] == "exit exit1" and row["strong"] == "exit exit4"
    assert set(table["method"]) == {"exit", "random", "branchynet", "em_router", "oracle",
                                    "all deployable"}


def test_scores_table_rows_per_family_severity_and_method():
    """Two families (b has no single model: skipped), two severities, an oracle kept out of
    'all deployable'; n_configs counts each group's configurations."""
    from tests.test_analysis_frontier import _agg
    rows = [(f, m, v, "test", sev, c, a) for f in ("c", "a") for sev in ("severe", "all")
            for m, v, c, a in (("expert", "x", 1.0, .5), ("expert", "y", 3.0, .9 if
                                                              sev == "all" else .6),
                               ("random", "r1", 2.0, .6), ("random", "r2", 2.5, .7),
                               ("oracle", None, 1.5, .99))]
    rows += [("b", "random", "r", "test", "all", 2.0, .8)]
    table = scores_table(_agg(rows))
    assert list(table.columns[:6]) == ["family", "severity", "method", "n_configs", "weak",
                                       "strong"]
    keys = list(dict.fromkeys(zip(table["family"], table["severity"])))
    assert keys == [("a", "all"), ("a", "severe"), ("c", "all"), ("c", "severe")]
    a_all = table[(table["family"] == "a") & (table["severity"] == "all")].set_index("method")
    assert a_all["n_configs"].to_dict() == {"expert": 2, "oracle": 1, "random": 2,
                                            "all deployable": 4}
    assert a_all.loc["all deployable", "hypervolume"] < a_all.loc["oracle", "hypervolume"]
    severe = table[(table["family"] == "a") & (table["severity"] == "severe")]
    assert set(severe["strong"]) == {"expert y"} and set(severe["weak"]) == {"expert x"}
    assert severe.set_index("method").loc["expert", "aiq"] == pytest.approx(0.55)
    # the severe level's own reference: y (3, 0.6) recovers the whole x -> y gap there
    assert severe.set_index("method").loc["expert", "cpt50"] == 3.0
