"""The terminal summary printed at the end of `python -m sweep.run` (plain text tables)."""
from __future__ import annotations

import numpy as np
import pandas as pd

SEVS = ("all", "clean", "mild", "moderate", "severe")


def _fmt(df: pd.DataFrame) -> str:
    return df.to_string(index=False, float_format=lambda v: f"{v:.3f}")


def gater_table(points: pd.DataFrame, routes: pd.DataFrame) -> pd.DataFrame:
    """Per λ: the τ with the best mean test accuracy (over seeds); per severity acc/cost/% routes."""
    g = points[(points.method == "gater") & (points.split == "test") & (points.status == "ok")]
    if g.empty:
        return pd.DataFrame()
    best_tau = (g[g.severity == "all"].groupby(["lam", "tau"]).accuracy.mean().reset_index()
                .sort_values("accuracy").groupby("lam").tail(1)[["lam", "tau"]])
    g = g.merge(best_tau, on=["lam", "tau"])
    share = routes.merge(g[["point_id", "severity", "lam", "tau"]], on=["point_id", "severity"])
    share = share.pivot_table(index=["lam", "tau", "severity"], columns="target",
                              values="fraction", aggfunc="mean") * 100
    acc = g.groupby(["lam", "tau", "severity"])[["accuracy", "cost"]].mean()
    table = acc.join(share.add_prefix("% ")).reset_index()
    table["severity"] = pd.Categorical(table.severity, SEVS)
    return table.sort_values(["severity", "lam"]).rename(columns={"cost": "latency_ms"})


def em_vs_branchynet(points: pd.DataFrame) -> pd.DataFrame:
    """EM test points (mean over seeds per λ, τ, threshold) vs BranchyNet interpolated at the
    same cost (BranchyNet's own val-chosen test points, sorted by cost)."""
    p = points[(points.split == "test") & (points.severity == "all") & (points.status == "ok")]
    em = (p[p.method == "em_router"].groupby(["lam", "tau", "threshold"])[["accuracy", "cost"]]
          .mean().reset_index())
    bn = p[p.method == "branchynet"].sort_values("cost")
    if em.empty or bn.empty:
        return pd.DataFrame()
    em["branchynet_acc_at_cost"] = np.interp(em.cost, bn.cost, bn.accuracy)
    em["delta"] = em.accuracy - em.branchynet_acc_at_cost
    best = em.sort_values("accuracy").groupby("lam").tail(1).sort_values("cost")
    return best


def _print_singles(accuracy: dict, costs: dict, cost_key: str, title: str) -> None:
    """Single models (experts or fixed exits): accuracy per severity and their cost."""
    acc = pd.DataFrame(accuracy).T
    acc[cost_key] = [costs[n][cost_key] for n in acc.index]
    print(f"\n{title}")
    print(acc.to_string(float_format=lambda v: f"{v:.3f}"))


def print_summary(out, points, routes, meta, manifest) -> None:
    print(f"\nroutesweep: results in {out}  (status: {manifest['status']})")
    if "expert_accuracy" in meta:
        _print_singles(meta["expert_accuracy"], manifest["costs"]["experts"], "latency_ms",
                       "Experts alone (test accuracy per severity; batch-1 latency):")
        t = gater_table(points, routes)
        if not t.empty:
            print(f"\nGater, best τ per λ (mean over seeds; + gater "
                  f"{manifest['costs']['gater']['latency_ms']:.3f} ms):")
            for sev, part in t.groupby("severity", observed=True):
                print(f"-- {sev}\n{_fmt(part.drop(columns='severity'))}")
    if "exit_accuracy" in meta:
        _print_singles(meta["exit_accuracy"], manifest["costs"]["exits"], "compute",
                       "Fixed exits (test accuracy per severity; fraction of full compute):")
        cmp = em_vs_branchynet(points)
        if not cmp.empty:
            print("\nEM router (best threshold per λ, mean over seeds) vs BranchyNet at the same cost:")
            print(_fmt(cmp))
    failed = [t for t in manifest.get("trials", []) if t["status"] != "ok"]
    if failed:
        print(f"\n{len(failed)} trial(s) FAILED:")
        for t in failed:
            print(f"  {t['family']} lam={t['lam']} tau={t['tau']} seed={t['seed']}: {t['error']}")
    print(f"\nTimings (s): " + ", ".join(f"{k}={v:.1f}" for k, v in manifest["timings"].items()))
