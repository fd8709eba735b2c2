"""The paper's M-step against exact EM (`exits.m_step: both`): one short table.

The EM router's rows carry their M-step in `variant`: null = the paper's (unweighted BCE on the
conditional targets), 'weighted' = exact EM (each sample weighs its posterior mass of reaching
the exit). Per λ and compute budget b (a fraction of the full backbone), each M-step's operating
point is chosen ON VAL, by the same rule for both: among the (τ, threshold) settings reported on
test whose seed-mean val cost is <= b, the highest val accuracy (then the lower val cost, then the
setting id). The table shows that setting's TEST accuracy and cost (whole test set, seed means)
for both M-steps side by side, and the difference in accuracy (weighted - paper). A budget no
setting of an M-step fits leaves that M-step's cells empty (NaN).

`m_step_table(agg)` is empty unless both M-steps are in the run; `m_step_text(table)` formats
it for the terminal and `m_step_markdown(table)` for tables.md / the report.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

METHOD = "em_router"
M_STEPS = ("paper", "weighted")            # variant null -> "paper"
BUDGETS = (0.25, 0.5, 0.75, 1.0)           # fractions of full compute (the exit family's unit)
_TOL = 1e-9                                # a setting at exactly the budget fits
COLUMNS = ["lam", "budget"] + [f"{m}_{c}" for m in M_STEPS for c in ("accuracy", "cost",
                                                                      "setting")] + ["accuracy_diff"]


def m_step_of(variant) -> str:
    """The M-step a row's variant names: null -> 'paper', else the variant itself."""
    return "paper" if variant is None or (isinstance(variant, float) and np.isnan(variant)) \
        else str(variant)


def _choose(val: pd.DataFrame, budget: float):
    """The setting_id of the best val row with cost <= budget, or None."""
    fits = val[val["cost"] <= budget + _TOL]
    if fits.empty:
        return None
    best = fits.sort_values(["accuracy", "cost", "setting_id"], ascending=[False, True, True],
                            kind="stable")
    return best["setting_id"].iloc[0]


def m_step_table(agg: pd.DataFrame, *, budgets=BUDGETS) -> pd.DataFrame:
    """agg (analysis.stats.aggregate_seeds / seed_means: split, severity, setting_id, label,
    accuracy, cost) -> one row per (λ, budget): COLUMNS; empty without both M-steps."""
    em = agg[(agg["method"] == METHOD) & (agg["severity"] == "all") & agg["accuracy"].notna()]
    em = em.assign(m_step=[m_step_of(v) for v in em["variant"]])
    if set(M_STEPS) - set(em["m_step"]):
        return pd.DataFrame(columns=COLUMNS)
    test = em[em["split"] == "test"].set_index("setting_id")
    val = em[(em["split"] == "val") & em["setting_id"].isin(test.index)]
    rows = []
    for lam in sorted(set(em["lam"].dropna())):
        for b in budgets:
            row = {"lam": float(lam), "budget": float(b)}
            for m in M_STEPS:
                sid = _choose(val[(val["lam"] == lam) & (val["m_step"] == m)], b)
                hit = None if sid is None else test.loc[sid]
                row[f"{m}_accuracy"] = np.nan if hit is None else float(hit["accuracy"])
                row[f"{m}_cost"] = np.nan if hit is None else float(hit["cost"])
                row[f"{m}_setting"] = None if hit is None else str(hit["label"])
            row["accuracy_diff"] = row["weighted_accuracy"] - row["paper_accuracy"]
            rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def shown_in(table, agg: pd.DataFrame, *, family) -> bool:
    """Whether a family's report section shows the table: it has rows, and the EM router's."""
    return table is not None and len(table) > 0 and \
        family in set(agg.loc[agg["method"] == METHOD, "family"])


def _pct(v) -> str:
    return "–" if pd.isna(v) else f"{100 * v:.1f} %"


def _pts(v) -> str:
    return "–" if pd.isna(v) else f"{round(100 * v, 1) + 0.0:+.1f} pts"   # never "-0.0"


def _cost(v) -> str:
    return "–" if pd.isna(v) else f"{v:.2f}"


def m_step_display(table: pd.DataFrame) -> pd.DataFrame:
    """The table as strings: accuracy in %, cost as a fraction of full compute."""
    return pd.DataFrame({
        "λ": [f"{v:g}" for v in table["lam"]],
        "budget": [f"≤ {100 * v:.0f} %" for v in table["budget"]],
        "paper acc": [_pct(v) for v in table["paper_accuracy"]],
        "paper cost": [_cost(v) for v in table["paper_cost"]],
        "weighted acc": [_pct(v) for v in table["weighted_accuracy"]],
        "weighted cost": [_cost(v) for v in table["weighted_cost"]],
        "Δ acc (weighted − paper)": [_pts(v) for v in table["accuracy_diff"]]})


TITLE = ("EM router: paper M-step vs exact (weighted) EM — per λ and compute budget, the "
         "setting chosen on val, test accuracy / cost (fraction of full compute)")


def m_step_text(table: pd.DataFrame) -> str:
    """Terminal lines ('' when the run has not both M-steps)."""
    if table is None or table.empty:
        return ""
    shown = m_step_display(table)
    cells = [list(shown.columns)] + shown.values.tolist()
    widths = [max(len(str(r[i])) for r in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join([f"== {TITLE} ==", lines[0], "  ".join("-" * w for w in widths),
                      *lines[1:]])


def m_step_markdown(table: pd.DataFrame) -> str:
    """A Markdown section ('' when the run has not both M-steps)."""
    if table is None or table.empty:
        return ""
    shown = m_step_display(table)
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "|".join("---" for _ in
                                                                     shown.columns) + "|"]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in shown.values.tolist()]
    return f"## {TITLE}\n\n" + "\n".join(lines)
