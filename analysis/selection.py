"""Choosing operating points: every choice reads the val split, never test.

A *setting* is one configuration without its split and severity (`setting_id` of
`analysis.stats`: method, variant, λ, τ, threshold). Learned routers and the threshold
baselines have rows on both splits: val (every setting) and test (what is reported). A choice
ranks settings by their whole-val-set ('all') seed means and returns setting ids; the caller
then shows those settings' TEST rows. Changing any test number (labels, correctness,
accuracy, cost) never changes a choice (tests/test_selection.py).

* Candidates: settings with a val row AND a test row (a threshold not reported on test cannot
  be chosen). Settings without val rows (single models, random, oracle) are fixed in advance,
  so nothing is chosen among them here.
* `best_on_val(frame, by=...)`: per group of `by` columns, the highest val accuracy; ties go to
  the lower val cost, then to the first setting in sorted order.
* `at_budgets(frame, budgets)`: per budget b (a cost), the same rule among settings whose val
  cost is <= b; None where no setting fits.
* `val_frontier(frame)`: the settings Pareto-optimal on val (cost minimised, accuracy
  maximised), `analysis.frontier.pareto_mask`.

`frame` is `analysis.stats.seed_means` or `aggregate_seeds` output (one family or more).
"""
from __future__ import annotations

import pandas as pd

from analysis.frontier import SINGLE_METHODS, pareto_mask

BUDGETS = (0.25, 0.5, 0.75, 1.0)    # fractions of full compute in the summary
_TOL = 1e-9                         # a setting at exactly the budget fits
_DIGITS = 12                        # val means equal to 12 decimals are ties


def candidates(frame: pd.DataFrame) -> pd.DataFrame:
    """Val rows at severity 'all' of the settings that also have test rows, accuracy known;
    accuracy and cost rounded to _DIGITS decimals, so that a mean summed in another order
    (`seed_means` vs `aggregate_seeds`: 1e-16 apart) is the same tie and the same choice."""
    tested = set(frame.loc[frame["split"] == "test", "setting_id"])
    val = frame[(frame["split"] == "val") & (frame["severity"] == "all")
                & frame["accuracy"].notna() & frame["setting_id"].isin(tested)]
    val = val.assign(accuracy=val["accuracy"].round(_DIGITS), cost=val["cost"].round(_DIGITS))
    return val.sort_values("setting_id", kind="stable")


def _rank(val: pd.DataFrame) -> pd.DataFrame:
    """Best first: val accuracy down, val cost up, setting_id (the stable tie-break)."""
    return val.sort_values(["accuracy", "cost", "setting_id"], ascending=[False, True, True],
                           kind="stable")


def best_on_val(frame: pd.DataFrame, *, by=()) -> list:
    """Setting ids: per group of `by` (e.g. ["family", "method", "lam"]), the best on val."""
    val = _rank(candidates(frame))
    if val.empty:
        return []
    if not by:
        return [val["setting_id"].iloc[0]]
    best = val.groupby(list(by), sort=True, dropna=False).head(1)
    return list(best.sort_values(list(by), kind="stable")["setting_id"])   # in group order


def at_budgets(frame: pd.DataFrame, budgets) -> list:
    """[setting id or None] per budget: the best on val among val cost <= budget."""
    val = _rank(candidates(frame))
    out = []
    for b in budgets:
        fits = val[val["cost"] <= b + _TOL]
        out.append(fits["setting_id"].iloc[0] if len(fits) else None)
    return out


def val_frontier(frame: pd.DataFrame) -> list:
    """Setting ids on the val Pareto frontier of the candidates (one family at a time)."""
    val = candidates(frame)
    if val.empty:
        return []
    mask = pareto_mask(cost=val["cost"].to_numpy(), accuracy=val["accuracy"].to_numpy())
    return list(val.loc[mask, "setting_id"])


def full_cost(frame: pd.DataFrame, *, cost_unit) -> float | None:
    """What "full compute" costs in a family: 1 for a fraction of compute; else the costliest
    single model's cost (a cost, not a test result: the same on every split); None without."""
    if cost_unit == "compute":
        return 1.0
    singles = frame[frame["method"].isin(SINGLE_METHODS) & frame["cost"].notna()]
    return float(singles["cost"].max()) if len(singles) else None
