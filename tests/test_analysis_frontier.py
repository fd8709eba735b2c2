"""Pareto frontier and static-mixing hull, on hand-made frames and the seed papers' numbers."""
import numpy as np
import pandas as pd
import pytest

from analysis.frontier import (frontier_table, hull_accuracy, lift_table, mixing_lift,
                               pareto_front, pareto_mask, reference_models, static_mixing,
                               upper_hull)
from analysis.stats import aggregate_seeds
from tests.fake_results import em_paper_points

# EM paper (seed 003), Table 1: method, accuracy, cost
EM_TABLE1 = pd.DataFrame({
    "name": ["resnet18", "exit1", "exit2", "exit3", "exit4", "random", "branchynet", "em_best",
             "oracle"],
    "accuracy": [.9497, .4359, .6635, .8984, .9497, .7501, .8756, .8984, .9691],
    "cost": [1.0, .25, .5, .75, 1.0, .6384, .6452, .75, .4855]})
# Gater paper (seed 000), Tables 1-2: experts and the gater over λ (accuracy, latency ms)
GATER_TABLE2 = pd.DataFrame({
    "name": ["deit_s", "mobilevit_s", "squeezenet", "g0.95", "g0.80", "g0.90", "g1.00", "g0.70"],
    "accuracy": [.8672, .7257, .6206, .8674, .8672, .8672, .8658, .8271],
    "cost": [7.56, 10.59, 2.14, 8.01, 7.89, 8.33, 8.38, 5.39]})


def _front(frame):
    return set(frame.loc[pareto_mask(cost=frame["cost"], accuracy=frame["accuracy"]), "name"])


def test_pareto_em_table1_oracle_dominates_everything_but_exit1():
    assert _front(EM_TABLE1) == {"exit1", "oracle"}


def test_pareto_em_table1_without_oracle():
    front = _front(EM_TABLE1[EM_TABLE1["name"] != "oracle"])
    # exact duplicates (exit3 = EM best, exit4 = ResNet-18) do not dominate each other
    assert front == {"exit1", "exit2", "random", "branchynet", "exit3", "em_best", "exit4",
                     "resnet18"}


def test_pareto_gater_table2():
    # DeiT (86.72 @ 7.56) dominates λ=0.8/0.9/1.0 and MobileViT; λ=0.95 is 0.02 pt better
    assert _front(GATER_TABLE2) == {"squeezenet", "g0.70", "deit_s", "g0.95"}


def test_pareto_mask_nan_and_ties():
    mask = pareto_mask(cost=[1, 1, 2, np.nan, 3], accuracy=[.5, .5, .4, .9, .6])
    assert mask.tolist() == [True, True, False, False, True]


def test_pareto_mask_dominance_at_equal_cost_or_accuracy():
    # (1, .4) has the cost of (1, .5) and less accuracy; (3, .6) the accuracy of (2, .6) at a
    # higher cost: both dominated (<= in both, < in one). Exact duplicates (4, .9) stay.
    mask = pareto_mask(cost=[1, 1, 2, 3, 4, 4], accuracy=[.5, .4, .6, .6, .9, .9])
    assert mask.tolist() == [True, False, True, False, True, True]


def test_pareto_front_sorted_and_keeps_columns():
    out = pareto_front(GATER_TABLE2)
    assert out["name"].tolist() == ["squeezenet", "g0.70", "deit_s", "g0.95"]
    assert list(out.columns) == list(GATER_TABLE2.columns)
    assert pareto_front(GATER_TABLE2.iloc[:0]).empty


def test_upper_hull_em_exits_skips_exit2_below_chord():
    hc, ha = upper_hull(cost=[.25, .5, .75, 1.0], accuracy=[.4359, .6635, .8984, .9497])
    assert hc.tolist() == [.25, .75, 1.0]
    assert ha.tolist() == [.4359, .8984, .9497]


def test_upper_hull_nondecreasing_drops_mobilevit():
    sub = GATER_TABLE2.iloc[:3]
    assert upper_hull(cost=sub["cost"], accuracy=sub["accuracy"])[0].tolist() == [2.14, 7.56]
    full = upper_hull(cost=sub["cost"], accuracy=sub["accuracy"], nondecreasing=False)
    assert full[0].tolist() == [2.14, 7.56, 10.59]


def test_upper_hull_edge_cases():
    assert upper_hull(cost=[], accuracy=[])[0].size == 0
    hc, ha = upper_hull(cost=[1, 1, 2], accuracy=[.3, .5, .4])  # same cost: best kept
    assert hc.tolist() == [1] and ha.tolist() == [.5]


def test_hull_accuracy_interpolates_and_is_flat_outside():
    hc, ha = np.array([.25, .75, 1.0]), np.array([.4359, .8984, .9497])
    got = hull_accuracy(hc, ha, [.6452, .6384, .4855, .75, .1, 2.0])
    assert got == pytest.approx([.80146, .79517, .6537375, .8984, .4359, .9497])
    assert np.isnan(hull_accuracy([], [], [1.0])).all()


def test_mixing_lift_em_table1():
    singles = EM_TABLE1[EM_TABLE1["name"].str.startswith("exit")]
    routers = EM_TABLE1[EM_TABLE1["name"].isin(["random", "branchynet", "oracle", "em_best"])]
    out = mixing_lift(routers, singles).set_index("name")["lift"]
    assert out["branchynet"] == pytest.approx(.07414)
    assert out["random"] == pytest.approx(-.04507)  # random routing is below static mixing
    assert out["oracle"] == pytest.approx(.3153625)
    assert out["em_best"] == pytest.approx(0.0)


def test_mixing_lift_gater_lambda_07():
    singles = GATER_TABLE2.iloc[:3]
    out = mixing_lift(GATER_TABLE2.iloc[3:], singles).set_index("name")
    assert out.loc["g0.70", "static_accuracy"] == pytest.approx(.768469)
    assert out.loc["g0.70", "lift"] == pytest.approx(.058631)
    assert out.loc["g0.95", "lift"] == pytest.approx(.0002)  # beyond DeiT: flat hull


def test_static_mixing_names_vertices():
    singles = GATER_TABLE2.iloc[:3].rename(columns={"name": "variant"})
    assert static_mixing(singles)["variant"].tolist() == ["squeezenet", "deit_s"]


def test_frontier_table_excludes_oracle_and_carries_intervals():
    agg = aggregate_seeds(em_paper_points())
    front = frontier_table(agg)
    assert "oracle" not in set(front["method"])
    # EM's 0.865 @ 0.69 is dominated by BranchyNet's 0.8756 @ 0.6452
    assert front["label"].tolist() == ["exit exit1", "exit exit2", "random",
                                       "branchynet thr=0.5", "em_router λ=0.5 τ=1",
                                       "exit exit3", "exit exit4"]
    assert {"accuracy_lo", "accuracy_hi", "cost_lo", "cost_hi"} <= set(front.columns)


def test_reference_models_and_lift_table():
    agg = aggregate_seeds(em_paper_points())
    ref = reference_models(agg, family="exits", severity="all")
    assert ref["weak"] == (.25, .4359) and ref["strong"] == (1.0, .9497)
    assert ref["ref_cost"] == 1.0
    assert reference_models(agg, family="experts", severity="all") is None
    lift = lift_table(agg).set_index("label")["lift"]
    assert lift["branchynet thr=0.5"] == pytest.approx(.07414)
    assert "exit exit2" not in lift.index


# --- edges and contracts (each pins a rule a mutant of analysis/frontier.py breaks) --------

def test_none_is_missing_like_nan():
    assert pareto_mask(cost=[1.0, None, 2.0], accuracy=[0.5, 0.9, None]).tolist() == [
        True, False, False]
    hc, ha = upper_hull(cost=[1, None, 3, 2, np.nan], accuracy=[.5, .9, .8, np.nan, .99])
    assert hc.tolist() == [1, 3] and ha.tolist() == [.5, .8]   # one coordinate missing: out
    assert hull_accuracy([1.0, 3.0], [.5, .8], [2, None])[0] == pytest.approx(.65)
    assert np.isnan(hull_accuracy([1.0, 3.0], [.5, .8], [2, None])[1])


def test_collinear_points_are_not_hull_vertices():
    hc, ha = upper_hull(cost=[1, 2, 3], accuracy=[.5, .6, .7])
    assert hc.tolist() == [1, 3] and ha.tolist() == [.5, .7]


def test_static_mixing_matches_vertices_on_both_coordinates():
    same_acc = pd.DataFrame({"cost": [2.0, 1.0, 3.0], "accuracy": [.5, .5, .8],
                             "variant": ["x", "y", "z"]})
    out = static_mixing(same_acc)
    assert out.columns.tolist() == ["cost", "accuracy", "variant"]
    assert out["variant"].tolist() == ["y", "z"] and out["cost"].tolist() == [1.0, 3.0]
    same_cost = pd.DataFrame({"cost": [1.0, 1.0, 3.0], "accuracy": [.4, .5, .8],
                              "variant": ["x", "y", "z"]})
    assert static_mixing(same_cost)["variant"].tolist() == ["y", "z"]
    assert static_mixing(same_cost.drop(columns="variant"))["variant"].tolist() == [None, None]


def _agg(rows):
    """rows: (family, method, variant, split, severity, cost, accuracy) -> aggregate_seeds."""
    points = pd.DataFrame([{"family": f, "method": m, "variant": v, "lam": None, "tau": None,
                            "threshold": None, "split": sp, "severity": sev, "cost_unit": "ms",
                            "accuracy": a, "cost": c, "status": "ok", "seed": 0,
                            "point_id": f"p{i}", "n": 10}
                           for i, (f, m, v, sp, sev, c, a) in enumerate(rows)])
    return aggregate_seeds(points)


def test_reference_models_ties_severity_and_where_chosen():
    rows = [("b", "expert", v, sp, sev, c, a + (0.3 if sev == "severe" else 0) * (v == "s"))
            for sp in ("val", "test") for sev in ("all", "severe")
            for v, c, a in (("w1", 1.0, .5), ("w2", 1.0, .6), ("s", 4.0, .7), ("t", 3.0, .9),
                            ("u", 5.0, .9))]
    agg = _agg(rows)
    ref = reference_models(agg, family="b", severity="all")
    assert ref["weak_label"] == "expert w2" and ref["strong_label"] == "expert t"
    assert ref["chosen_on"] == "val" and ref["ref_cost"] == 5.0
    severe = reference_models(agg, family="b", severity="severe")
    assert severe["strong_label"] == "expert s" and severe["strong"] == (4.0, 1.0)
    test_only = reference_models(agg[agg["split"] == "test"], family="b", severity="all")
    assert test_only["chosen_on"] == "test" and test_only["weak_label"] == "expert w2"
    two = pd.concat([agg, _agg([("a", "expert", "z", sp, "all", 9.0, .99)
                                for sp in ("val", "test")])], ignore_index=True)
    assert reference_models(two, family="b", severity="all")["ref_cost"] == 5.0


def test_frontier_and_lift_tables_order_index_and_empty():
    rows = [(f, m, v, "test", sev, c, a) for f in ("b", "a") for sev in ("severe", "all")
            for m, v, c, a in (("expert", "x", 1.0, .5), ("expert", "y", 3.0, .9),
                               ("random", "r", 2.0, .8))]
    rows += [("c", "random", "r", "test", "all", 2.0, .8)]          # no single models
    agg = _agg(rows)
    front = frontier_table(agg)
    assert list(zip(front["family"], front["severity"]))[::3] == [
        ("a", "all"), ("a", "severe"), ("b", "all"), ("b", "severe"), ("c", "all")]
    assert front.index.tolist() == list(range(len(front)))
    lift = lift_table(agg)
    assert list(zip(lift["family"], lift["severity"])) == [
        ("a", "all"), ("a", "severe"), ("b", "all"), ("b", "severe")]
    assert lift.index.tolist() == [0, 1, 2, 3]
    assert lift["lift"].tolist() == pytest.approx([.1] * 4)        # H(2) = 0.7
    assert frontier_table(agg.iloc[:0]).empty and lift_table(agg.iloc[:0]).empty
