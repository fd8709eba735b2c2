"""analysis.stats, beyond tests/test_analysis_stats.py: grouping keys, the terminal's seed means,
which interval a configuration gets and why, pairing with the reference model, and row order.
Hand-built frames of a few rows; every value below is worked out by hand."""
import numpy as np
import pandas as pd
import pytest

from analysis import stats as S
from analysis.intervals import SEEDS
from analysis.stats import (aggregate_seeds, config_key, config_label, seed_means, setting_ids,
                            significance_table, summarise_significance)


def _points(rows):
    base = dict(family="experts", variant=None, lam=None, tau=None, threshold=None,
                split="test", severity="all", cost_unit="ms", n=10, status="ok")
    out = pd.DataFrame([{**base, **r} for r in rows])
    if "point_id" not in out:
        out["point_id"] = [f"p{i}" for i in range(len(out))]
    return out


def test_config_key_rounds_floats_to_9_digits_and_none_for_missing():
    pts = _points([dict(method="g", lam=0.7, tau=1.0, seed=0),
                   dict(method="g", lam=0.7 + 3e-10, tau=1.0, seed=1),   # same at 9 digits
                   dict(method="g", lam=0.700000002, tau=1.0, seed=2)])  # differs at 9 digits
    key = config_key(pts)
    assert key.columns.tolist() == S.CONFIG
    assert key["lam"].tolist() == [0.7, 0.7, 0.700000002]
    assert key["variant"].tolist() == [None] * 3 and key["threshold"].tolist() == [None] * 3
    assert key["tau"].tolist() == [1.0] * 3 and key["method"].tolist() == ["g"] * 3
    agg = aggregate_seeds(pts.assign(accuracy=[.5, .7, .9], cost=1.0))
    assert agg["n_seeds"].tolist() == [2, 1]
    assert agg["accuracy"].tolist() == pytest.approx([.6, .9])


def test_config_key_rounds_tau_and_threshold_too():
    pts = _points([dict(method="b", tau=2.0, threshold=0.3, seed=0, accuracy=.5, cost=1.),
                   dict(method="b", tau=2.0 + 1e-12, threshold=0.3 + 1e-12, seed=1,
                        accuracy=.7, cost=3.)])
    agg = aggregate_seeds(pts)
    assert len(agg) == 1 and agg["cost"].item() == pytest.approx(2.0)
    assert agg["tau"].item() == 2.0 and agg["threshold"].item() == 0.3


def test_config_label_skips_nan_variant_and_formats_with_g():
    assert config_label({"method": "exit", "variant": np.nan, "lam": np.nan, "tau": None,
                         "threshold": 0.25}) == "exit thr=0.25"
    assert config_label({"method": "gater", "variant": "v", "lam": 1e-5, "tau": 2,
                         "threshold": None}) == "gater v λ=1e-05 τ=2"
    assert config_label({"method": "oracle"}) == "oracle"  # missing keys: nothing added


def test_setting_ids_by_hand():
    frame = _points([dict(method="gater", lam=0.7, tau=1.0, seed=0, severity="clean"),
                     dict(method="expert", variant="sq", seed=0, split="val")])
    # family|method|variant|lam|tau|threshold|cost_unit (no split, no severity), None -> ''
    assert setting_ids(frame) == ["experts|gater||0.7|1.0||ms", "experts|expert|sq||||ms"]


def test_seed_means_by_hand():
    pts = _points([
        dict(method="gater", lam=0.7, tau=1.0, seed=0, accuracy=.80, cost=5.0),
        dict(method="gater", lam=0.7 + 1e-12, tau=1.0, seed=1, accuracy=.90, cost=7.0),
        dict(method="gater", lam=0.7, tau=1.0, seed=2, accuracy=np.nan, cost=np.nan,
             status="failed"),
        dict(method="expert", variant="deit_s", seed=0, accuracy=.8672, cost=7.56),
        dict(method="expert", variant="sq", seed=0, accuracy=np.nan, cost=np.nan,
             status="failed")])  # no successful seed: no row
    out = seed_means(pts)
    # groups sorted by the CONFIG key: method 'expert' before 'gater'
    assert out["label"].tolist() == ["expert deit_s", "gater λ=0.7 τ=1"]
    assert out["accuracy"].tolist() == pytest.approx([.8672, .85])
    assert out["cost"].tolist() == pytest.approx([7.56, 6.0])
    assert out["n_seeds"].tolist() == [1, 2]
    assert out["setting_id"].tolist() == ["experts|expert|deit_s||||ms",
                                          "experts|gater||0.7|1.0||ms"]
    assert out["variant"].tolist() == ["deit_s", None] and out["threshold"].isna().all()
    assert out["lam"].dtype == float and np.isnan(out["lam"].iloc[0])
    assert out["tau"].tolist()[1] == 1.0 and out["lam"].tolist()[1] == 0.7
    for col in ("tau", "threshold", "accuracy", "cost"):
        assert out[col].dtype == float, col
    assert out["split"].tolist() == ["test"] * 2 and out["severity"].tolist() == ["all"] * 2


def test_aggregate_rows_sorted_by_key_and_first_row_names_the_group():
    pts = _points([dict(method="gater", lam=.5, tau=1., seed=1, accuracy=.6, cost=2.),
                   dict(method="expert", variant="b", seed=0, accuracy=.7, cost=3.),
                   dict(method="expert", variant="a", seed=0, accuracy=.8, cost=1.),
                   dict(method="gater", lam=.5, tau=1., seed=0, accuracy=.4, cost=4.)])
    agg = aggregate_seeds(pts)
    assert agg["label"].tolist() == ["expert a", "expert b", "gater λ=0.5 τ=1"]
    assert agg["accuracy"].tolist() == pytest.approx([.8, .7, .5])
    assert agg["seeds"].tolist() == ["0", "0", "0,1"]      # sorted, not in row order
    assert agg["point_ids"].tolist() == [["p2"], ["p1"], ["p0", "p3"]]
    assert agg["setting_id"].tolist()[0] == "experts|expert|a||||ms"
    assert agg["variant"].tolist() == ["a", "b", None]
    for col in ("lam", "accuracy_lo", "accuracy_hi", "cost", "cost_lo", "cost_hi"):
        assert agg[col].dtype == float, col
    # 1 seed each for the experts: no interval; the gater's 2 seeds: t over seeds
    # acc .4, .6: SD .1414, /sqrt 2 = .1, t_{1,.975} = 12.706 -> [0, 1] after clipping
    # cost 4, 2: 3 ± 12.706 * 1 = [-9.706, 15.706]
    g = agg.iloc[2]
    assert (g["accuracy_lo"], g["accuracy_hi"]) == (0.0, 1.0)
    assert g["cost_lo"] == pytest.approx(3 - 12.7062, abs=1e-3)
    assert g["cost_hi"] == pytest.approx(3 + 12.7062, abs=1e-3)
    assert agg.iloc[0]["n_failed"] == 0


def _decisions(rows):
    return pd.DataFrame([dict(point_id=p, sample_id=i, severity=sev, label=0, target="a",
                              correct=bool(c), cost=1.0 + c)
                         for p, sev, cs in rows for i, c in enumerate(cs)])


def test_aggregate_interval_kind_follows_the_decisions_of_each_seed():
    pts = _points([dict(method="gater", lam=.5, tau=1., seed=0, accuracy=.5, cost=1.5,
                        point_id="a0"),
                   dict(method="gater", lam=.5, tau=1., seed=1, accuracy=.5, cost=1.5,
                        point_id="a1"),
                   dict(method="gater", lam=.9, tau=1., seed=0, accuracy=.5, cost=1.5,
                        point_id="b0"),
                   dict(method="gater", lam=.9, tau=1., seed=1, accuracy=.5, cost=1.5,
                        point_id="b1"),
                   dict(method="expert", variant="x", seed=0, accuracy=.5, cost=1.5,
                        point_id="x")])
    dec = _decisions([("a0", "clean", [1, 0]), ("b0", "clean", [1, 0]), ("b1", "clean", [0, 1]),
                      ("x", "clean", [1, 1])])
    agg = aggregate_seeds(pts, dec).set_index("label")
    # one of a's seeds has decisions, the other none: not paired (not "none recorded")
    a = agg.loc["gater λ=0.5 τ=1"]
    assert a["ci_method"] == SEEDS
    assert a["ci_note"].startswith("seeds' decisions not paired")
    # both of b's seeds: the two-way interval
    assert agg.loc["gater λ=0.9 τ=1", "ci_method"].startswith("t, seeds × test samples")
    # the expert's one seed with decisions: test samples only (y = 1, 1: zero width)
    x = agg.loc["expert x"]
    assert x["ci_method"] == "t, test samples (1 seed)" and x["cost_lo"] == x["cost_hi"] == 1.5
    # a configuration whose seeds have no decisions at all, in a run that has some
    pts2 = pd.concat([pts, _points([dict(method="gater", lam=.1, tau=1., seed=s, accuracy=.5,
                                         cost=1.5, point_id=f"c{s}") for s in (0, 1)])])
    c = aggregate_seeds(pts2, dec).set_index("label").loc["gater λ=0.1 τ=1"]
    assert c["ci_note"].startswith("no per-sample decisions")
    # a run without decisions (None or an empty frame): 'none recorded', not 'not paired'
    for none in (None, dec.iloc[:0]):
        a = aggregate_seeds(pts, none).set_index("label").loc["gater λ=0.5 τ=1"]
        assert a["ci_note"] == "no per-sample decisions: test-sample variation not included"


def test_aggregate_looks_up_decisions_at_the_rows_severity():
    # the seeds' decisions at 'clean' differ from those at 'all' (clean + severe averaged)
    pts = _points([dict(method="gater", lam=.5, tau=1., seed=s, severity=sev, accuracy=.5,
                        cost=1.5, point_id=f"g{s}") for s in (0, 1) for sev in ("clean", "all")])
    dec = _decisions([("g0", "clean", [1, 1, 0]), ("g1", "clean", [1, 0, 0]),
                      ("g0", "severe", [0, 0, 0]), ("g1", "severe", [0, 0, 0])])
    agg = aggregate_seeds(pts, dec).set_index("severity")
    # clean: the hand-worked 2 x 3 matrix of test_analysis_intervals, V = 1/12, nu = 49/30;
    # costs are correct + 1, centre 1.5 (the point values given)
    from scipy import stats
    half = stats.t.ppf(.975, 49 / 30) * np.sqrt(1 / 12)
    assert agg.loc["clean", "cost_hi"] == pytest.approx(1.5 + half)
    # all: units [[.5, .5, 0], [.5, 0, 0]] -> a different (smaller) width
    assert agg.loc["all", "cost_hi"] < agg.loc["clean", "cost_hi"]


def test_aggregate_confidence_is_passed_on():
    pts = _points([dict(method="gater", lam=.5, tau=1., seed=s, accuracy=a, cost=1.)
                   for s, a in ((0, .80), (1, .82), (2, .84))])
    # t_{2,.95} = 2.920 (90 %) vs 4.303 (95 %), times 0.02 / sqrt 3
    row = aggregate_seeds(pts, confidence=0.90).iloc[0]
    assert row["accuracy_hi"] == pytest.approx(.82 + 2.919986 * 0.02 / np.sqrt(3), abs=1e-6)


def test_reference_for_same_seed_else_lowest():
    seed_of = {"r": 2, "a": 3, "b": 1, "c": 2}
    assert S._reference_for(2, ["a", "b", "c"], seed_of) == "c"
    assert S._reference_for(5, ["a", "b", "c"], seed_of) == "b"
    # an unknown seed counts as 0 (lowest); the first of equal seeds wins
    assert S._reference_for(5, ["a", "z", "b"], {"a": 3, "b": 0}) == "z"
    assert S._reference_for(5, ["z", "b"], {"b": 0}) == "z"


def _sig_run():
    """experts: two single models (sq: seeds 0, 1; big: seed 0, less accurate) and a gater
    with seeds 1 and 2; exits: only a router (no single model, no reference). At 'clean' the
    big model is the most accurate single: the reference is chosen at 'all' all the same.
    Every setting has val rows at 'all' (point ids '<test id>v'): what is tested is chosen on
    val. The single model sq is on the val frontier too (cheapest) but never tested."""
    pts = _points([dict(method="expert", variant="sq", seed=0, accuracy=.6, cost=1., point_id="s0"),
                   dict(method="expert", variant="sq", seed=1, accuracy=.6, cost=1., point_id="s1"),
                   dict(method="expert", variant="big", seed=0, accuracy=.2, cost=9.,
                        point_id="b0"),
                   dict(method="expert", variant="big", seed=0, accuracy=.95, cost=9.,
                        point_id="b0", severity="clean"),
                   dict(method="gater", lam=.5, tau=1., seed=1, accuracy=.8, cost=2.,
                        point_id="g1"),
                   dict(method="gater", lam=.5, tau=1., seed=2, accuracy=.8, cost=2.,
                        point_id="g2"),
                   dict(family="exits", method="em_router", lam=.5, tau=1., seed=0,
                        accuracy=.9, cost=1., point_id="e0")])
    val = pts[pts["severity"] == "all"]
    pts = pd.concat([pts, val.assign(split="val", point_id=val["point_id"] + "v")],
                    ignore_index=True)
    dec = _decisions([("s0", "clean", [1, 1, 0, 0, 1]), ("s1", "clean", [0, 0, 0, 0, 1]),
                      ("b0", "clean", [0, 0, 0, 0, 1]),
                      ("g1", "clean", [1, 1, 1, 1, 0]), ("g2", "clean", [1, 1, 1, 1, 1]),
                      ("e0", "clean", [1, 1, 1, 1, 1])])
    return pts, dec


def test_significance_pairs_each_seed_with_the_strong_models_same_seed():
    pts, dec = _sig_run()
    sig = significance_table(aggregate_seeds(pts), pts, dec)
    # only the experts' gater (the single models are excluded; exits have no reference)
    assert set(sig["label"]) == {"gater λ=0.5 τ=1"} and set(sig["family"]) == {"experts"}
    assert set(sig["reference"]) == {"expert sq"}
    assert sig[["point_id", "seed", "severity"]].values.tolist() == [
        ["g1", 1, "all"], ["g1", 1, "clean"], ["g2", 2, "all"], ["g2", 2, "clean"]]
    # g1 vs s1 (same seed): b = 4 (samples 0-3), c = 1 (sample 4); g2 vs s0 (the lowest seed;
    # sq has no seed 2): b = 2 (samples 2, 3), c = 0. Never the 'big' model.
    assert sig["b"].tolist() == [4, 4, 2, 2] and sig["c"].tolist() == [1, 1, 0, 0]
    assert sig["n"].tolist() == [5] * 4
    assert sig["accuracy"].tolist() == pytest.approx([.8, .8, 1., 1.])
    assert sig["accuracy_ref"].tolist() == pytest.approx([.2, .2, .6, .6])
    # McNemar: b=4, c=1 -> 2 * P(X <= 1 | 5, 1/2) = 2 * 6/32 = .375; b=2, c=0 -> 2/4 = .5
    assert sig["pvalue"].tolist() == pytest.approx([.375, .375, .5, .5])


def test_significance_skips_a_seed_without_decisions():
    pts, dec = _sig_run()
    sig = significance_table(aggregate_seeds(pts), pts, dec[dec["point_id"] != "g2"])
    assert sig["point_id"].tolist() == ["g1", "g1"]
    # the reference's decisions missing: nothing to pair, no rows (not an error)
    sig = significance_table(aggregate_seeds(pts), pts, dec[~dec["point_id"].isin(["s0", "s1"])])
    assert sig.empty


def test_significance_keeps_only_the_val_frontier_at_all():
    pts, dec = _sig_run()
    g1 = pts[pts["point_id"] == "g1"]
    # a second gater setting, on the TEST frontier (.9 at cost 3) but dominated on val (.7 at
    # cost 3, the gater has .8 at 2): not tested
    worse = pd.concat([g1.assign(point_id="w0", lam=.9, accuracy=.9, cost=3.),
                       g1.assign(point_id="w0v", lam=.9, accuracy=.7, cost=3., split="val")])
    # a setting on the val frontier (.75 at cost 1.8) reported on test at 'clean' only: no
    # test row at 'all', not tested
    clean = pd.concat([g1.assign(point_id="c2", lam=.1, severity="clean"),
                       g1.assign(point_id="c2v", lam=.1, accuracy=.75, cost=1.8, split="val")])
    # a cheaper gater setting on the val frontier too (.7 at cost 1.5): tested as well, first
    cheap = pd.concat([g1.assign(point_id="k1", lam=.2, accuracy=.7, cost=1.5),
                       g1.assign(point_id="k1v", lam=.2, accuracy=.7, cost=1.5, split="val")])
    pts = pd.concat([pts, worse, clean, cheap], ignore_index=True)
    dec = pd.concat([dec, _decisions([("w0", "clean", [1, 1, 1, 0, 0]),
                                      ("c2", "clean", [1, 1, 1, 0, 0]),
                                      ("k1", "clean", [1, 1, 1, 0, 0])])])
    sig = significance_table(aggregate_seeds(pts), pts, dec)
    assert sig["point_id"].tolist() == ["k1", "k1", "g1", "g1", "g2", "g2"]


def test_summarise_significance_groups_in_order_of_appearance():
    sig = pd.DataFrame({"family": "experts", "label": ["z", "z", "a"], "reference": "r",
                        "severity": "all", "seed": [0, 0, 1], "accuracy": [.8, .6, .5],
                        "accuracy_ref": [.4, .2, .1], "pvalue": [.02, .01, .03]})
    out = summarise_significance(sig)
    assert out["label"].tolist() == ["z", "a"]
    assert out["seeds"].tolist() == [1, 1]                      # distinct seeds, not rows
    assert out["accuracy"].tolist() == pytest.approx([.7, .5])
    assert out["accuracy_ref"].tolist() == pytest.approx([.3, .1])
    assert out["p_max"].tolist() == [.02, .03]
    # BH over the two p_max: sorted .02, .03 -> .02 * 2 / 1 = .04, .03 * 2 / 2 = .03 -> min .03
    assert out["q"].tolist() == pytest.approx([.03, .03])
    assert summarise_significance(sig.iloc[:0]).empty


def test_mcnemar_takes_float_correctness():
    # 0/1 floats (as in the decision units) count like bools: b = 1, c = 2 -> p = 1
    got = S.mcnemar_exact(a_correct=np.array([1., 0., 0., 1.]),
                          b_correct=np.array([0., 1., 1., 1.]))
    assert (got["b"], got["c"], got["pvalue"]) == (1, 2, 1.0)


def test_seed_means_object_columns():
    # accuracy and cost as Python objects (a frame built from records with None): still means
    pts = _points([dict(method="g", lam=.5, tau=1., seed=s, accuracy=a, cost=c)
                   for s, a, c in ((0, .5, 1.), (1, .7, 3.))])
    pts = pts.astype({"accuracy": object, "cost": object})
    out = seed_means(pts)
    assert out["accuracy"].tolist() == pytest.approx([.6]) and out["cost"].tolist() == [2.0]
