"""A variant of a learned router against the method as is, trained on the same settings: the
paired test accuracy difference per λ, with its interval (e.g. `gater.trunk: both`: the
frozen trunk against the paper's trained one).

Which rows. A method's rows with variant null (the method as is) and with a named variant V
(a family's `variants`: "frozen trunk"), one operating point per trial (threshold null; the EM
router's M-step has its own table, `analysis.m_step`), test split, status ok. Runs with
`sweep.axes` label every row with its combination, so no row is "as is" and no table is made.

The difference. Per λ, over the (τ, seed) settings both ran: y[s, i] = the mean over τ of
(V's correct − the method's correct) on test unit i (a sample_id, its severities averaged:
`analysis.intervals.decision_units`), seed s (the two runs share their seed: init and Gumbel
noise). The row is ȳ with the crossed seeds × samples interval of `analysis.verdict.lift_test`
(its p too); without per-sample decisions, per-seed differences with t over seeds. A row "all"
pools every λ (the mean over λ and τ). Cost: both means, since V may route differently.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.intervals import decision_units
from analysis.markup import to_text
from analysis.verdict import lift_test

COLUMNS = ["family", "method", "variant", "lam", "settings", "seeds", "accuracy_as_is",
           "accuracy_variant", "accuracy_diff", "diff_lo", "diff_hi", "pvalue", "ci_method",
           "cost_as_is", "cost_variant"]


def _runs(points: pd.DataFrame) -> pd.DataFrame:
    """The candidate rows: test, whole test set, ok, one point per trial."""
    p = points[(points["split"] == "test") & (points["severity"] == "all") &
               (points["status"] == "ok") & points["threshold"].isna()]
    return p.assign(_variant=p["variant"].fillna(""))


def _per_seed(rows: pd.DataFrame, units) -> dict:
    """{seed: (correct, cost)}: per test unit (Series) with decisions, else the point's value;
    the mean over the rows' τ of that seed."""
    out = {}
    for seed, g in rows.groupby("seed"):
        if units is None:
            out[seed] = (g["accuracy"].mean(), g["cost"].mean())
            continue
        parts = [units.get((pid, "all")) for pid in g["point_id"]]
        if any(u is None for u in parts):
            continue
        frame = pd.concat(parts).groupby(level=0).mean()
        out[seed] = (frame["correct"], frame["cost"])
    return out


def _difference(base: pd.DataFrame, var: pd.DataFrame, units) -> dict | None:
    """One row's numbers from the as-is and variant rows of the same (λ, τ) settings."""
    a, b = _per_seed(base, units), _per_seed(var, units)
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    if units is None:
        diffs = np.array([b[s][0] - a[s][0] for s in seeds])
    else:
        frame = pd.concat({s: b[s][0] - a[s][0] for s in seeds}, axis=1).dropna()
        diffs = frame.to_numpy(float).T                                   # [S, n]
    mean = lambda d, k: float(np.mean([np.mean(d[s][k]) for s in seeds]))  # noqa: E731
    test = lift_test(diffs)
    return {"seeds": len(seeds), "accuracy_as_is": mean(a, 0), "accuracy_variant": mean(b, 0),
            "accuracy_diff": test["lift"], "diff_lo": test["lift_lo"],
            "diff_hi": test["lift_hi"], "pvalue": test["pvalue"],
            "ci_method": test["ci_method"], "cost_as_is": mean(a, 1), "cost_variant": mean(b, 1)}


def variant_table(points: pd.DataFrame, decisions=None) -> pd.DataFrame:
    """points (+ decisions, or None) -> one row per (family, method, variant, λ) and an "all"
    row per variant (lam NaN): COLUMNS (module doc); empty when no method has both."""
    runs, rows = _runs(points), []
    both = runs.groupby(["family", "method"])["_variant"].agg(lambda v: "" in set(v) and
                                                             len(set(v)) > 1)
    if not both.any():
        return pd.DataFrame(columns=COLUMNS)        # nothing to compare: no decisions read
    units = decision_units(decisions) if decisions is not None and len(decisions) else None
    for (family, method), g in runs.groupby(["family", "method"], sort=True):
        base = g[g["_variant"] == ""]
        for variant in sorted(set(g["_variant"]) - {""}):
            var = g[g["_variant"] == variant]
            shared = set(zip(base["lam"], base["tau"])) & set(zip(var["lam"], var["tau"]))
            keep = lambda d: d[np.array([k in shared for k in zip(d["lam"], d["tau"])],  # noqa: E731
                                        bool)]
            b, v = keep(base), keep(var)
            for lam in [*sorted({lam for lam, _ in shared}), np.nan]:
                pick = (lambda d: d) if np.isnan(lam) else (lambda d, x=lam: d[d["lam"] == x])
                got = _difference(pick(b), pick(v), units)
                if got is not None:
                    rows.append({"family": family, "method": method, "variant": variant,
                                 "lam": lam, "settings": len(set(pick(b)["tau"])), **got})
    return pd.DataFrame(rows, columns=COLUMNS)


def _pts(v) -> str:
    return "–" if pd.isna(v) else f"{round(100 * v, 2) + 0.0:+.2f}"


def variant_display(table: pd.DataFrame, *, lam_word="λ") -> pd.DataFrame:
    """The table as strings: accuracy in %, the difference in points with its interval."""
    return pd.DataFrame({
        "variant": [f"{m} {v}" for m, v in zip(table["method"], table["variant"])],
        lam_word: ["all" if pd.isna(x) else f"{x:g}" for x in table["lam"]],
        "seeds": table["seeds"].astype(int).astype(str),
        "as is (%)": [f"{100 * x:.2f}" for x in table["accuracy_as_is"]],
        "variant (%)": [f"{100 * x:.2f}" for x in table["accuracy_variant"]],
        "Δ acc (pts) [95 % CI]": [f"{_pts(d)} [{_pts(lo)}, {_pts(hi)}]" for d, lo, hi in
                                  zip(table["accuracy_diff"], table["diff_lo"],
                                      table["diff_hi"])],
        "p": [f"{p:.2g}" for p in table["pvalue"]],
        "cost as is → variant": [f"{a:.3g} → {b:.3g}" for a, b in
                                 zip(table["cost_as_is"], table["cost_variant"])]})


TITLE = ("Variants against the method as is — test accuracy per λ over the same τ and seeds "
         "(paired per seed and test sample)")


def variant_text(table: pd.DataFrame) -> str:
    """Terminal lines ('' without a variant to compare)."""
    if table is None or table.empty:
        return ""
    return f"== {TITLE} ==\n" + to_text(variant_display(table))
