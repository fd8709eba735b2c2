"""Seed aggregation with confidence intervals, and McNemar's exact paired test.

* A *configuration* is one (family, method, variant, lam, tau, threshold, split, severity):
  everything but the seed. Its accuracy and cost are the means over its successful seeds, with
  an interval from `analysis.intervals`: a t-interval whose variance adds seed-to-seed and
  test-sample variation (seeds × paired test samples of `decisions.parquet`, Satterthwaite df),
  or what the data supports (1 seed: test samples only; no decisions: seeds only; else none);
  the method is in `ci_method`, a caveat or the reason for no interval in `ci_note`.
* *McNemar's exact test* on paired correctness of two classifiers over the same samples:
  b = #(A right, B wrong), c = #(A wrong, B right); under H0 b ~ Binomial(b + c, 1/2); the
  two-sided p-value is `scipy.stats.binomtest(b, b + c, 0.5)`; p = 1 when b + c = 0.
* *q-values*: Benjamini–Hochberg (`scipy.stats.false_discovery_control`) over the tests of one
  table as the report shows it: one family, either the whole test set ('all') or the severity
  levels together. Rejecting where q <= α keeps the expected share of false discoveries <= α.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.frontier import SINGLE_METHODS, reference_models, select
from analysis.intervals import decision_units, seed_intervals
from analysis.selection import val_frontier

CONFIG = ["family", "method", "variant", "lam", "tau", "threshold", "split", "severity",
          "cost_unit"]
_ROUND = 9  # float keys (lam, tau, threshold) are grouped after rounding to this many digits


def config_key(frame: pd.DataFrame) -> pd.DataFrame:
    """The CONFIG columns of `frame`, float keys rounded, missing values as None (for grouping)."""
    key = frame[CONFIG].copy()
    for col in ("lam", "tau", "threshold"):
        key[col] = key[col].astype(float).round(_ROUND)
    return key.astype(object).where(key.notna(), None)


def config_label(row) -> str:
    """Short human name of a configuration, e.g. 'gater λ=0.7 τ=1' or 'expert deit_s'."""
    parts = [str(row["method"])]
    if row.get("variant") is not None and not pd.isna(row.get("variant")):
        parts.append(str(row["variant"]))
    for sym, col in (("λ", "lam"), ("τ", "tau"), ("thr", "threshold")):
        value = row.get(col)
        if value is not None and not pd.isna(value):
            parts.append(f"{sym}={float(value):g}")
    return " ".join(parts)


def _aggregate_group(acc, cost, ok, seeds, pids, *, severity, units, confidence) -> dict:
    seed_units = None
    if units:  # the decisions of each successful seed; None when no seed has any
        seed_units = [units.get((p, severity)) for p in pids[ok]]
        seed_units = None if all(u is None for u in seed_units) else seed_units
    n_ok = int(ok.sum())
    return {"accuracy": acc[ok].mean() if n_ok else np.nan,
            "cost": cost[ok].mean() if n_ok else np.nan,
            **seed_intervals(acc[ok], cost[ok], seed_units, confidence=confidence),
            "n_seeds": n_ok, "n_failed": int((~ok).sum()),
            "seeds": ",".join(str(s) for s in sorted(set(seeds[ok].tolist()))),
            "point_ids": list(pids[ok])}


def aggregate_seeds(points: pd.DataFrame, decisions: pd.DataFrame | None = None, *,
                    confidence=0.95) -> pd.DataFrame:
    """One row per configuration (CONFIG columns): seed means of accuracy and cost with CIs
    (module doc; `decisions` None or empty: seeds only), ci_method and ci_note.

    Also n_seeds (successful), n_failed, seeds ('0,1,2'), point_ids (list), label and
    setting_id. Configurations whose seeds all failed are kept with NaN accuracy and cost.
    """
    units = decision_units(decisions) if decisions is not None and len(decisions) else {}
    key = config_key(points)
    codes = key.groupby(CONFIG, dropna=False, sort=True).ngroup().to_numpy()
    arrays = [points["accuracy"].to_numpy(float), points["cost"].to_numpy(float),
              (points["status"] == "ok").to_numpy(), points["seed"].to_numpy(),
              points["point_id"].to_numpy()]
    rows = []
    for code in range(codes.max() + 1 if len(codes) else 0):
        m = codes == code
        row = dict(zip(CONFIG, key.iloc[int(np.argmax(m))].tolist()))
        row.update(_aggregate_group(*(a[m] for a in arrays), severity=row["severity"],
                                    units=units, confidence=confidence))
        rows.append(row)
    return _finish_aggregate(pd.DataFrame(rows))


def _finish_aggregate(out: pd.DataFrame) -> pd.DataFrame:
    """Key columns as objects (None for missing), numbers as floats, label and setting_id."""
    out = out.astype({c: object for c in CONFIG}).where(out.notna(), None)
    for col in ("lam", "tau", "threshold", "accuracy", "accuracy_lo", "accuracy_hi",
                "cost", "cost_lo", "cost_hi"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    out["label"] = [config_label(r) for r in out.to_dict("records")]
    out["setting_id"] = setting_ids(out)
    return out


def seed_means(points: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration with a successful seed: the seed means of accuracy and cost
    (no intervals: fast, for the terminal summary), n_seeds, label and setting_id."""
    ok = points[points["status"] == "ok"]
    frame = config_key(ok).assign(accuracy=ok["accuracy"].to_numpy(float),
                                  cost=ok["cost"].to_numpy(float), n_seeds=1)
    out = (frame.groupby(CONFIG, dropna=False, sort=True)
           .agg(accuracy=("accuracy", "mean"), cost=("cost", "mean"), n_seeds=("n_seeds", "sum"))
           .reset_index())
    out = out.astype({c: object for c in CONFIG}).where(out.notna(), None)
    for col in ("lam", "tau", "threshold", "accuracy", "cost"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    out["label"] = [config_label(r) for r in out.to_dict("records")]
    out["setting_id"] = setting_ids(out)
    return out


def setting_ids(frame: pd.DataFrame) -> list:
    """A string id of each row's configuration without split and severity, for joins."""
    cols = [c for c in CONFIG if c not in ("split", "severity")]
    key = config_key(frame)[cols]
    return ["|".join("" if v is None else str(v) for v in row) for row in key.itertuples(False)]


def mcnemar_exact(*, a_correct, b_correct) -> dict:
    """McNemar's exact test of paired bool arrays: {'n', 'b', 'c', 'pvalue'} (see module doc)."""
    a = np.asarray(a_correct, bool)
    b_ = np.asarray(b_correct, bool)
    if a.shape != b_.shape:
        raise ValueError("paired arrays must have the same shape")
    b = int(np.sum(a & ~b_))
    c = int(np.sum(~a & b_))
    p = 1.0 if b + c == 0 else float(stats.binomtest(b, b + c, 0.5).pvalue)
    return {"n": int(a.size), "b": b, "c": c, "pvalue": p}


def _join(decisions_a: pd.DataFrame, decisions_ref: pd.DataFrame) -> pd.DataFrame:
    """Paired samples: inner join on (sample_id, severity); columns correct, correct_ref."""
    cols = ["sample_id", "severity", "correct"]
    return decisions_a[cols].merge(decisions_ref[cols], on=["sample_id", "severity"],
                                   suffixes=("", "_ref"))


def _test_joined(joined: pd.DataFrame, severity: str) -> dict:
    if severity != "all":
        joined = joined[joined["severity"] == severity]
    a, r = joined["correct"].to_numpy(bool), joined["correct_ref"].to_numpy(bool)
    out = mcnemar_exact(a_correct=a, b_correct=r)
    out["accuracy"] = float(a.mean()) if len(a) else np.nan
    out["accuracy_ref"] = float(r.mean()) if len(r) else np.nan
    return out


def paired_test(decisions: pd.DataFrame, *, point_id: str, reference_id: str,
                severity: str = "all") -> dict:
    """McNemar of point vs reference on the test samples both evaluated, joined on
    (sample_id, severity); `severity` 'all' uses every sample. Adds accuracies of both."""
    joined = _join(decisions[decisions["point_id"] == point_id],
                   decisions[decisions["point_id"] == reference_id])
    return _test_joined(joined, severity)


def _reference_for(seed, ref_ids: list, seed_of: dict):
    """The reference point with the same seed when it exists, else the one with the lowest seed."""
    same = [p for p in ref_ids if seed_of.get(p) == seed]
    return same[0] if same else min(ref_ids, key=lambda p: seed_of.get(p, 0))


def significance_table(agg: pd.DataFrame, points: pd.DataFrame, decisions: pd.DataFrame,
                       severities=()) -> pd.DataFrame:
    """McNemar's exact test of each configuration on the family's VAL frontier (whole val
    set, `analysis.selection.val_frontier`: chosen without test data; single models and the
    settings without val rows, random and oracle, are not tested), against the family's
    reference single model (`reference_models`: the most accurate one), seed by seed, on the
    test samples of every severity and overall ('all'). A router seed is paired with the
    single model's run of the same seed when there is one, else its lowest seed.
    severities: the levels in order (`analysis.io.severity_order`); others follow as found."""
    if decisions.empty:
        return pd.DataFrame()
    seed_of = dict(zip(points["point_id"], points["seed"]))
    chosen = {sid for _, g in agg.groupby("family", sort=False) for sid in val_frontier(g)}
    front = select(agg, severity="all")
    front = front[front["setting_id"].isin(chosen) & ~front["method"].isin(SINGLE_METHODS)
                  & front["accuracy"].notna()].sort_values(["family", "cost", "accuracy"])
    found = list(dict.fromkeys(decisions["severity"]))
    severities = ["all"] + [s for s in severities if s in found] + [
        s for s in found if s not in severities]
    by_point = dict(tuple(decisions.groupby("point_id", sort=False)))
    rows = []
    for r in front.to_dict("records"):
        ref = reference_models(agg, family=r["family"], severity="all")
        if ref is not None:
            rows += _config_tests(r, ref, by_point, seed_of, severities)
    return with_qvalues(pd.DataFrame(rows), "pvalue")


def _config_tests(config: dict, ref: dict, by_point: dict, seed_of: dict, severities) -> list:
    """Rows of McNemar results of one configuration's seeds against the reference model."""
    rows, empty = [], pd.DataFrame(columns=["sample_id", "severity", "correct"])
    for pid in config["point_ids"]:
        ref_id = _reference_for(seed_of.get(pid), ref["strong_point_ids"], seed_of)
        joined = _join(by_point.get(pid, empty), by_point.get(ref_id, empty))
        for sev in severities:
            test = _test_joined(joined, sev)
            if test["n"]:
                rows.append({"family": config["family"], "label": config["label"],
                             "reference": ref["strong_label"], "seed": seed_of.get(pid),
                             "severity": sev, "point_id": pid, **test})
    return rows


def summarise_significance(sig: pd.DataFrame) -> pd.DataFrame:
    """Per configuration and severity: seeds tested, mean accuracies, the largest (most
    conservative) p-value over its seeds, and `q`: Benjamini–Hochberg of those p_max over
    the summary's own table (module doc)."""
    if sig.empty:
        return sig
    keys = ["family", "label", "reference", "severity"]
    out = sig.groupby(keys, sort=False).agg(
        seeds=("seed", "nunique"), accuracy=("accuracy", "mean"),
        accuracy_ref=("accuracy_ref", "mean"), p_max=("pvalue", "max"))
    return with_qvalues(out.reset_index(), "p_max", into="q")


def with_qvalues(tests: pd.DataFrame, column: str, *, into="qvalue") -> pd.DataFrame:
    """`tests` plus column `into`: Benjamini–Hochberg q-values of `column`, computed per
    table: per family, the whole-test-set rows ('all') apart from the severity levels."""
    if tests.empty:
        return tests
    table = tests["family"].astype(str) + "|" + (tests["severity"] == "all").astype(str)
    q = tests.groupby(table, sort=False)[column].transform(
        lambda p: stats.false_discovery_control(p.to_numpy(float), method="bh"))
    return tests.assign(**{into: q.to_numpy(float)})
