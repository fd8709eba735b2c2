"""One-number scores of an accuracy-cost frontier (cost minimised, accuracy maximised).

* *Hypervolume* HV: area of the region dominated by the points and bounded by the reference
  point (ref_cost, ref_accuracy), i.e. the union of the boxes [c_i, ref_cost] x [ref_accuracy, a_i].
  Exact 2-D sweep. The report uses ref_cost = cost of the most expensive single model and
  ref_accuracy = 0; *normalised* HV divides by the reference box [0, ref_cost] x [ref_accuracy, 1],
  so 1 means "perfect accuracy at zero cost".
* *AIQ* (RouterBench, Hu et al. 2024): area under the non-decreasing upper convex hull H of the
  points over [lo, hi], divided by hi - lo. Default [lo, hi] is the points' own cost range;
  with a wider range H is flat at its best accuracy above its range and 0 below it (nothing is
  reachable for less than the cheapest point).
* *PGR / APGR / CPT* (RouteLLM, Ong et al. 2024), with weak = the cheapest single model
  (c_w, a_w) and strong = the most accurate one (c_s, a_s): PGR(a) = (a - a_w) / (a_s - a_w).
  A(c) is the best accuracy among the points with cost <= c (a step function: operating points
  actually measured, no mixing); where no point is affordable PGR counts as 0.
  APGR = 1/(c_s - c_w) * integral over [c_w, c_s] of PGR(A(c)) dc.
  CPT(x) = the lowest cost of a point with PGR >= x (NaN if none reaches it).
  Undefined (NaN) when a_s == a_w or c_s <= c_w.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.frontier import (NOT_DEPLOYABLE, pareto_mask, reference_models, select,
                               upper_hull)


def _clean(cost, accuracy) -> tuple[np.ndarray, np.ndarray]:
    c, a = np.asarray(cost, float), np.asarray(accuracy, float)
    keep = ~(np.isnan(c) | np.isnan(a))
    return c[keep], a[keep]


def hypervolume(*, cost, accuracy, ref_cost, ref_accuracy=0.0) -> float:
    """Exact 2-D hypervolume (area) dominated by the points w.r.t. (ref_cost, ref_accuracy)."""
    c, a = _clean(cost, accuracy)
    inside = (c < ref_cost) & (a > ref_accuracy)
    c, a = c[inside], a[inside]
    if not len(c):
        return 0.0
    front = pareto_mask(cost=c, accuracy=a)
    order = np.argsort(c[front], kind="stable")
    fc, fa = c[front][order], a[front][order]
    right = np.append(fc[1:], ref_cost)  # each front point owns the strip up to the next one
    return float(np.sum((right - fc) * (fa - ref_accuracy)))


def normalised_hypervolume(*, cost, accuracy, ref_cost, ref_accuracy=0.0) -> float:
    """hypervolume / (ref_cost * (1 - ref_accuracy)); NaN if the box is empty."""
    box = ref_cost * (1.0 - ref_accuracy)
    if not box > 0:
        return np.nan
    return hypervolume(cost=cost, accuracy=accuracy, ref_cost=ref_cost,
                       ref_accuracy=ref_accuracy) / box


def aiq(*, cost, accuracy, lo=None, hi=None) -> float:
    """RouterBench AIQ: mean of the non-decreasing convex hull over [lo, hi] (module doc)."""
    hc, ha = upper_hull(cost=cost, accuracy=accuracy)
    if not len(hc):
        return np.nan
    lo = hc[0] if lo is None else float(lo)
    hi = max(hc[-1], lo) if hi is None else float(hi)
    if hi <= lo:
        return float(np.interp(lo, hc, ha, right=ha[-1])) if hc[0] <= lo else 0.0
    start = max(lo, hc[0])  # the hull is 0 below its cheapest point
    if start >= hi:
        return 0.0
    grid = np.unique(np.concatenate([[start, hi], hc[(hc > start) & (hc < hi)]]))
    values = np.interp(grid, hc, ha, right=ha[-1])
    area = np.sum(np.diff(grid) * (values[:-1] + values[1:]) / 2)
    return float(area / (hi - lo))


def pgr(accuracy, *, weak, strong) -> np.ndarray:
    """Performance gap recovered: (a - a_weak) / (a_strong - a_weak); weak/strong = (cost, acc)."""
    gap = strong[1] - weak[1]
    a = np.asarray(accuracy, float)
    return np.full(a.shape, np.nan) if gap == 0 else (a - weak[1]) / gap


def apgr(*, cost, accuracy, weak, strong) -> float:
    """RouteLLM APGR over [c_weak, c_strong] of the step function A(c) (module doc)."""
    c, a = _clean(cost, accuracy)
    lo, hi = float(weak[0]), float(strong[0])
    if hi <= lo or strong[1] == weak[1]:
        return np.nan
    edges = np.unique(np.concatenate([[lo, hi], c[(c > lo) & (c < hi)]]))
    total = 0.0
    for x0, x1 in zip(edges[:-1], edges[1:]):
        affordable = c <= x0
        best = pgr(a[affordable].max(), weak=weak, strong=strong) if affordable.any() else 0.0
        total += (x1 - x0) * float(best)
    return total / (hi - lo)


def cpt(*, cost, accuracy, weak, strong, fraction) -> float:
    """RouteLLM CPT(fraction): lowest cost of a point recovering >= fraction of the gap."""
    c, a = _clean(cost, accuracy)
    if strong[1] == weak[1] or not len(c):
        return np.nan
    reached = pgr(a, weak=weak, strong=strong) >= fraction - 1e-12
    return float(c[reached].min()) if reached.any() else np.nan


def score_points(*, cost, accuracy, ref: dict) -> dict:
    """All scores of one point set against the single models' references (`reference_models`)."""
    weak, strong, ref_cost = ref["weak"], ref["strong"], ref["ref_cost"]
    kw = {"cost": cost, "accuracy": accuracy}
    return {"hypervolume": normalised_hypervolume(**kw, ref_cost=ref_cost),
            "aiq": aiq(**kw, lo=weak[0], hi=ref_cost),
            "apgr": apgr(**kw, weak=weak, strong=strong),
            "cpt50": cpt(**kw, weak=weak, strong=strong, fraction=0.5),
            "cpt80": cpt(**kw, weak=weak, strong=strong, fraction=0.8)}


def scores_table(agg: pd.DataFrame) -> pd.DataFrame:
    """Scores per family x severity x method on the seed means (test split), plus a row
    'all deployable' (every method except the oracle together). AIQ uses the common range
    [cheapest single cost, most expensive single cost] so that methods are comparable."""
    rows = []
    for (family, severity), g in select(agg).groupby(["family", "severity"], sort=True):
        ref = reference_models(agg, family=family, severity=severity)
        g = g[g["accuracy"].notna()]
        if ref is None or g.empty:
            continue
        groups = [(m, gm) for m, gm in g.groupby("method", sort=True)]
        groups.append(("all deployable", g[~g["method"].isin(NOT_DEPLOYABLE)]))
        for method, gm in groups:
            row = {"family": family, "severity": severity, "method": method,
                   "n_configs": len(gm), "weak": ref["weak_label"], "strong": ref["strong_label"]}
            row.update(score_points(cost=gm["cost"], accuracy=gm["accuracy"], ref=ref))
            rows.append(row)
    return pd.DataFrame(rows)
