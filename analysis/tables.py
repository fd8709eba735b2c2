"""The tables of the report, in the seed papers' formats, as plain DataFrames of numbers.

* *Routing table* (gater paper, Tables 2-6): for one family and one severity, one row per
  learned-router configuration (lam, tau, threshold): accuracy and mean cost (seed means with
  95% CIs) and the share of samples routed to each target (`share:<target>`, seed mean, 0-1).
* *Baseline table* (EM paper, Table 1): method, accuracy, cost on the whole test set for every
  non-learned configuration (single models, random, oracle, BranchyNet, cascade, ...) plus the
  configuration of each learned router with the best VAL accuracy, labelled '<method> (best on
  val)' (`analysis.selection.best_on_val`: no test number takes part in the choice).
* *Failed trials*: from the manifest's trial list and from points with status 'failed'.

`build_tables(data)` computes everything the report and the terminal show; formatting to
text / Markdown / HTML lives in `analysis.markup`.
"""
from __future__ import annotations

import pandas as pd

from analysis import families as fam
from analysis.frontier import (METHOD_ORDER, SINGLE_METHODS, frontier_table, is_learned,
                               lift_table, select)
from analysis.io import severity_order
from analysis.m_step import m_step_table
from analysis.variants import variant_table
from analysis.scores import scores_table
from analysis.selection import best_on_val
from analysis.stats import CONFIG, aggregate_seeds, setting_ids, significance_table
from analysis.verdict import verdict_table

STAT_COLUMNS = ["accuracy", "accuracy_lo", "accuracy_hi", "cost", "cost_lo", "cost_hi",
                "n_seeds"]


def route_shares(points: pd.DataFrame, routes: pd.DataFrame) -> pd.DataFrame:
    """Seed-mean routing fraction per (setting_id, severity, split) x target, successful points
    only. A target a point never used counts as 0; targets of another family stay NaN."""
    ok = points.loc[points["status"] == "ok", CONFIG + ["point_id"]]
    routes = routes[["point_id", "severity", "target", "fraction"]]
    r = routes.merge(ok, on=["point_id", "severity"], how="inner")
    parts = []
    for _, g in r.groupby("family", sort=True):
        g = g.assign(setting_id=setting_ids(g))
        wide = (g.groupby(["setting_id", "severity", "split", "point_id", "target"])["fraction"]
                .sum().unstack("target", fill_value=0.0))
        parts.append(wide.groupby(level=["setting_id", "severity", "split"]).mean())
    return pd.concat(parts) if parts else pd.DataFrame()


def target_order(agg: pd.DataFrame, targets, *, family) -> list:
    """Routing targets ordered by their single model's cost (cheapest first), others after."""
    singles = select(agg, family=family, severity="all")
    singles = singles[singles["method"].isin(SINGLE_METHODS)].sort_values("cost")
    known = [v for v in singles["variant"] if v in set(targets)]
    return known + sorted(set(targets) - set(known))


def routing_table(agg: pd.DataFrame, shares: pd.DataFrame, *, family, severity) -> pd.DataFrame:
    """One row per learned configuration of `family` at `severity`: stats + share:<target>."""
    rows = select(agg, family=family, severity=severity)
    rows = rows[is_learned(rows)].sort_values(["method", "lam", "tau", "threshold"])
    out = rows[["label", "method", "lam", "tau", "threshold"] + STAT_COLUMNS
               + ["setting_id"]].reset_index(drop=True)
    if shares.empty or rows.empty:
        return out
    idx = list(zip(rows["setting_id"], rows["severity"], rows["split"]))
    found = shares.reindex(idx)
    found = found.loc[:, found.notna().any(axis=0)]
    for target in target_order(agg, found.columns, family=family):
        out["share:" + str(target)] = found[target].to_numpy()
    return out


def _method_rank(method: str) -> int:
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER) - 1


def baseline_table(agg: pd.DataFrame, *, family) -> pd.DataFrame:
    """Whole-test-set accuracy and cost of the baselines and of each learned router's setting
    with the best val accuracy (module doc)."""
    rows = select(agg, family=family, severity="all")
    fixed = rows[~is_learned(rows)]
    fam = agg[(agg["family"] == family) & agg["lam"].notna()]
    chosen = set(best_on_val(fam, by=["method"]))
    best = rows[is_learned(rows) & rows["setting_id"].isin(chosen) & rows["accuracy"].notna()]
    best = best.assign(label=best["label"].str.replace(r"^(\S+)", r"\1 (best on val)",
                                                        regex=True))
    out = pd.concat([fixed, best], ignore_index=True)
    out = out.assign(_rank=out["method"].map(_method_rank))
    out = out.sort_values(["_rank", "cost", "label"]).drop(columns="_rank")
    return out[["label", "method", "variant", "lam", "tau", "threshold"] + STAT_COLUMNS
               + ["n_failed"]].reset_index(drop=True)


def failed_table(points: pd.DataFrame, manifest: dict) -> pd.DataFrame:
    """Failed trials: trial_id, family, method, lam, tau, seed, error (manifest and points)."""
    cols = ["trial_id", "family", "method", "lam", "tau", "seed", "error"]
    trials = [t for t in manifest.get("trials", []) or [] if isinstance(t, dict)]
    from_manifest = pd.DataFrame([{c: t.get(c) for c in cols} for t in trials
                                  if t.get("status") == "failed"], columns=cols)
    bad = points.loc[points["status"] != "ok"]
    from_points = bad.reindex(columns=cols).drop_duplicates(["trial_id", "method", "seed"])
    out = pd.concat([from_manifest, from_points.dropna(axis=1, how="all")], ignore_index=True)
    out["_key"] = out["trial_id"].fillna("") + "|" + out["method"].astype(str) + "|" + \
        out["seed"].astype(str)
    return out.drop_duplicates("_key").drop(columns="_key").reset_index(drop=True)


def families(agg: pd.DataFrame, manifest: dict | None = None) -> list:
    """The families present, in the manifest's order (the registry's: experts, exits, ...)."""
    return fam.order(manifest, agg["family"])


def build_tables(data: dict, *, confidence=0.95) -> dict:
    """Every table of the report from `analysis.load(...)`'s dict. Keys (DataFrames unless
    noted): aggregate, frontier, lift, scores, significance, verdict, failed, baselines/<family>,
    routing/<family>/<severity> (severity 'all' and each level), points (as loaded),
    manifest (dict), severities (the levels in order, list), families ({family: what its λ /
    τ weigh, its title and cost unit}, in order; `analysis.families.describe`)."""
    points, routes, decisions = data["points"], data["routes"], data["decisions"]
    agg = aggregate_seeds(points, decisions, confidence=confidence)
    shares = route_shares(points, routes)
    severities = severity_order(data["manifest"], points)
    order = families(agg, data["manifest"])
    tables = {"aggregate": agg, "frontier": frontier_table(agg), "lift": lift_table(agg),
              "scores": scores_table(agg), "failed": failed_table(points, data["manifest"]),
              "significance": significance_table(agg, points, decisions, severities),
              "m_step": m_step_table(agg),        # empty unless exits.m_step: both
              "variants": variant_table(points, decisions),  # empty unless e.g. gater.trunk: both
              "verdict": verdict_table(agg, points, decisions, severities=severities,
                                       families=order, confidence=confidence),
              "manifest": data["manifest"], "points": points, "severities": severities,
              "families": {f: fam.describe(data["manifest"], f, points)
                           for f in order}}
    for family in tables["families"]:
        tables[f"baselines/{family}"] = baseline_table(agg, family=family)
        for severity in ["all", *tables["severities"]]:
            table = routing_table(agg, shares, family=family, severity=severity)
            if len(table):
                tables[f"routing/{family}/{severity}"] = table
    return tables
