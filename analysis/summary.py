"""The terminal summary printed at the end of `python -m sweep.run` (plain text tables).

`summary_text(analysis.load(DIR))`: per family (the manifest's order), what λ and τ weigh in
it, the single models per severity, and each learned router's operating points, CHOSEN ON VAL
(`analysis.selection`: no test number takes part in a choice), reported on test:

* a router with thresholds (the EM router): per budget of 25 / 50 / 75 / 100 % of full
  compute, the setting (λ, τ, threshold) with the best val accuracy among those whose val cost
  fits the budget, with its test accuracy and cost per severity;
* otherwise (the gater): per λ, the τ with the best val accuracy, per severity with its route
  shares.

Where the family has BranchyNet, those points against BranchyNet interpolated at the same cost.
Seed means only (no intervals: this runs after every sweep), from `analysis.stats.seed_means`.
First the verdict (`analysis.verdict`): per router and severity, its lift over static mixing
and over the strongest baseline at matched cost, with CI and q. The last line names
report.html when the run has one.
"""
from __future__ import annotations

import pandas as pd

from analysis import families as fam
from analysis.frontier import SINGLE_METHODS, hull_accuracy, is_learned, select
from analysis.io import severity_order
from analysis.m_step import m_step_table, m_step_text
from analysis.variants import variant_table, variant_text
from analysis.selection import BUDGETS, at_budgets, best_on_val, full_cost
from analysis.stats import seed_means
from analysis.tables import route_shares
from analysis.verdict import ALPHA, STATIC, verdict_table

COST = {"ms": "latency_ms", "compute": "compute"}


PERCENT = ("accuracy", "val_accuracy", "val accuracy", "branchynet_acc_at_cost", "delta")


def _percent(df: pd.DataFrame, cols=None) -> pd.DataFrame:
    """Accuracy columns (PERCENT, 'acc <severity>', or `cols`) as % with 2 decimals, like the
    report; a difference ('delta') in signed accuracy points."""
    cols = [c for c in df.columns if c in PERCENT or str(c).startswith("acc ")] \
        if cols is None else cols
    out = df.copy()
    for c in cols:
        out[c] = [_signed(v) if c == "delta" else "—" if pd.isna(v) else f"{v * 100:.2f}"
                  for v in df[c]]
    return out.rename(columns={c: f"{c} (%)" if c != "delta" else "delta (points)"
                               for c in cols if c in PERCENT})


def _fmt(df: pd.DataFrame) -> str:
    return _percent(df).to_string(index=False, na_rep="—", float_format=lambda v: f"{v:.3f}")


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


def _with_shares(rows: pd.DataFrame, points: pd.DataFrame, routes: pd.DataFrame) -> pd.DataFrame:
    """`rows` plus a '% <target>' column per routing target (seed-mean share, in %)."""
    shares = route_shares(points, routes)
    if shares.empty or rows.empty:
        return rows
    found = shares.reindex(list(zip(rows["setting_id"], rows["severity"], rows["split"])))
    found = found.loc[:, found.notna().any(axis=0)]
    return rows.assign(**{f"% {t}": found[t].to_numpy() * 100 for t in found.columns})


def best_per_lam(means: pd.DataFrame, points: pd.DataFrame, routes: pd.DataFrame, *, family,
                 method, severities) -> pd.DataFrame:
    """Per λ: the (τ, threshold) with the best seed-mean VAL accuracy (whole val set;
    `analysis.selection.best_on_val`); its test accuracy, cost and % routed to each target at
    every severity."""
    fam = means[(means["family"] == family) & (means["method"] == method)]
    chosen = set(best_on_val(fam, by=["lam"]))
    rows = select(fam)
    rows = rows[rows["setting_id"].isin(chosen) & rows["accuracy"].notna()]
    if rows.empty:
        return rows
    rows = _with_shares(rows, points, routes)
    rows = rows.assign(severity=pd.Categorical(rows["severity"], ["all", *severities]))
    keep = ["severity", "variant", "lam", "tau", "threshold", "accuracy", "cost"] + [
        c for c in rows.columns if c.startswith("% ")]
    out = rows.sort_values(["severity", "lam"])[keep]
    return out.dropna(axis=1, how="all")


def at_budget_table(means: pd.DataFrame, *, family, method, severities, cost_unit,
                    budgets=BUDGETS) -> pd.DataFrame:
    """Per budget (a fraction of full compute): the setting chosen on val among those whose
    val cost fits (`analysis.selection.at_budgets`), with its val accuracy / cost and its test
    accuracy and cost (whole test set), then its test accuracy per severity. A budget nothing
    fits is a row without a setting."""
    fam = means[(means["family"] == family) & (means["method"] == method)]
    full = full_cost(means[means["family"] == family], cost_unit=cost_unit)
    if full is None or fam.empty:
        return pd.DataFrame()
    ids = at_budgets(fam, [b * full for b in budgets])
    val = fam[(fam["split"] == "val") & (fam["severity"] == "all")].set_index("setting_id")
    test = select(fam).set_index(["setting_id", "severity"])
    rows = []
    for b, sid in zip(budgets, ids):
        row = {"budget": f"{b:.0%}", "budget_cost": b * full}
        if sid is not None:
            v = val.loc[sid]
            row.update(variant=v["variant"], lam=v["lam"], tau=v["tau"], threshold=v["threshold"],
                       val_accuracy=v["accuracy"], val_cost=v["cost"])
            for sev in ["all", *severities]:
                if (sid, sev) in test.index:
                    t = test.loc[(sid, sev)]
                    if sev == "all":
                        row.update(accuracy=t["accuracy"], cost=t["cost"])
                    else:
                        row[f"acc {sev}"] = t["accuracy"]
        rows.append(row)
    return pd.DataFrame(rows).dropna(axis=1, how="all")


def versus_branchynet(chosen: pd.DataFrame, means: pd.DataFrame, *, family) -> pd.DataFrame:
    """`chosen` points (whole test set: rows with severity 'all', or a budget table) with
    BranchyNet's accuracy at the same cost (linear between its val-chosen test points, flat
    beyond them) and the difference."""
    bn = select(means, family=family, severity="all")
    bn = bn[bn["method"] == "branchynet"].sort_values("cost")
    b = chosen[chosen["severity"] == "all"].drop(columns="severity") \
        if "severity" in chosen else chosen
    b = b[b["accuracy"].notna()] if "accuracy" in b else b.iloc[:0]
    if bn.empty or b.empty:
        return pd.DataFrame()
    b = b[[c for c in b.columns if not c.startswith(("acc ", "% ", "val_"))]]
    at = hull_accuracy(bn["cost"], bn["accuracy"], b["cost"])
    return b.assign(branchynet_acc_at_cost=at, delta=b["accuracy"].to_numpy() - at)


def _headers(frame: pd.DataFrame, info: dict) -> pd.DataFrame:
    """λ / τ / cost columns named by the family's words and unit."""
    cost = COST.get(info["cost_unit"], "cost")
    return frame.rename(columns={"lam": info["lam"], "tau": info["tau"], "cost": cost,
                                 "budget_cost": f"max {cost}", "val_accuracy": "val accuracy",
                                 "val_cost": f"val {cost}"})


def _learned_text(data: dict, means: pd.DataFrame, *, family, method, info, severities):
    """The lines of one learned router: at budgets (with thresholds) or best τ per λ."""
    rows = means[(means["family"] == family) & (means["method"] == method)]
    lines = []
    if rows["threshold"].notna().any():
        chosen = at_budget_table(means, family=family, method=method, severities=severities,
                                 cost_unit=info["cost_unit"])
        if chosen.empty:
            return []
        what = ", ".join(c for c in (info["lam"], info["tau"], "threshold"))
        lines += ["", f"{method}: operating points at matched budgets (% of full compute); "
                      f"{what} chosen on val (best val accuracy within the budget), "
                      f"reported on test (mean over seeds):",
                  _fmt(_headers(chosen, info))]
    else:
        chosen = best_per_lam(means, data["points"], data["routes"], family=family,
                              method=method, severities=severities)
        if chosen.empty:
            return []
        lines += ["", f"{method}: {info['tau']} per {info['lam']} chosen on val (best val "
                      f"accuracy), reported on test (mean over seeds):"]
        for sev, part in chosen.groupby("severity", observed=True):
            lines += [f"-- {sev}", _fmt(_headers(part.drop(columns="severity"), info))]
    cmp = versus_branchynet(chosen, means, family=family)
    if len(cmp):
        lines += ["", f"{method} vs BranchyNet at the same cost (whole test set; both chosen "
                      f"on val):", _fmt(_headers(cmp, info))]
    return lines


def family_text(data: dict, family: str, info: dict, severities: list) -> list[str]:
    means = seed_means(data["points"])
    lines = ["", f"== {info['title']}", f"   {fam.legend(info)}"]
    singles = singles_table(means, family=family, severities=severities)
    if len(singles):
        cost = COST.get(info["cost_unit"], "cost")
        lines += ["", f"Single models (test accuracy per severity, %; cost = {cost}):",
                  _percent(singles, [c for c in singles.columns if c != "cost"]).to_string(
                      float_format=lambda v: f"{v:.3f}")]
    learned = select(means, family=family)
    for method in dict.fromkeys(learned.loc[is_learned(learned), "method"]):
        lines += _learned_text(data, means, family=family, method=method, info=info,
                               severities=severities)
    return lines


def _signed(v) -> str:
    """An accuracy difference in signed points, 2 decimals; never '-0.00'."""
    return "" if pd.isna(v) else f"{round(v * 100, 2) + 0.0:+.2f}"


def verdict_text(verdict: pd.DataFrame) -> list[str]:
    """The verdict (analysis.verdict) as terminal lines: one row per router and severity,
    its lift over static mixing and over the strongest baseline (accuracy points, 95% CI)
    and q; '*' marks q <= 0.05."""
    if verdict.empty:
        return []
    rows = {}
    for r in verdict.to_dict("records"):
        row = rows.setdefault((r["router"], r["severity"]), {
            "router": r["router"], "severity": "overall" if r["severity"] == "all"
            else r["severity"], "acc (%)": f"{r['accuracy'] * 100:.2f}"})
        ci = f" [{_signed(r['lift_lo'])}, {_signed(r['lift_hi'])}]" if _signed(r["lift_lo"]) \
            else ""
        q = "" if pd.isna(r["qvalue"]) else f"{r['qvalue']:.2g}" + "*" * (r["qvalue"] <= ALPHA)
        side = "mix" if r["versus"] == STATIC else "base"
        if side == "base":
            row["baseline"] = r["versus"]
        row.update({f"{side} lift [95% CI]": _signed(r["lift"]) + ci, f"{side} q": q})
    return ["", "VERDICT: does the router beat static mixing of single models (mix) and the "
                "strongest baseline (base) at matched cost? Lift in accuracy points over its "
                "val-chosen frontier; q: Benjamini–Hochberg, * = q <= 0.05:",
            pd.DataFrame(list(rows.values())).fillna("—").to_string(index=False)]


def summary_text(data: dict, *, results_dir=None, report=None) -> str:
    """The summary of `analysis.load(...)`'s dict (see module doc); `report`: the path of
    report.html, named on the last line."""
    manifest, points = data["manifest"], data["points"]
    severities = severity_order(manifest, points)
    where = f" in {results_dir}" if results_dir else ""
    lines = [f"\nroutesweep: results{where}  (status: {manifest.get('status', 'unknown')})"]
    order = fam.order(manifest, points["family"])
    lines += verdict_text(verdict_table(seed_means(points), points, data.get("decisions"),
                                        severities=severities, families=order))
    for family in order:
        lines += family_text(data, family, fam.describe(manifest, family, points), severities)
    m_step = m_step_text(m_step_table(seed_means(points)))       # '' unless both M-steps ran
    lines += ["", m_step] if m_step else []
    variants = variant_text(variant_table(points, data.get("decisions")))   # '' unless both
    lines += ["", variants] if variants else []
    stopped = [t for t in manifest.get("trials", []) if t.get("stopped_early")]
    if stopped:
        lines += ["", f"{len(stopped)} trial(s) stopped early by the plateau rule "
                      f"(sweep.early_stop_patience; manifest.json trials: stopped_early, epochs)"]
    failed = [t for t in manifest.get("trials", []) if t.get("status") != "ok"]
    if failed:
        lines += ["", f"{len(failed)} trial(s) FAILED:"]
        for t in failed:
            info = fam.describe(manifest, t.get("family"))
            lines.append(f"  {t.get('family')} {info['lam']}={t.get('lam')} "
                         f"{info['tau']}={t.get('tau')} seed={t.get('seed')}: {t.get('error')}")
    timings = manifest.get("timings") or {}
    lines += ["", "Timings (s): " + ", ".join(f"{k}={v:.1f}" for k, v in timings.items())]
    if report:
        lines += ["", f"report: {report}"]
    return "\n".join(lines)
