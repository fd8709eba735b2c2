"""analysis.tables, beyond tests/test_analysis_tables.py: route shares, target order, routing and
baseline tables' rows and order, failed trials, and build_tables' keys on a hand-built run of a
few rows (no files, no report)."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.intervals import SEEDS, TWO_WAY
from analysis.stats import aggregate_seeds
from analysis.tables import (STAT_COLUMNS, baseline_table, build_tables, failed_table, families,
                             route_shares, routing_table, target_order)

BASE = dict(family="experts", variant=None, lam=None, tau=None, threshold=None, split="test",
            severity="all", cost_unit="ms", n=10, status="ok", trial_id=None, seed=0,
            accuracy=.5, cost=1.)


def _points(rows):
    return pd.DataFrame([{**BASE, **r} for r in rows])


def _routes(rows):
    return pd.DataFrame(rows, columns=["point_id", "severity", "target", "fraction"])


def test_route_shares_by_hand():
    points = _points([
        dict(point_id="g0", method="gater", lam=.5, tau=1.),
        dict(point_id="g1", method="gater", lam=.5, tau=1., seed=1),
        dict(point_id="g2", method="gater", lam=.5, tau=1., seed=2, status="failed"),
        dict(point_id="g0c", method="gater", lam=.5, tau=1., severity="clean"),
        dict(point_id="e0", family="exits", method="em_router", lam=.5, tau=1.,
             cost_unit="compute")])
    routes = _routes([("g0", "all", "a", .25), ("g0", "all", "b", .75),
                      ("g1", "all", "a", .5), ("g1", "all", "a", .5),   # two rows: summed
                      ("g2", "all", "b", 1.),                           # failed: ignored
                      ("g0c", "clean", "b", 1.),
                      ("g0", "clean", "a", 1.),      # g0 has no 'clean' point row: ignored
                      ("e0", "all", "x1", .4), ("e0", "all", "x2", .6)])
    shares = route_shares(points, routes)
    assert shares.index.names == ["setting_id", "severity", "split"]
    # families in sorted order (exits, experts); within one, setting_id then severity
    assert shares.index.tolist() == [
        ("exits|em_router||0.5|1.0||compute", "all", "test"),
        ("experts|gater||0.5|1.0||ms", "all", "test"),
        ("experts|gater||0.5|1.0||ms", "clean", "test")]
    # seed mean: a = (.25 + 1) / 2, b = (.75 + 0) / 2 (g1 never used b: 0, not NaN)
    assert shares.iloc[1][["a", "b"]].tolist() == pytest.approx([.625, .375])
    assert shares.iloc[2][["a", "b"]].tolist() == pytest.approx([0., 1.])
    assert np.isnan(shares.iloc[0]["a"]) and shares.iloc[0]["x1"] == pytest.approx(.4)
    assert np.isnan(shares.iloc[1]["x2"])                # another family's target: NaN
    assert route_shares(points.iloc[:0], routes).empty


def test_route_shares_keep_split():
    points = _points([dict(point_id="v", method="gater", lam=.5, tau=1., split="val"),
                      dict(point_id="t", method="gater", lam=.5, tau=1.)])
    shares = route_shares(points, _routes([("v", "all", "a", 1.), ("t", "all", "b", 1.)]))
    assert shares.index.get_level_values("split").tolist() == ["test", "val"]
    assert shares["a"].tolist() == [0., 1.]


def _agg_singles():
    return aggregate_seeds(_points([
        dict(point_id="s1", method="expert", variant="big", cost=9., accuracy=.9),
        dict(point_id="s2", method="expert", variant="tiny", cost=1., accuracy=.3),
        dict(point_id="s3", method="expert", variant="mid", cost=4., accuracy=.6),
        # at 'clean' the costs run the other way: not used (the order is the 'all' one)
        dict(point_id="c1", method="expert", variant="big", cost=1., severity="clean"),
        dict(point_id="c2", method="expert", variant="tiny", cost=9., severity="clean"),
        # another family's single model and a val-split one: not used
        dict(point_id="x", family="exits", method="exit", variant="zz", cost=.1),
        dict(point_id="v", method="expert", variant="val_only", cost=.1, split="val")]))


def test_target_order_by_single_model_cost_then_others_sorted():
    agg = _agg_singles()
    got = target_order(agg, ["q", "big", "tiny", "mid", "p", "zz", "val_only"], family="experts")
    assert got == ["tiny", "mid", "big", "p", "q", "val_only", "zz"]
    assert target_order(agg, ["big", "tiny"], family="experts") == ["tiny", "big"]


def test_routing_table_rows_columns_and_shares():
    points = _points([
        dict(point_id="s1", method="expert", variant="big", cost=9., accuracy=.9),
        dict(point_id="s2", method="expert", variant="tiny", cost=1., accuracy=.3),
        dict(point_id="g9", method="gater", lam=.9, tau=1., accuracy=.8, cost=6.),
        dict(point_id="g5", method="gater", lam=.5, tau=2., accuracy=.7, cost=4.),
        dict(point_id="g5b", method="gater", lam=.5, tau=1., accuracy=.6, cost=3.),
        dict(point_id="c5", method="cascade", lam=.5, threshold=.3, accuracy=.6, cost=3.),
        dict(point_id="g5c", method="gater", lam=.5, tau=1., severity="clean"),
        dict(point_id="gv", method="gater", lam=.5, tau=1., split="val"),
        dict(point_id="e0", family="exits", method="em_router", lam=.5, tau=1.),
        # another family's single model named 'big', cheaper than 'tiny': not in this order
        dict(point_id="eb", family="exits", method="exit", variant="big", cost=.5)])
    routes = _routes([("g9", "all", "big", .75), ("g9", "all", "tiny", .25),
                      ("g5", "all", "tiny", 1.), ("g5b", "all", "tiny", 1.),
                      ("c5", "all", "tiny", .5), ("c5", "all", "big", .5),
                      ("gv", "all", "big", 1.), ("e0", "all", "exit1", 1.)])
    agg = aggregate_seeds(points)
    table = routing_table(agg, route_shares(points, routes), family="experts", severity="all")
    # learned rows of this family, severity and the test split, sorted method, lam, tau
    assert table["label"].tolist() == ["cascade λ=0.5 thr=0.3", "gater λ=0.5 τ=1",
                                       "gater λ=0.5 τ=2", "gater λ=0.9 τ=1"]
    assert table.columns.tolist() == (["label", "method", "lam", "tau", "threshold"]
                                      + STAT_COLUMNS + ["setting_id", "share:tiny", "share:big"])
    assert table.index.tolist() == [0, 1, 2, 3]
    assert table["share:tiny"].tolist() == [.5, 1., 1., .25]
    assert table["share:big"].tolist() == [.5, 0., 0., .75]
    assert table["accuracy"].tolist() == pytest.approx([.6, .6, .7, .8])
    # no shares at all: the stats alone
    bare = routing_table(agg, pd.DataFrame(), family="experts", severity="all")
    assert bare.columns.tolist() == (["label", "method", "lam", "tau", "threshold"]
                                     + STAT_COLUMNS + ["setting_id"])
    assert len(bare) == 4
    # a severity without learned rows: empty, without share columns
    none = routing_table(agg, route_shares(points, routes), family="exits", severity="clean")
    assert none.empty and not any(c.startswith("share:") for c in none.columns)


def _with_val(points, val):
    """points plus val rows at 'all' {test point_id: (val accuracy, val cost)}, ids '<id>v';
    status 'failed' where the val accuracy is NaN, else 'ok'."""
    rows = points.set_index("point_id").loc[list(val)].reset_index()
    acc = [a for a, _ in val.values()]
    rows = rows.assign(point_id=rows["point_id"] + "v", split="val", accuracy=acc,
                       cost=[c for _, c in val.values()],
                       status=["failed" if np.isnan(a) else "ok" for a in acc])
    return pd.concat([points, rows], ignore_index=True)


def test_baseline_table_best_learned_and_order():
    points = _points([
        dict(point_id="s1", method="expert", variant="big", cost=9., accuracy=.9),
        dict(point_id="s2", method="expert", variant="tiny", cost=1., accuracy=.3),
        dict(point_id="o", method="oracle", cost=.5, accuracy=.99),
        dict(point_id="m", method="mystery", cost=.1, accuracy=.1),      # unknown: with oracle
        dict(point_id="r", method="random", cost=5., accuracy=.6),
        # gater on test: .8 at cost 6, .75 at cost 4.5, .85 at cost 3 (the best on test)
        dict(point_id="g1", method="gater", lam=.9, tau=1., accuracy=.8, cost=6.),
        dict(point_id="g2", method="gater", lam=.7, tau=1., accuracy=.75, cost=4.5),
        dict(point_id="g3", method="gater", lam=.5, tau=1., accuracy=.85, cost=3.),
        # em_router: every seed failed (NaN accuracy, on val too): no candidate
        dict(point_id="e", method="em_router", lam=.5, tau=1., accuracy=np.nan, cost=np.nan,
             status="failed"),
        dict(point_id="e9", method="em_router", lam=.9, tau=1., accuracy=.75, cost=7.),
        # the most accurate em_router on test, without a val row: never chosen
        dict(point_id="e1", method="em_router", lam=.1, tau=1., accuracy=.95, cost=8.),
        # cascade: a learned method too, listed by METHOD_ORDER before the gater
        dict(point_id="c", method="cascade", lam=.5, threshold=.2, accuracy=.5, cost=2.),
        dict(point_id="cc", method="expert", variant="big", cost=9., severity="clean")])
    # on val: g1 and g2 tie at .8, g2 is cheaper on val (4 < 6): the gater's choice is g2
    # (.75 on test), not g3 (.7 on val, .85 on test)
    points = _with_val(points, {"g1": (.8, 6.), "g2": (.8, 4.), "g3": (.7, 3.),
                                "e": (np.nan, np.nan), "e9": (.7, 7.), "c": (.5, 2.)})
    table = baseline_table(aggregate_seeds(points), family="experts")
    assert table["label"].tolist() == ["expert tiny", "expert big", "random",
                                       "cascade (best on val) λ=0.5 thr=0.2",
                                       "gater (best on val) λ=0.7 τ=1",
                                       "em_router (best on val) λ=0.9 τ=1", "mystery", "oracle"]
    assert table.columns.tolist() == (["label", "method", "variant", "lam", "tau", "threshold"]
                                      + STAT_COLUMNS + ["n_failed"])
    assert table.index.tolist() == list(range(8))
    # test numbers shown (the gater's 4.5, not its val cost 4)
    assert table["cost"].tolist() == [1., 9., 5., 2., 4.5, 7., .1, .5]
    assert table["accuracy"].tolist() == pytest.approx([.3, .9, .6, .5, .75, .75, .1, .99])


def test_baseline_table_shows_no_row_for_a_val_choice_that_failed_on_test():
    # the em_router best on val (.9) has every test seed failed: no '(best on val)' row, and
    # not the runner-up either (choosing it would read the test outcome)
    points = _points([
        dict(point_id="s", method="expert", variant="big", cost=9., accuracy=.9),
        dict(point_id="e", method="em_router", lam=.5, tau=1., accuracy=np.nan, cost=np.nan,
             status="failed"),
        dict(point_id="e9", method="em_router", lam=.9, tau=1., accuracy=.75, cost=7.)])
    points = _with_val(points, {"e": (.9, 7.), "e9": (.7, 7.)})
    table = baseline_table(aggregate_seeds(points), family="experts")
    assert table["label"].tolist() == ["expert big"]


def test_baseline_table_ties_in_cost_by_label():
    points = _points([dict(point_id="b", method="expert", variant="b", cost=1.),
                      dict(point_id="a", method="expert", variant="a", cost=1.)])
    assert baseline_table(aggregate_seeds(points), family="experts")["label"].tolist() == [
        "expert a", "expert b"]


def test_failed_table_by_hand():
    cols = ["trial_id", "family", "method", "lam", "tau", "seed", "error"]
    manifest = {"trials": [
        "not a dict",
        {"trial_id": "t2", "family": "exits", "method": "em_router", "lam": 1., "tau": 1.,
         "seed": 0, "status": "failed", "error": "OOM"},
        {"trial_id": "t3", "family": "exits", "status": "ok", "method": "em_router", "seed": 1},
        {"trial_id": "t1", "family": "experts", "method": "gater", "lam": .5, "tau": 1.,
         "seed": 2, "status": "failed", "error": "boom"}]}
    points = pd.DataFrame({"trial_id": ["t1", "t1", None, "t4"], "family": "experts",
                           "method": ["gater", "gater", "random", "gater"],
                           "lam": [.5, .5, None, .1], "tau": [1., 1., None, 1.],
                           "seed": [2, 2, 0, 5], "status": ["failed", "failed", "failed", "ok"],
                           "error": ["boom (row)", "boom (row)", "x", None],
                           "severity": "all"})
    out = failed_table(points, manifest)
    assert out.columns.tolist() == cols
    # the manifest's failed trials in its order, then the points' others; t1 once
    assert out["trial_id"].tolist()[:2] == ["t2", "t1"] and len(out) == 3
    assert out["method"].tolist() == ["em_router", "gater", "random"]
    assert out["error"].tolist() == ["OOM", "boom", "x"]
    assert out.index.tolist() == [0, 1, 2]
    # no manifest trials: from the points only; a missing trial_id still de-duplicates
    got = failed_table(points.iloc[[0, 2, 2]], {"trials": None})
    assert got["method"].tolist() == ["gater", "random"]
    assert got["trial_id"].tolist()[0] == "t1" and got["error"].tolist() == ["boom (row)", "x"]
    # failures without a trial id are told apart by method (and seed)
    cascade = points.iloc[[2]].assign(method="cascade", error="y")
    got = failed_table(pd.concat([points.iloc[[2]], cascade]), {})
    assert got["method"].tolist() == ["random", "cascade"]
    assert failed_table(points.iloc[3:], {"trials": [{"status": "ok"}]}).empty
    # the same trial and method but another seed is another failure
    two = failed_table(points.iloc[[0]].assign(seed=3), manifest)
    assert two["seed"].tolist() == [0, 2, 3]


def _run():
    """experts: a single model and a 2-seed gater at all / clean / severe with decisions;
    exits: a single exit and a 3-seed EM router at 'all' only, without decisions. The routers
    have val rows at 'all' too (ids '<test id>v', no decisions): what is tested is chosen on
    val."""
    rows, dec = [], []
    correct = {"s": [1, 0, 1, 0], "g0": [1, 1, 0, 0], "g1": [1, 1, 1, 0]}
    for pid, method, seed in (("s", "expert", 0), ("g0", "gater", 0), ("g1", "gater", 1)):
        for sev in ("all", "clean", "severe"):
            rows.append(dict(point_id=pid, method=method, seed=seed, severity=sev,
                             variant="sq" if method == "expert" else None,
                             lam=.5 if method == "gater" else None,
                             tau=1. if method == "gater" else None, cost=1. + seed,
                             accuracy=np.mean(correct[pid])))
        for i, c in enumerate(correct[pid]):
            dec.append(dict(point_id=pid, sample_id=i, severity="clean" if i < 2 else "severe",
                            label=0, target="sq", correct=bool(c), cost=1. + seed))
    rows.append(dict(point_id="x", family="exits", method="exit", variant="exit1", cost=.5,
                     cost_unit="compute", accuracy=.7))
    rows += [dict(point_id=f"e{s}", family="exits", method="em_router", lam=.5, tau=1., seed=s,
                  cost=.5, accuracy=a, cost_unit="compute")
             for s, a in ((0, .80), (1, .82), (2, .84))]
    rows += [dict(r, point_id=r["point_id"] + "v", split="val") for r in rows
             if r.get("lam") is not None and r.get("severity", "all") == "all"]
    routes = _routes([(r["point_id"], r.get("severity", "all"), "sq", 1.) for r in rows])
    manifest = {"families": {"experts": {"lam": "L1", "tau": "T1", "cost_unit": "ms"},
                             "exits": {"lam": "L2", "tau": "T2"}},
                "dataset": {"severities": ["severe", "clean"]},
                "trials": [{"trial_id": "t9", "family": "exits", "method": "em_router",
                            "seed": 9, "status": "failed", "error": "OOM"}]}
    return {"points": _points(rows), "routes": routes, "decisions": pd.DataFrame(dec),
            "manifest": manifest}


def test_families_in_the_manifests_order():
    agg = pd.DataFrame({"family": ["exits", "experts", "zoo", "exits"]})
    assert families(agg, {"families": {"experts": {}, "exits": {}}}) == ["experts", "exits",
                                                                         "zoo"]
    assert families(agg) == ["exits", "experts", "zoo"]


def test_build_tables_keys_and_what_each_holds():
    data = _run()
    tables = build_tables(data, confidence=0.9)
    assert tables["manifest"] is data["manifest"] and tables["points"] is data["points"]
    assert tables["severities"] == ["severe", "clean"]                 # the manifest's order
    assert list(tables["families"]) == ["experts", "exits"]            # the manifest's order
    assert tables["families"]["exits"]["lam"] == "L2"
    assert tables["families"]["exits"]["cost_unit"] == "compute"       # from the rows
    assert {k for k in tables if k.startswith(("routing/", "baselines/"))} == {
        "baselines/experts", "baselines/exits", "routing/experts/all",
        "routing/experts/severe", "routing/experts/clean", "routing/exits/all"}
    assert list(tables["routing/experts/severe"]["share:sq"]) == [1.0]
    agg = tables["aggregate"].query("split == 'test'").set_index(["method", "severity"])
    # decisions used: the gater gets the two-way interval
    assert agg.loc[("gater", "clean"), "ci_method"] == TWO_WAY
    # confidence passed on: the EM router's 3 seeds, .82 ± t_{2,.95} * .02 / sqrt 3
    em = agg.loc[("em_router", "all")]
    assert em["ci_method"] == SEEDS
    assert em["accuracy_hi"] == pytest.approx(.82 + stats.t.ppf(.95, 2) * .02 / np.sqrt(3))
    # significance: 'all' then the levels in the manifest's order
    assert tables["significance"]["severity"].tolist() == ["all", "severe", "clean"] * 2
    assert tables["failed"]["trial_id"].tolist() == ["t9"]
    assert len(tables["frontier"]) and len(tables["scores"]) and "lift" in tables
    assert tables["baselines/exits"]["label"].tolist() == ["exit exit1",
                                                           "em_router (best on val) λ=0.5 τ=1"]


def test_build_tables_default_confidence_is_95():
    data = _run()
    exits = data["points"]["family"] == "exits"      # the exits alone: no decisions (fast)
    data = {**data, "points": data["points"][exits], "decisions": data["decisions"].iloc[:0],
            "routes": data["routes"][data["routes"]["point_id"].isin(data["points"].loc[
                exits, "point_id"])]}
    em = build_tables(data)["aggregate"].set_index(["method", "severity", "split"]).loc[
        ("em_router", "all", "test")]
    assert em["accuracy_hi"] == pytest.approx(.82 + stats.t.ppf(.975, 2) * .02 / np.sqrt(3))
