"""The terminal summary printed at the end of `python -m sweep.run` (plain text tables).

`summary_text(analysis.load(DIR))`: per family (the manifest's order), what λ and τ weigh in
it, the single models per severity, and each learned router's best configuration per λ (the τ /
threshold with the best seed-mean test accuracy) per severity with its route shares; where the
family has BranchyNet, that configuration against BranchyNet interpolated at the same cost.
Seed means only (no bootstrap: this runs after every sweep), from `analysis.stats.seed_means`.
"""
from __future__ import annotations

import pandas as pd

from analysis import families as fam
from analysis.frontier import SINGLE_METHODS, hull_accuracy, is_learned, select
from analysis.io import severity_order
from analysis.stats import seed_means
from analysis.tables import route_shares

COST = {"ms": "latency_ms", "compute": "compute"}


def _fmt(df: pd.DataFrame) -> str:
    return df.to_string(index=False, float_format=lambda v: f"{v:.3f}")


def singles_table(means: pd.DataFrame, *, family, severities) -> pd.DataFrame:
    """Single models (experts / fixed exits): test accuracy per severity and their cost."""
    s = select(means, family=family)
    s = s[s["method"].isin(SINGLE_METHODS)]
    if s.empty:
        return s
    acc = s.pivot_table(index="variant", columns="severity", values="accuracy", sort=False)
    acc = acc[[c for c in ["all", *severities] if c in acc.columns]]
    cost = s[s["severity"] == "all"].set_index("variant")["cost"]
    return acc.assign(cost=cost).rename_axis(None, axis=1)


def best_per_lam(means: pd.DataFrame, points: pd.DataFrame, routes: pd.DataFrame, *, family,
                 method, severities) -> pd.DataFrame:
    """Per λ: the (τ, threshold) with the best seed-mean test accuracy on the whole test set;
    its accuracy, cost and % routed to each target at every severity."""
    rows = select(means, family=family)
    rows = rows[(rows["method"] == method) & rows["accuracy"].notna()]
    if rows.empty:
        return rows
    best = (rows[rows["severity"] == "all"].sort_values("accuracy", kind="stable")
            .groupby("lam").tail(1)["setting_id"])
    rows = rows[rows["setting_id"].isin(set(best))]
    shares = route_shares(points, routes)
    if not shares.empty:
        idx = list(zip(rows["setting_id"], rows["severity"], rows["split"]))
        found = shares.reindex(idx)
        found = found.loc[:, found.notna().any(axis=0)]
        for target in found.columns:
            rows = rows.assign(**{f"% {target}": found[target].to_numpy() * 100})
    rows = rows.assign(severity=pd.Categorical(rows["severity"], ["all", *severities]))
    keep = ["severity", "lam", "tau", "threshold", "accuracy", "cost"] + [
        c for c in rows.columns if c.startswith("% ")]
    out = rows.sort_values(["severity", "lam"])[keep]
    return out.dropna(axis=1, how="all")


def versus_branchynet(best: pd.DataFrame, means: pd.DataFrame, *, family) -> pd.DataFrame:
    """`best` (whole test set) with BranchyNet's accuracy at the same cost (linear between its
    val-chosen test points, flat beyond them) and the difference."""
    bn = select(means, family=family, severity="all")
    bn = bn[bn["method"] == "branchynet"].sort_values("cost")
    b = best[best["severity"] == "all"]
    if bn.empty or b.empty:
        return pd.DataFrame()
    at = hull_accuracy(bn["cost"], bn["accuracy"], b["cost"])
    return b.drop(columns="severity").assign(branchynet_acc_at_cost=at,
                                             delta=b["accuracy"].to_numpy() - at)


def _headers(frame: pd.DataFrame, info: dict) -> pd.DataFrame:
    """λ / τ / cost columns named by the family's words and unit."""
    return frame.rename(columns={"lam": info["lam"], "tau": info["tau"],
                                 "cost": COST.get(info["cost_unit"], "cost")})


def family_text(data: dict, family: str, info: dict, severities: list) -> list[str]:
    points, routes = data["points"], data["routes"]
    means = seed_means(points)
    lines = ["", f"== {info['title']}", f"   {fam.legend(info)}"]
    singles = singles_table(means, family=family, severities=severities)
    if len(singles):
        cost = COST.get(info["cost_unit"], "cost")
        lines += ["", f"Single models (test accuracy per severity; cost = {cost}):",
                  singles.to_string(float_format=lambda v: f"{v:.3f}")]
    learned = select(means, family=family)
    for method in dict.fromkeys(learned.loc[is_learned(learned), "method"]):
        best = best_per_lam(means, points, routes, family=family, method=method,
                            severities=severities)
        if best.empty:
            continue
        over = info["tau"] + (" / threshold" if "threshold" in best else "")
        lines += ["", f"{method}: best {over} per {info['lam']} (mean over seeds):"]
        for sev, part in best.groupby("severity", observed=True):
            lines += [f"-- {sev}", _fmt(_headers(part.drop(columns="severity"), info))]
        cmp = versus_branchynet(best, means, family=family)
        if len(cmp):
            lines += ["", f"{method} vs BranchyNet at the same cost (whole test set):",
                      _fmt(_headers(cmp, info))]
    return lines


def summary_text(data: dict, *, results_dir=None) -> str:
    """The summary of `analysis.load(...)`'s dict (see module doc)."""
    manifest, points = data["manifest"], data["points"]
    severities = severity_order(manifest, points)
    where = f" in {results_dir}" if results_dir else ""
    lines = [f"\nroutesweep: results{where}  (status: {manifest.get('status', 'unknown')})"]
    for family in fam.order(manifest, points["family"]):
        lines += family_text(data, family, fam.describe(manifest, family, points), severities)
    failed = [t for t in manifest.get("trials", []) if t.get("status") != "ok"]
    if failed:
        lines += ["", f"{len(failed)} trial(s) FAILED:"]
        for t in failed:
            info = fam.describe(manifest, t.get("family"))
            lines.append(f"  {t.get('family')} {info['lam']}={t.get('lam')} "
                         f"{info['tau']}={t.get('tau')} seed={t.get('seed')}: {t.get('error')}")
    timings = manifest.get("timings") or {}
    lines += ["", "Timings (s): " + ", ".join(f"{k}={v:.1f}" for k, v in timings.items())]
    return "\n".join(lines)
