"""Seed aggregation, McNemar's exact test, paired tests on decisions, Benjamini–Hochberg q.

The intervals themselves (methods, coverage) are tested in tests/test_analysis_intervals.py."""
import numpy as np
import pandas as pd
import pytest

from analysis.stats import (aggregate_seeds, config_label, mcnemar_exact, paired_test,
                            significance_table, summarise_significance, with_qvalues)


def _points(rows):
    base = dict(family="experts", variant=None, lam=None, tau=None, threshold=None,
                split="test", severity="all", cost_unit="ms", n=10, status="ok")
    out = pd.DataFrame([{**base, **r} for r in rows])
    out["point_id"] = [f"p{i}" for i in range(len(out))]
    return out


def test_aggregate_seeds_means_failures_and_rounding():
    pts = _points([
        dict(method="gater", lam=0.7, tau=1.0, seed=0, accuracy=.80, cost=5.0),
        dict(method="gater", lam=0.7000000000001, tau=1.0, seed=1, accuracy=.82, cost=6.0),
        dict(method="gater", lam=0.7, tau=1.0, seed=2, accuracy=.84, cost=7.0),
        dict(method="gater", lam=0.7, tau=1.0, seed=3, accuracy=np.nan, cost=np.nan,
             status="failed"),
        dict(method="expert", variant="deit_s", seed=0, accuracy=.8672, cost=7.56)])
    agg = aggregate_seeds(pts).set_index("label")
    g = agg.loc["gater λ=0.7 τ=1"]
    assert g["accuracy"] == pytest.approx(.82) and g["cost"] == pytest.approx(6.0)
    assert (g["n_seeds"], g["n_failed"], g["seeds"]) == (3, 1, "0,1,2")
    assert g["point_ids"] == ["p0", "p1", "p2"]
    # no decisions: t over the 3 seeds, 0.82 ± t_{2,.975} * 0.02 / sqrt(3) (4.303 * 0.011547)
    assert g["accuracy_lo"] == pytest.approx(.82 - 0.049688, abs=1e-5)
    assert g["accuracy_hi"] == pytest.approx(.82 + 0.049688, abs=1e-5)
    assert g["ci_method"].startswith("t, seeds only") and "test-sample" in g["ci_note"]
    e = agg.loc["expert deit_s"]
    assert e["accuracy"] == .8672 and np.isnan(e["accuracy_lo"]) and e["n_seeds"] == 1
    assert (e["ci_method"], e["ci_note"]) == ("none", "1 seed and no per-sample decisions")


def test_aggregate_seeds_all_failed_kept_with_nan():
    pts = _points([dict(method="gater", lam=.5, tau=1., seed=0, accuracy=np.nan,
                        cost=np.nan, status="failed")])
    row = aggregate_seeds(pts).iloc[0]
    assert np.isnan(row["accuracy"]) and row["n_seeds"] == 0 and row["n_failed"] == 1
    assert np.isnan(row["accuracy_lo"]) and row["ci_note"] == "no successful seed"


def test_aggregate_seeds_separates_severity_split_and_threshold():
    pts = _points([dict(method="branchynet", threshold=t, seed=0, accuracy=.5, cost=.5,
                        split=sp, severity=sev)
                   for t in (.3, .6) for sp in ("val", "test") for sev in ("all", "clean")])
    assert len(aggregate_seeds(pts)) == 8


def test_config_label():
    assert config_label({"method": "gater", "variant": None, "lam": .7, "tau": 1.0,
                         "threshold": np.nan}) == "gater λ=0.7 τ=1"
    assert config_label({"method": "exit", "variant": "exit2", "lam": None, "tau": None,
                         "threshold": None}) == "exit exit2"


def test_mcnemar_exact_hand_values():
    # b = 1 (only A right), c = 9 (only B right): p = 2 * (1 + 10) / 2**10
    a = np.array([1] * 1 + [0] * 9 + [1] * 5, bool)
    b = np.array([0] * 1 + [1] * 9 + [1] * 5, bool)
    got = mcnemar_exact(a_correct=a, b_correct=b)
    assert (got["n"], got["b"], got["c"]) == (15, 1, 9)
    assert got["pvalue"] == pytest.approx(22 / 1024)
    assert mcnemar_exact(a_correct=[0] * 5, b_correct=[1] * 5)["pvalue"] == pytest.approx(2 / 32)
    assert mcnemar_exact(a_correct=[1, 0], b_correct=[1, 0])["pvalue"] == 1.0
    with pytest.raises(ValueError):
        mcnemar_exact(a_correct=[1], b_correct=[1, 0])


def _decisions():
    """Two points on samples 0,1 at clean and severe; sample_id repeats across severities."""
    rows = []
    router = {(0, "clean"): 1, (1, "clean"): 1, (0, "severe"): 0, (1, "severe"): 1}
    ref = {(0, "clean"): 0, (1, "clean"): 1, (0, "severe"): 1, (1, "severe"): 0}
    for (sid, sev), ok in router.items():
        rows.append(dict(point_id="r", sample_id=sid, severity=sev, label=0, target="a",
                         correct=bool(ok), cost=1.0))
    for (sid, sev), ok in reversed(list(ref.items())):  # different row order
        rows.append(dict(point_id="s", sample_id=sid, severity=sev, label=0, target="b",
                         correct=bool(ok), cost=2.0))
    return pd.DataFrame(rows)


def test_paired_test_joins_on_sample_and_severity():
    d = _decisions()
    overall = paired_test(d, point_id="r", reference_id="s")
    # router-only right: (0,clean), (1,severe); ref-only right: (0,severe)
    assert (overall["n"], overall["b"], overall["c"]) == (4, 2, 1)
    assert overall["accuracy"] == .75 and overall["accuracy_ref"] == .5
    clean = paired_test(d, point_id="r", reference_id="s", severity="clean")
    assert (clean["n"], clean["b"], clean["c"]) == (2, 1, 0)
    assert paired_test(d, point_id="r", reference_id="missing")["n"] == 0


def _router_and_single():
    """A single model and a gater setting with its val row (settings are chosen on val)."""
    pts = _points([dict(method="expert", variant="sq", seed=0, accuracy=.5, cost=1.0),
                   dict(method="gater", lam=.7, tau=1., seed=0, accuracy=.75, cost=1.5),
                   dict(method="gater", lam=.7, tau=1., seed=0, accuracy=.7, cost=1.5,
                        split="val")])
    pts["point_id"] = ["s", "r", "r-val"]
    return pts


def test_significance_table_pairs_router_with_best_single():
    pts = _router_and_single()
    sig = significance_table(aggregate_seeds(pts), pts, _decisions())
    assert sig["severity"].tolist() == ["all", "clean", "severe"]
    assert sig["reference"].unique().tolist() == ["expert sq"]
    assert sig.loc[sig["severity"] == "all", "b"].item() == 2
    assert sig.loc[sig["severity"] == "severe", "pvalue"].item() == 1.0
    assert significance_table(aggregate_seeds(pts), pts, _decisions().iloc[:0]).empty
    # the levels in the order given (the manifest's), not as the rows happen to list them
    ordered = significance_table(aggregate_seeds(pts), pts, _decisions(), ["severe", "clean"])
    assert ordered["severity"].tolist() == ["all", "severe", "clean"]


def test_summarise_significance_takes_the_largest_p():
    sig = pd.DataFrame({"family": "exits", "label": "em", "reference": "exit exit4",
                        "severity": "all", "seed": [0, 1], "accuracy": [.8, .9],
                        "accuracy_ref": [.85, .85], "pvalue": [.01, .2]})
    row = summarise_significance(sig).iloc[0]
    assert (row["seeds"], row["p_max"]) == (2, .2) and row["accuracy"] == pytest.approx(.85)
    assert row["q"] == pytest.approx(.2)  # one test in its table: q = p


def test_qvalues_benjamini_hochberg_by_hand():
    # m = 4; sorted p 0.01, 0.03, 0.04, 0.2 -> p * m / rank = 0.04, 0.06, 0.0533, 0.2; then the
    # running minimum from the largest rank down: 0.04, 0.0533, 0.0533, 0.2 (input order below)
    tests = pd.DataFrame({"family": "experts", "severity": "all",
                          "pvalue": [0.01, 0.04, 0.03, 0.2]})
    q = with_qvalues(tests, "pvalue")["qvalue"].tolist()
    assert q == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.2])


def test_qvalues_per_table_family_and_overall_apart():
    # each (family, overall | levels) table is corrected on its own: the same p-values in the
    # other family, or at the severity levels, do not change this table's q
    p = [0.01, 0.04, 0.03, 0.2]
    tests = pd.DataFrame({"family": ["experts"] * 4 + ["exits"] * 2 + ["experts"] * 2,
                          "severity": ["all"] * 6 + ["clean", "severe"],
                          "pvalue": p + [0.01, 0.04] + [0.01, 0.04]})
    q = with_qvalues(tests, "pvalue")["qvalue"].tolist()
    assert q[:4] == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.2])
    assert q[4:6] == pytest.approx([0.02, 0.04]) and q[6:] == pytest.approx([0.02, 0.04])


def test_significance_tables_carry_q_beside_p():
    pts = _router_and_single()
    sig = significance_table(aggregate_seeds(pts), pts, _decisions())
    levels = sig[sig["severity"] != "all"]
    assert levels["qvalue"].tolist() == pytest.approx(
        with_qvalues(levels.drop(columns="qvalue"), "pvalue")["qvalue"].tolist())
    assert (sig["qvalue"] >= sig["pvalue"]).all()
    assert "q" in summarise_significance(sig).columns
