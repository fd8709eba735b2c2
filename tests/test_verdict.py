"""The verdict (analysis/verdict.py) on a family small enough to work out by hand.

Four test samples, one severity ('clean'; 'all' is then the same samples). Single models:
A costs 1 (correct 1,0,0,1: 50 %), B costs 3 (1,1,1,0: 75 %): the hull is A -> B. The router
at λ = 0.5 costs 2 on val and test; seed 0 gets 1,1,0,1 right, seed 1 all four. At cost 2 the
static mixture is ½A + ½B: per sample 1, ½, ½, ½ (62.5 %), so the lifts per sample are
0, ½, −½, ½ (seed 0) and 0, ½, ½, ½ (seed 1): lift 0.25, accuracy 87.5 % vs 62.5 %.
The router at λ = 0.9 is dominated ON VAL and would win on test: it must not be used.
Cascade (val hypervolume above BranchyNet's: the strongest baseline) at thresholds 0.5 / 0.9
costs 1.5 / 2.5 on test, correct 1,0,1,1 / 1,1,1,1: at cost 2, ½ each: 1, ½, 1, 1 (87.5 %),
lifts 0, ½, −1, 0 and 0, ½, 0, 0: lift 0.
"""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.intervals import SEEDS, TWO_WAY, crossed_variance, half_width
from analysis.stats import seed_means
from analysis.verdict import STATIC, lift_test, mixture, strongest_baseline, verdict_table

SAMPLES = 4
# (method, lam, threshold, split, seed, cost, correct per sample)
RUNS = [
    ("expert", None, None, "test", 0, 1.0, (1, 0, 0, 1)),
    ("expert", None, None, "test", 0, 3.0, (1, 1, 1, 0)),
    ("expert", None, None, "val", 0, 1.0, (1, 0, 0, 1)),
    ("expert", None, None, "val", 0, 3.0, (1, 1, 1, 0)),
    ("gater", 0.5, None, "val", 0, 2.0, (1, 1, 1, 1)),
    ("gater", 0.5, None, "val", 1, 2.0, (1, 1, 1, 0)),
    ("gater", 0.5, None, "test", 0, 2.0, (1, 1, 0, 1)),
    ("gater", 0.5, None, "test", 1, 2.0, (1, 1, 1, 1)),
    ("gater", 0.9, None, "val", 0, 2.5, (1, 0, 0, 0)),
    ("gater", 0.9, None, "test", 0, 2.5, (1, 1, 1, 1)),
    ("cascade", None, 0.5, "val", 0, 1.5, (1, 1, 1, 0)),
    ("cascade", None, 0.9, "val", 0, 2.5, (1, 1, 1, 1)),
    ("cascade", None, 0.5, "test", 0, 1.5, (1, 0, 1, 1)),
    ("cascade", None, 0.9, "test", 0, 2.5, (1, 1, 1, 1)),
    ("branchynet", None, 0.5, "val", 0, 2.0, (1, 0, 0, 0)),
    ("branchynet", None, 0.5, "test", 0, 2.0, (0, 0, 0, 0)),
]


def _frames(runs=RUNS):
    points, decisions = [], []
    for k, (method, lam, thr, split, seed, cost, correct) in enumerate(runs):
        variant = {1.0: "a", 3.0: "b"}[cost] if method == "expert" else None
        pid = f"p{k}"
        for sev in ("all", "clean"):
            points.append({"family": "f", "method": method, "variant": variant, "lam": lam,
                           "tau": 1.0 if lam else None, "threshold": thr, "split": split,
                           "severity": sev, "cost_unit": "ms", "accuracy": np.mean(correct),
                           "cost": cost, "status": "ok", "seed": seed, "point_id": pid})
        if split == "test":
            decisions += [{"point_id": pid, "severity": "clean", "sample_id": i,
                           "correct": bool(c), "cost": cost} for i, c in enumerate(correct)]
    return pd.DataFrame(points), pd.DataFrame(decisions)


def _verdict(runs=RUNS, with_decisions=True):
    points, decisions = _frames(runs)
    return verdict_table(seed_means(points), points, decisions if with_decisions else None,
                         severities=["clean"])


def test_mixture_costs_exactly_the_target():
    assert mixture([1, 3, 5], 2) == [(0, 0.5), (1, 0.5)]
    assert mixture([1, 3, 5], 4.5) == [(1, 0.25), (2, 0.75)]
    assert mixture([1, 3, 5], 0.5) == [(0, 1.0)] and mixture([1, 3, 5], 7) == [(2, 1.0)]
    for at in (1.2, 2.9, 3.0, 4.99):
        mix = mixture([1, 3, 5], at)
        assert sum(w for _, w in mix) == pytest.approx(1)
        assert sum(w * [1, 3, 5][i] for i, w in mix) == pytest.approx(at)


def test_lift_against_static_mixing_worked_by_hand():
    v = _verdict()
    row = v[(v["severity"] == "all") & (v["versus"] == STATIC)].iloc[0]
    assert row["points"] == 1 and row["cost_lo"] == row["cost_hi"] == 2.0  # λ=0.9 not used
    assert row["accuracy"] == pytest.approx(0.875)
    assert row["reference_accuracy"] == pytest.approx(0.625)
    assert row["lift"] == pytest.approx(0.25) and row["n_seeds"] == 2
    d = np.array([[0, .5, -.5, .5], [0, .5, .5, .5]])
    half = half_width(*crossed_variance(d))
    assert (row["lift_lo"], row["lift_hi"]) == pytest.approx((0.25 - half, 0.25 + half))
    assert row["ci_method"] == TWO_WAY and "expert a" in row["reference"]
    same = v[(v["severity"] == "clean") & (v["versus"] == STATIC)].iloc[0]
    assert same["lift"] == pytest.approx(0.25)                # one level: the same samples


def test_lift_against_the_strongest_baseline_worked_by_hand():
    v = _verdict()
    row = v[(v["severity"] == "all") & (v["versus"] != STATIC)].iloc[0]
    assert row["versus"] == "cascade"
    assert row["reference_accuracy"] == pytest.approx(0.875)
    assert row["lift"] == pytest.approx(0.0) and row["pvalue"] == pytest.approx(1.0)
    assert row["verdict"] == "no significant difference"
    assert len(v) == 4                                  # (all, clean) x (static, cascade)


def test_strongest_baseline_is_chosen_on_val():
    points, _ = _frames()
    best, ids = strongest_baseline(seed_means(points), ref_cost=3.0)
    assert best == "cascade" and len(ids) == 2
    flipped = [(m, lam, thr, s, seed, c, (0, 0, 0, 0) if m == "cascade" and s == "val" else x)
               for m, lam, thr, s, seed, c, x in RUNS]
    points, _ = _frames(flipped)
    assert strongest_baseline(seed_means(points), ref_cost=3.0)[0] == "branchynet"


def test_test_numbers_do_not_change_which_points_are_used():
    """λ = 0.9 wins on test (100 %); making it lose on test changes nothing."""
    worse = [(m, lam, thr, s, seed, c, (0, 0, 0, 0) if lam == 0.9 and s == "test" else x)
             for m, lam, thr, s, seed, c, x in RUNS]
    pd.testing.assert_frame_equal(_verdict(), _verdict(worse))


def test_without_decisions_seeds_only():
    v = _verdict(with_decisions=False)
    row = v[(v["severity"] == "all") & (v["versus"] == STATIC)].iloc[0]
    # per seed: 0.75 - 0.625 and 1.0 - 0.625 (the point accuracies)
    assert row["lift"] == pytest.approx(0.25) and row["ci_method"] == SEEDS
    t = stats.t.ppf(0.975, 1) * np.sqrt(np.var([0.125, 0.375], ddof=1) / 2)
    assert (row["lift_lo"], row["lift_hi"]) == pytest.approx((0.25 - t, 0.25 + t))


def test_lift_test_by_hand_and_the_verdict_words():
    out = lift_test([0.1, 0.2, 0.3])
    se = np.sqrt(0.01 / 3)                               # var(ddof=1) / S
    assert out["lift"] == pytest.approx(0.2)
    assert out["lift_hi"] - out["lift"] == pytest.approx(4.302653 * se, rel=1e-6)
    assert out["pvalue"] == pytest.approx(2 * stats.t.sf(0.2 / se, 2))
    assert lift_test([0.0, 0.0])["pvalue"] == 1.0 and lift_test([0.1, 0.1])["pvalue"] == 0.0
    assert np.isnan(lift_test([0.3])["pvalue"])          # one seed, no decisions: no test


def test_q_values_are_benjamini_hochberg_over_the_table():
    v = _verdict()
    tested = v["pvalue"].notna()
    expected = stats.false_discovery_control(v.loc[tested, "pvalue"].to_numpy())
    np.testing.assert_allclose(v.loc[tested, "qvalue"], expected)
    better = v[(v["qvalue"] <= 0.05) & (v["lift"] > 0)]
    assert (better["verdict"] == "router better").all()


def test_verdict_words_follow_q_and_the_sign_of_the_lift():
    from analysis.verdict import COLUMNS, _with_verdict
    frame = pd.DataFrame({c: [None] * 4 for c in COLUMNS if c not in ("qvalue", "verdict")})
    frame["pvalue"] = [0.001, 0.001, 0.5, np.nan]
    frame["lift"] = [0.1, -0.1, 0.1, 0.2]
    out = _with_verdict(frame)
    np.testing.assert_allclose(out["qvalue"][:3], [0.0015, 0.0015, 0.5])
    assert np.isnan(out["qvalue"][3])
    assert list(out["verdict"][:3]) == ["router better", "reference better",
                                        "no significant difference"]
    assert out["verdict"][3].startswith("no test")


def test_the_summary_and_the_report_show_it_in_percent():
    from analysis.markup import display
    from analysis.summary import verdict_text
    v = _verdict()
    text = "\n".join(verdict_text(v))
    row = next(line for line in text.splitlines() if "overall" in line)
    assert row.split()[:4] == ["gater", "overall", "87.50", "+25.00"]   # acc %, lift in points
    assert "cascade +0.00 [" in row                    # the tie with the baseline
    shown = display("verdict", v)
    first = shown.iloc[0]
    assert (first["Severity"], first["Router acc (%)"], first["Ref acc (%)"]) == (
        "overall", "87.50", "62.50")
    assert first["at cost"] == "2.00 ms" and first["Lift (pp) [95% CI]"].startswith("+25.00 [")


def test_no_negative_zero_anywhere():
    from analysis.markup import fmt_num
    from analysis.summary import _signed
    assert _signed(-0.00001) == "+0.00" and _signed(-0.0483) == "-4.83"
    assert fmt_num(-0.00001, 2, scale=100.0) == "0.00" and fmt_num(-0.5, 2) == "-0.50"
    assert fmt_num(-10.0, 1) == "-10.0"


# --- edges and contracts (each assertion pins a rule a mutant of analysis/verdict.py breaks) --

def test_mixture_at_a_setting_is_that_setting_alone():
    assert mixture([1, 3, 5], 1) == [(0, 1.0)] and mixture([1, 3, 5], 5) == [(2, 1.0)]
    assert mixture([1, 3, 5], 3) == [(1, 1.0), (2, 0.0)]     # costs[j-1] <= at < costs[j]


def test_lift_test_without_an_interval_keeps_every_key():
    assert lift_test([0.3]) == pytest.approx({
        "lift": 0.3, "lift_lo": np.nan, "lift_hi": np.nan, "pvalue": np.nan,
        "ci_method": "none"}, nan_ok=True)
    assert np.isnan(lift_test([])["lift"])
    wide, narrow = lift_test([0.1, 0.2, 0.3]), lift_test([0.1, 0.2, 0.3], confidence=0.9)
    assert narrow["lift_hi"] - 0.2 == pytest.approx(
        stats.t.ppf(0.95, 2) * np.sqrt(0.01 / 3)) and narrow["lift_hi"] < wide["lift_hi"]


def test_seed_pairing_and_names():
    from analysis.verdict import _seed_run
    assert _seed_run({0: "a", 1: "b"}, 1) == "b" and _seed_run({1: "b", 2: "c"}, 0) == "b"
    v = _verdict()
    assert list(v.columns) == COLUMNS_ORDER
    assert set(v["family"]) == {"f"} and set(v["router"]) == {"gater"}
    assert set(v["cost_unit"]) == {"ms"}
    assert v.loc[v["versus"] == STATIC, "reference"].iloc[0] == "hull of expert a, expert b"
    assert v.loc[v["versus"] == "cascade", "reference"].iloc[0] == \
        "cascade, 2 thresholds of its val frontier"
    narrow = _verdict_conf(0.9)
    assert (narrow["lift_hi"] - narrow["lift"] < v["lift_hi"] - v["lift"]).all()


COLUMNS_ORDER = ["family", "router", "severity", "versus", "reference", "points", "cost_unit",
                 "cost_lo", "cost_hi", "accuracy", "reference_accuracy", "lift", "lift_lo",
                 "lift_hi", "pvalue", "qvalue", "n_seeds", "ci_method", "verdict"]


def _verdict_conf(confidence):
    points, decisions = _frames()
    return verdict_table(seed_means(points), points, decisions, severities=["clean"],
                         confidence=confidence)


def test_each_seed_meets_the_reference_run_of_its_own_seed():
    """B gets a seed-1 run that is right on sample 3 (1,1,1,1): seed 1 of the router is
    compared with it, seed 0 with B's seed 0: lifts 0,½,−½,½ and 0,½,½,0 -> 0.1875."""
    runs = RUNS + [("expert", None, None, "test", 1, 3.0, (1, 1, 1, 1))]
    v = _verdict(runs)
    row = v[(v["severity"] == "all") & (v["versus"] == STATIC)].iloc[0]
    assert row["lift"] == pytest.approx(0.1875)


def test_two_points_two_families_and_a_variant():
    """Family g is f again under another name, with a second router point (λ = 0.7, val
    cost 2.5, val 100 %: on the val frontier) and a 'weighted' variant of λ = 0.5."""
    extra = [("gater", 0.7, None, "val", 0, 2.5, (1, 1, 1, 1)),
             ("gater", 0.7, None, "val", 1, 2.5, (1, 1, 1, 1)),
             ("gater", 0.7, None, "test", 0, 2.5, (1, 1, 1, 1)),
             ("gater", 0.7, None, "test", 1, 2.5, (0, 1, 1, 1))]
    points, decisions = _frames(RUNS + extra)
    other = points.assign(family="g", point_id="g" + points["point_id"])
    weighted = points[points["method"] == "gater"].assign(variant="weighted",
                                                          point_id=lambda f: "w" + f["point_id"])
    decisions = pd.concat([decisions, decisions.assign(point_id="g" + decisions["point_id"]),
                           decisions.assign(point_id="w" + decisions["point_id"])])
    points = pd.concat([points, other, weighted], ignore_index=True)
    v = verdict_table(seed_means(points), points, decisions, severities=["clean"],
                      families=["g", "f"])
    assert list(dict.fromkeys(v["family"])) == ["g", "f"]
    assert list(dict.fromkeys(v.loc[v["family"] == "f", "router"])) == [
        "gater", "gater weighted"]
    row = v[(v["family"] == "f") & (v["router"] == "gater") & (v["severity"] == "all")
            & (v["versus"] == STATIC)].iloc[0]
    # λ=0.7 at cost 2.5: ¼A + ¾B = 1, ¾, ¾, ¼ (68.75 %); lifts 0,¼,¼,¾ and −1,¼,¼,¾;
    # averaged with λ=0.5's per sample and seed: 0,⅜,−⅛,⅝ and −½,⅜,⅜,⅝: 0.21875
    assert row["points"] == 2 and (row["cost_lo"], row["cost_hi"]) == (2.0, 2.5)
    assert row["lift"] == pytest.approx(0.21875)


def test_a_router_without_per_sample_decisions_gets_no_test():
    points, decisions = _frames()
    gater = set(points.loc[points["method"] == "gater", "point_id"])
    v = verdict_table(seed_means(points), points,
                      decisions[~decisions["point_id"].isin(gater)], severities=["clean"])
    assert v["n_seeds"].eq(0).all() and v["lift"].isna().all()
    assert v["verdict"].str.startswith("no test").all()
    none = verdict_table(seed_means(points[points["method"] != "gater"]),
                         points[points["method"] != "gater"], decisions)
    assert none.empty and list(none.columns) == COLUMNS_ORDER


def test_significance_boundary_and_a_zero_lift():
    from analysis.verdict import COLUMNS, _with_verdict
    frame = pd.DataFrame({c: [None] * 3 for c in COLUMNS if c not in ("qvalue", "verdict")})
    frame["pvalue"], frame["lift"] = [0.05, 0.05, 0.05], [0.1, 0.0, -0.1]
    out = _with_verdict(frame)                                # q = 0.05: still significant
    assert list(out["verdict"]) == ["router better", "no significant difference",
                                    "reference better"]
    from analysis.m_step import _pts
    assert _pts(-0.0001) == "+0.0 pts" and _pts(-0.002) == "-0.2 pts"


def test_frontier_points_without_a_common_seed_are_paired_by_rank():
    """An adaptive search ran λ = 0.7 on seed 2 only (val cost 2.5, val 100 %: on the val
    frontier beside λ = 0.5's seeds 0 and 1): no seed is common, so each point's first seed
    stands for one pseudo-seed (n_seeds 1, the samples-only interval), not NaN. λ = 0.5 seed 0
    lifts 0,½,−½,½ (module doc); λ = 0.7 at cost 2.5 meets ¼A + ¾B = 1,¾,¾,¼ and is all right:
    0,¼,¼,¾; per sample the mean of the two: 0, ⅜, −⅛, ⅝ -> 0.21875."""
    runs = [r for r in RUNS if r[1] != 0.9] + [
        ("gater", 0.7, None, "val", 2, 2.5, (1, 1, 1, 1)),
        ("gater", 0.7, None, "test", 2, 2.5, (1, 1, 1, 1))]
    v = _verdict(runs)
    row = v[(v["severity"] == "all") & (v["versus"] == STATIC)].iloc[0]
    assert row["points"] == 2 and row["n_seeds"] == 1
    assert row["lift"] == pytest.approx(0.21875)
    from analysis.intervals import SAMPLES as SAMPLES_ONLY
    assert row["ci_method"] == SAMPLES_ONLY
