"""Per-sample decisions -> the output contract's tables (points, routes, decisions), atomically.

A decision set is (target int [N], correct bool [N], cost float [N]) on one split of the store;
`Tables.add` turns it into one `points` row per severity (plus 'all'), the route shares, and,
on the test split, one `decisions` row per sample.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from sweep.config import SEVERITIES
from sweep.fs import write_atomic, write_json  # noqa: F401  (the tables' writers use them)

POINT_COLUMNS = ["point_id", "family", "method", "variant", "trial_id", "seed", "lam", "tau",
                 "threshold", "split", "severity", "accuracy", "cost", "cost_unit", "n",
                 "status", "error"]


def point_id(*, family, method, variant=None, seed, lam=None, tau=None, threshold=None,
             split) -> str:
    """e.g. experts/gater/-/s0/lam0.7/tau1/test: unique per operating point and split."""
    parts = [family, method, variant or "-", f"s{seed}"]
    parts += [f"{k}{v:g}" for k, v in (("lam", lam), ("tau", tau), ("th", threshold))
              if v is not None]
    return "/".join(parts + [split])


class Tables:
    """Accumulates rows; `frames()` returns the three DataFrames of the contract."""

    def __init__(self, *, severity: dict[str, np.ndarray], sample_id: np.ndarray,
                 label: np.ndarray):
        self.severity, self.sample_id, self.label = severity, sample_id, label
        self.points, self.routes, self.decisions = [], [], []

    def add(self, *, meta: dict, split: str, target, correct, cost, target_names) -> None:
        meta = {"variant": None, "trial_id": None, "lam": None, "tau": None, "threshold": None,
                "status": "ok", "error": None, **meta, "split": split}
        pid = point_id(**{k: meta[k] for k in ("family", "method", "variant", "seed", "lam",
                                               "tau", "threshold")}, split=split)
        sev = self.severity[split]
        target, correct, cost = np.asarray(target), np.asarray(correct), np.asarray(cost, float)
        for name, mask in [("all", np.ones(len(sev), bool))] + [
                (s, sev == i) for i, s in enumerate(SEVERITIES) if (sev == i).any()]:
            self.points.append({**meta, "point_id": pid, "severity": name, "n": int(mask.sum()),
                                "accuracy": float(correct[mask].mean()),
                                "cost": float(cost[mask].mean())})
            share = np.bincount(target[mask], minlength=len(target_names)) / max(mask.sum(), 1)
            self.routes += [{"point_id": pid, "severity": name, "target": t, "fraction": float(f)}
                            for t, f in zip(target_names, share)]
        if split == "test":
            self.decisions.append(pd.DataFrame({
                "point_id": pid, "sample_id": self.sample_id,
                "severity": np.asarray(SEVERITIES)[sev], "label": self.label,
                "target": np.asarray(target_names)[target], "correct": correct.astype(bool),
                "cost": cost}))

    def add_failed(self, *, meta: dict) -> None:
        """A failed trial keeps its row: accuracy/cost NaN, status failed, the reason."""
        pid = point_id(**{k: meta.get(k) for k in ("family", "method", "variant", "seed", "lam",
                                                   "tau", "threshold")}, split="test")
        self.points.append({"variant": None, "threshold": None, **meta, "point_id": pid,
                            "split": "test", "severity": "all", "n": 0,
                            "accuracy": float("nan"), "cost": float("nan"), "status": "failed"})

    def frames(self):
        points = pd.DataFrame(self.points).reindex(columns=POINT_COLUMNS + [
            c for c in (pd.DataFrame(self.points).columns if self.points else [])
            if c not in POINT_COLUMNS])
        for c in ("seed", "n"):
            points[c] = points[c].astype("int64")
        for c in ("lam", "tau", "threshold", "accuracy", "cost"):
            points[c] = points[c].astype("float64")
        routes = pd.DataFrame(self.routes, columns=["point_id", "severity", "target", "fraction"])
        dec = (pd.concat(self.decisions, ignore_index=True) if self.decisions else
               pd.DataFrame(columns=["point_id", "sample_id", "severity", "label", "target",
                                     "correct", "cost"]))
        return points, routes, dec


def write_tables(out: str, points, routes, decisions) -> None:
    for name, df in (("points", points), ("routes", routes), ("decisions", decisions)):
        write_atomic(os.path.join(out, f"{name}.parquet"),
                     lambda p, df=df: df.to_parquet(p, index=False))
