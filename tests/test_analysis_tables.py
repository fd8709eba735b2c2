"""Routing / baseline / failed tables in the seed papers' formats, and the text writers."""
import numpy as np
import pandas as pd
import pytest

from analysis.markup import display, fmt_ci, to_html, to_markdown, to_text
from analysis.stats import aggregate_seeds
from analysis.tables import (baseline_table, build_tables, failed_table, route_shares,
                             routing_table)
from tests.fake_results import em_paper_points, write_fake_results

EXPERT_MS = {"squeezenet": 2.14, "mobilevit_s": 10.59, "deit_s": 7.56}
# what analysis.families.describe gives for the two families (their manifest entries)
GATER = {"cost_unit": "ms", "lam": "λ (weight on classification)", "tau": "τ (Gumbel temperature)"}
EM = {"cost_unit": "compute", "lam": "λ (weight on exit cost)", "tau": "τ (E-step temperature)"}


def _gater_run():
    """Gater paper Table 2, λ = 0.7 and 1.0 (one seed each), plus the three experts."""
    base = dict(family="experts", threshold=None, split="test", severity="all",
                cost_unit="ms", n=3000, status="ok", trial_id=None, seed=0)
    rows = [dict(point_id=f"e-{k}", method="expert", variant=k, lam=None, tau=None,
                 accuracy=a, cost=EXPERT_MS[k])
            for k, a in (("deit_s", .8672), ("mobilevit_s", .7257), ("squeezenet", .6206))]
    rows += [dict(point_id="g07", method="gater", variant=None, lam=.7, tau=1., accuracy=.8271,
                  cost=5.39),
             dict(point_id="g10", method="gater", variant=None, lam=1., tau=1., accuracy=.8658,
                  cost=8.38)]
    points = pd.DataFrame([{**base, **r} for r in rows])
    routes = pd.DataFrame([
        ("g07", "all", "squeezenet", .549), ("g07", "all", "deit_s", .451),
        ("g10", "all", "mobilevit_s", .014), ("g10", "all", "deit_s", .986)],
        columns=["point_id", "severity", "target", "fraction"])
    return points, routes


def test_routing_table_gater_paper_format():
    points, routes = _gater_run()
    agg = aggregate_seeds(points)
    table = routing_table(agg, route_shares(points, routes), family="experts", severity="all")
    # targets ordered by their expert's latency: SqueezeNet, DeiT-S, MobileViT-S
    assert [c for c in table.columns if c.startswith("share:")] == [
        "share:squeezenet", "share:deit_s", "share:mobilevit_s"]
    shown = display("routing", table, family=GATER)
    assert list(shown.columns) == [GATER["lam"], GATER["tau"], "Acc (%)", "Lat (ms)", "seeds",
                                   "%→squeezenet", "%→deit_s", "%→mobilevit_s"]
    # the same numbers in the exit family say what λ and τ weigh there
    assert list(display("routing", table, family=EM).columns)[:2] == [EM["lam"], EM["tau"]]
    assert list(display("routing", table).columns)[:2] == ["λ", "τ"]      # no family: bare
    assert shown.iloc[0].tolist() == ["0.7", "1", "82.71", "5.39", "1", "54.9", "45.1", "0.0"]
    assert shown.iloc[1].tolist() == ["1", "1", "86.58", "8.38", "1", "0.0", "98.6", "1.4"]


def test_route_shares_average_over_seeds_missing_target_is_zero():
    points, routes = _gater_run()
    extra = points[points["point_id"] == "g07"].assign(point_id="g07b", seed=1)
    points = pd.concat([points, extra], ignore_index=True)
    routes = pd.concat([routes, pd.DataFrame([("g07b", "all", "squeezenet", 1.0)],
                                             columns=routes.columns)], ignore_index=True)
    shares = route_shares(points, routes)
    row = shares.loc[shares.index.get_level_values("setting_id").str.contains("0.7")].iloc[0]
    assert row["squeezenet"] == pytest.approx((.549 + 1.0) / 2)
    assert row["deit_s"] == pytest.approx(.451 / 2)


def _with_val(points: pd.DataFrame, val_accuracy: dict) -> pd.DataFrame:
    """`points` plus a val row per em_router λ (val accuracy given, cost as on test)."""
    em = points[points["method"] == "em_router"]
    val = em.assign(split="val", accuracy=em["lam"].map(val_accuracy),
                    point_id=em["point_id"] + "-val")
    return pd.concat([points, val], ignore_index=True)


def test_baseline_table_em_paper_table1():
    points = _with_val(em_paper_points(), {.5: .90, 1.: .86})
    table = baseline_table(aggregate_seeds(points), family="exits")
    assert table["label"].tolist() == ["exit exit1", "exit exit2", "exit exit3", "exit exit4",
                                       "random", "branchynet thr=0.5",
                                       "em_router (best on val) λ=0.5 τ=1", "oracle"]
    shown = display("baselines", table, family=EM)
    assert shown.columns.tolist() == ["Method", "Acc (%)", "Cost", "seeds"]
    assert shown.iloc[6].tolist() == ["em_router (best on val) λ=0.5 τ=1", "89.84", "0.7500",
                                      "1"]
    # the best on VAL, whatever test says: λ = 1 is worse on test, better on val
    flipped = baseline_table(aggregate_seeds(_with_val(em_paper_points(), {.5: .86, 1.: .90})),
                             family="exits")
    assert "em_router (best on val) λ=1 τ=1" in flipped["label"].tolist()
    # a learned router without val rows has no best: nothing is chosen on test
    no_val = baseline_table(aggregate_seeds(em_paper_points()), family="exits")
    assert not no_val["label"].str.contains("best").any()
    assert shown.iloc[7].tolist() == ["oracle", "96.91", "0.4855", "1"]


def test_failed_table_merges_manifest_and_points():
    points = pd.DataFrame({"trial_id": ["t1", "t1"], "family": "experts", "method": "gater",
                           "lam": .5, "tau": 1., "seed": 2, "status": ["failed", "ok"],
                           "error": ["boom", None]})
    manifest = {"trials": [
        {"trial_id": "t1", "family": "experts", "method": "gater", "lam": .5, "tau": 1.,
         "seed": 2, "status": "failed", "error": "boom"},
        {"trial_id": "t2", "family": "exits", "method": "em_router", "lam": 1., "tau": 1.,
         "seed": 0, "status": "failed", "error": "OOM"},
        {"trial_id": "t3", "status": "ok"}]}
    out = failed_table(points, manifest)
    assert out["trial_id"].tolist() == ["t1", "t2"]
    assert failed_table(points.iloc[1:], {}).empty


def test_build_tables_on_fake_results(tmp_path):
    data_dir = write_fake_results(tmp_path / "run")
    from analysis import load
    tables = build_tables(load(data_dir))
    for key in ("aggregate", "frontier", "lift", "scores", "significance", "failed",
                "baselines/experts", "baselines/exits", "routing/experts/all",
                "routing/exits/severe"):
        assert key in tables and len(tables[key]), key
    assert tables["failed"]["trial_id"].tolist() == ["gater_lam0.5_tau1_s2"]
    # routing shares sum to 1 per configuration
    shares = tables["routing/exits/all"].filter(like="share:").sum(axis=1)
    assert np.allclose(shares, 1.0)
    # only test-split configurations reach the frontier
    assert set(tables["frontier"]["split"]) == {"test"}


def test_fmt_ci_and_writers():
    assert fmt_ci(.8271, .81, .84, digits=2, scale=100) == "82.71 [81.00, 84.00]"
    assert fmt_ci(.8271, np.nan, np.nan, digits=4) == "0.8271"
    frame = pd.DataFrame({"a|b": ["x|y", "<b>"], "n": ["1", "22"]})
    md = to_markdown(frame).splitlines()
    assert md[0] == "| a\\|b | n |" and md[2] == "| x\\|y | 1 |"
    assert to_text(frame).splitlines()[0] == "a|b  n"
    html = to_html(frame)
    assert "&lt;b&gt;" in html and "<b>" not in html
    assert to_text(pd.DataFrame()) == "(none)"
