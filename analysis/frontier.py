"""Pareto frontier and the static-mixing hull of the single models.

Definitions (cost is minimised, accuracy maximised):

* A point p is *dominated* when some q has cost_q <= cost_p and acc_q >= acc_p with at least one
  strict inequality. The *Pareto frontier* is the set of non-dominated points; identical
  points do not dominate each other, so exact duplicates are both kept. NaN points are never on it.
* *Static mixing*: running single model i with probability p_i (independently of the input)
  costs sum p_i c_i and scores sum p_i a_i, so every point of the convex hull of the single
  models is reachable. Reading cost as a budget (spending less is allowed), the best static
  accuracy at cost c is the *non-decreasing upper convex hull* H(c): the upper hull from the
  cheapest model up to the most accurate one, flat at the best accuracy beyond it.
* *Lift* of a router point (c, a) is a - H(c). Below the cheapest single model no mixture
  exists; there H(c) is the cheapest model's accuracy (a baseline that costs more than the
  router, so the lift there is conservative).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

SINGLE_METHODS = ("expert", "exit")
# The order methods are listed in (figures, tables): single models, baselines, learned, bound.
METHOD_ORDER = ("expert", "exit", "random", "branchynet", "cascade", "gater", "em_router",
                "oracle")


def pareto_mask(*, cost, accuracy) -> np.ndarray:
    """bool [n]: True where the point (cost[i], accuracy[i]) is not dominated (see module doc)."""
    c = np.asarray(cost, float)
    a = np.asarray(accuracy, float)
    valid = ~(np.isnan(c) | np.isnan(a))
    cq, aq = c[valid][:, None], a[valid][:, None]  # rows: candidate dominators q
    no_worse = (cq <= c[None, :]) & (aq >= a[None, :])
    better = (cq < c[None, :]) | (aq > a[None, :])
    dominated = (no_worse & better).any(axis=0)
    return valid & ~dominated


def pareto_front(frame: pd.DataFrame, *, cost="cost", accuracy="accuracy") -> pd.DataFrame:
    """The non-dominated rows of `frame`, sorted by cost (then accuracy), all columns kept."""
    if frame.empty:
        return frame.copy()
    mask = pareto_mask(cost=frame[cost].to_numpy(), accuracy=frame[accuracy].to_numpy())
    return frame[mask].sort_values([cost, accuracy], kind="stable")


def upper_hull(*, cost, accuracy, nondecreasing=True) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (cost, accuracy) of the upper convex hull, sorted by cost.

    With `nondecreasing` the hull stops at the most accurate point (cheapest among ties), so
    accuracy never falls as cost grows. NaN points are ignored; no points -> two empty arrays.
    """
    c, a = np.asarray(cost, float), np.asarray(accuracy, float)
    keep = ~(np.isnan(c) | np.isnan(a))
    order = np.lexsort((-a[keep], c[keep]))  # by cost, best accuracy first among equal costs
    pts = np.column_stack([c[keep][order], a[keep][order]])
    hull: list = []
    for x, y in pts:
        if hull and x == hull[-1][0]:
            continue  # same cost, lower (or equal) accuracy
        while len(hull) >= 2 and _not_right_turn(hull[-2], hull[-1], (x, y)):
            hull.pop()
        hull.append((x, y))
    hull = np.array(hull, float).reshape(-1, 2)
    if nondecreasing and len(hull):
        hull = hull[: int(np.argmax(hull[:, 1])) + 1]
    return hull[:, 0], hull[:, 1]


def _not_right_turn(o, p, q) -> bool:
    """True when o -> p -> q does not turn clockwise, i.e. p lies on or below the chord o-q."""
    return (p[0] - o[0]) * (q[1] - o[1]) - (p[1] - o[1]) * (q[0] - o[0]) >= 0


def hull_accuracy(hull_cost, hull_acc, at) -> np.ndarray:
    """H(at): linear interpolation on the hull; flat outside its cost range (see module doc)."""
    hull_cost, hull_acc = np.asarray(hull_cost, float), np.asarray(hull_acc, float)
    at = np.asarray(at, float)
    if not len(hull_cost):
        return np.full(at.shape, np.nan)
    return np.interp(at, hull_cost, hull_acc, left=hull_acc[0], right=hull_acc[-1])


def static_mixing(singles: pd.DataFrame) -> pd.DataFrame:
    """The hull vertices of the single models: columns cost, accuracy, variant."""
    hc, ha = upper_hull(cost=singles["cost"], accuracy=singles["accuracy"])
    names = []
    for c, a in zip(hc, ha):
        hit = singles[(singles["cost"] == c) & (singles["accuracy"] == a)]
        names.append(hit["variant"].iloc[0] if len(hit) and "variant" in hit else None)
    return pd.DataFrame({"cost": hc, "accuracy": ha, "variant": names})


def mixing_lift(points: pd.DataFrame, singles: pd.DataFrame) -> pd.DataFrame:
    """`points` with two new columns: static_accuracy = H(cost), lift = accuracy - H(cost)."""
    hc, ha = upper_hull(cost=singles["cost"], accuracy=singles["accuracy"])
    out = points.copy()
    out["static_accuracy"] = hull_accuracy(hc, ha, out["cost"].to_numpy())
    out["lift"] = out["accuracy"] - out["static_accuracy"]
    return out


# --- on seed-aggregated configurations (the output of stats.aggregate_seeds) ---------------

NOT_DEPLOYABLE = ("oracle",)  # uses the labels: drawn as an upper bound, never on the frontier


def select(agg: pd.DataFrame, *, family=None, severity=None, split="test") -> pd.DataFrame:
    """Rows of one split (default test), optionally one family and one severity."""
    mask = agg["split"] == split
    if family is not None:
        mask &= agg["family"] == family
    if severity is not None:
        mask &= agg["severity"] == severity
    return agg[mask]


def is_learned(frame: pd.DataFrame) -> pd.Series:
    """True for learned routers: rows with a cost weight lam (gater, em_router, ...)."""
    return frame["lam"].notna()


def reference_models(agg: pd.DataFrame, *, family, severity) -> dict | None:
    """The single models' reference points at one severity, or None without single models.

    weak = cheapest single (most accurate among equal costs), strong = most accurate single
    (cheapest among ties), ref_cost = cost of the most expensive single model; (cost, accuracy)
    on test. Which single is weak / strong is ranked on VAL where every single model has a val
    row at this severity (`chosen_on` says 'val'), else on test ('test': results written before
    single models had val rows).
    """
    s = select(agg, family=family, severity=severity)
    s = s[s["method"].isin(SINGLE_METHODS) & s["accuracy"].notna()]
    if s.empty:
        return None
    v = select(agg, family=family, severity=severity, split="val")
    v = v[v["method"].isin(SINGLE_METHODS) & v["accuracy"].notna()]
    chosen_on = "val" if set(s["setting_id"]) <= set(v["setting_id"]) else "test"
    rank = (v[v["setting_id"].isin(set(s["setting_id"]))] if chosen_on == "val" else s)
    weak_id = rank.sort_values(["cost", "accuracy"], ascending=[True, False]).iloc[0]
    strong_id = rank.sort_values(["accuracy", "cost"], ascending=[False, True]).iloc[0]
    weak = s[s["setting_id"] == weak_id["setting_id"]].iloc[0]
    strong = s[s["setting_id"] == strong_id["setting_id"]].iloc[0]
    return {"weak": (float(weak["cost"]), float(weak["accuracy"])),
            "strong": (float(strong["cost"]), float(strong["accuracy"])),
            "strong_label": strong["label"], "weak_label": weak["label"],
            "strong_point_ids": list(strong["point_ids"]), "chosen_on": chosen_on,
            "ref_cost": float(s["cost"].max()), "singles": s}


def frontier_table(agg: pd.DataFrame) -> pd.DataFrame:
    """Pareto frontier of the seed means per family and severity (test split), CIs carried.

    Candidates are all deployable configurations (every method except NOT_DEPLOYABLE).
    """
    test = select(agg)
    parts = [pareto_front(g[~g["method"].isin(NOT_DEPLOYABLE)])
             for _, g in test.groupby(["family", "severity"], sort=True)]
    return pd.concat(parts, ignore_index=True) if parts else test.iloc[:0].copy()


def lift_table(agg: pd.DataFrame) -> pd.DataFrame:
    """Every non-single configuration with its static-mixing accuracy and lift, per family and
    severity (test split). Empty when a family has no single models."""
    parts = []
    for (family, severity), g in select(agg).groupby(["family", "severity"], sort=True):
        ref = reference_models(agg, family=family, severity=severity)
        routers = g[~g["method"].isin(SINGLE_METHODS) & g["accuracy"].notna()]
        if ref is not None and len(routers):
            parts.append(mixing_lift(routers, ref["singles"]))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
