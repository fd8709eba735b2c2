"""What a family's rows mean, as the results directory records it (manifest.json "families").

`describe(manifest, family)` -> {"lam", "tau", "title", "cost_unit", "method", "methods", ...}:
what λ and τ weigh in that family (the words every axis and table header shows), its title and
cost unit. A family the manifest does not describe gets generic words ("λ", "τ") and the cost
unit of its rows. `V1_FAMILIES` is what schema 1 (no `schema_version`) meant: it had exactly
these two families and did not record their words; `analysis.io.load` fills them in.
"""
from __future__ import annotations

import pandas as pd

GENERIC = {"lam": "λ", "tau": "τ"}

# Frozen with schema 1: what λ and τ meant in results written before schema 2.
V1_FAMILIES = {
    "experts": {"section": "gater", "method": "gater",
                "methods": ["gater", "expert", "random", "oracle", "cascade"],
                "cost_unit": "ms", "store_part": "experts",
                "lam": "λ (weight on classification)", "tau": "τ (Gumbel temperature)",
                "title": "Expert family — gater over frozen experts (cost: latency, ms)"},
    "exits": {"section": "exits", "method": "em_router",
              "methods": ["em_router", "exit", "random", "oracle", "branchynet"],
              "cost_unit": "compute", "store_part": "exits",
              "lam": "λ (weight on exit cost)", "tau": "τ (E-step temperature)",
              "title": "Exit family — EM router over a multi-exit backbone "
                       "(cost: fraction of full compute)"},
}


def describe(manifest: dict | None, family: str, points: pd.DataFrame | None = None) -> dict:
    """The words, title and cost unit of one family (see module doc)."""
    info = ((manifest or {}).get("families") or {}).get(family) or {}
    unit = info.get("cost_unit")
    if unit is None and points is not None and "cost_unit" in points:
        units = points.loc[points["family"] == family, "cost_unit"].dropna().unique()
        unit = units[0] if len(units) else None
    return {**GENERIC, "title": f"Family: {family}", **info, "name": family, "cost_unit": unit}


def legend(info: dict) -> str:
    """One line naming what λ and τ weigh, e.g. 'λ (weight on exit cost); τ (E-step ...)'."""
    return f"{info['lam']}; {info['tau']}"


def order(manifest: dict | None, present) -> list:
    """The families present, in the manifest's order, then any others sorted."""
    present = list(dict.fromkeys(present))
    known = [f for f in ((manifest or {}).get("families") or {}) if f in present]
    return known + sorted(set(present) - set(known))
