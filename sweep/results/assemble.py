"""Trials' decisions and every family's baselines -> the three tables (computed on the driver).

Each enabled family adds its own rows (`Family.assemble`, sweep/families/) to one `Tables`.
"""
from __future__ import annotations

from sweep import families
from sweep.results.tables import Tables


def tables(cfg, store: dict, costs: dict, trials: list[dict]):
    """-> (points, routes, decisions) DataFrames: every trial and every baseline.
    costs: {family: its costs}; trials: `sweep.tuning.tuner.collect`'s dicts."""
    tab = Tables(severity={k: store[k]["severity"] for k in ("val", "test")},
                 sample_id=store["test"]["sample_id"], label=store["test"]["label"])
    for f in families.enabled(cfg):
        f.assemble(f, tab, store, [t for t in trials if t["family"] == f.name], costs[f.name],
                   cfg)
    return tab.frames()
