"""The verdict: does the router beat (a) static mixing of single models and (b) the strongest
baseline, at matched cost? One row per family, router and severity and each of (a), (b).

* **Operating points** (chosen on val, `analysis.selection.val_frontier`): the router's
  settings on its whole-val-set Pareto frontier; each is reported at its TEST cost c.
* **The reference at cost c** is a mixture of two neighbouring reference settings A ≤ c ≤ B,
  run with probabilities (w, 1 − w), w = (c_B − c) / (c_B − c_A): it costs exactly c.
  (a) static mixing: the vertices of the single models' non-decreasing upper hull
      (`analysis.frontier.upper_hull`, the lift table's H(c)); (b) a threshold baseline
      (cascade, BranchyNet): its val-frontier settings in order of test cost. Below the cheapest
      (beyond the costliest) reference setting it is that setting alone: it costs more (less).
* **Strongest baseline**: the threshold baseline (a non-learned, non-single method with val
  rows) whose val frontier has the largest normalised hypervolume on val.
* **Lift**, paired per test sample: d_k[s, i] = correct of point k's seed s on sample i minus
  w·correct_A + (1 − w)·correct_B (the references' run of the same seed, else their lowest
  seed).
  The verdict's lift is d averaged over the K points (d̄[s, i]): the mean lift along the
  router's frontier. `accuracy` and `reference_accuracy` are the two sides' means over the same
  seeds (those every point has) and samples, so lift = accuracy − reference_accuracy.
* **CI and p**: the t of `analysis.intervals.crossed_variance` on d̄[S, n] (seed-to-seed and
  test-sample variation), two-sided p from the same t; without per-sample decisions, per-seed
  accuracy differences with t over seeds; one seed and no decisions: none. `q`:
  Benjamini–Hochberg over the whole table. `verdict`: which side is better where q <= 0.05.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.frontier import NOT_DEPLOYABLE, SINGLE_METHODS, is_learned, select, upper_hull
from analysis.intervals import (NONE, SAMPLES, SEEDS, TWO_WAY, crossed_variance,
                                decision_units, half_width, seed_variance)
from analysis.scores import normalised_hypervolume
from analysis.selection import candidates, val_frontier
from analysis.stats import setting_ids

ALPHA = 0.05
STATIC = "static mixing"
NOT_BASELINES = (*SINGLE_METHODS, *NOT_DEPLOYABLE, "random")   # not a threshold baseline
COLUMNS = ["family", "router", "severity", "versus", "reference", "points", "cost_unit",
           "cost_lo", "cost_hi", "accuracy", "reference_accuracy", "lift", "lift_lo",
           "lift_hi", "pvalue", "qvalue", "n_seeds", "ci_method", "verdict"]


def mixture(costs, at: float) -> list:
    """[(index, weight)]: `at` as a mixture of its two neighbours in `costs` (ascending) that
    costs exactly `at`; one setting (weight 1) at or beyond either end."""
    costs = np.asarray(costs, float)
    if at <= costs[0]:
        return [(0, 1.0)]
    if at >= costs[-1]:
        return [(len(costs) - 1, 1.0)]
    j = int(np.searchsorted(costs, at, side="right"))     # costs[j-1] <= at < costs[j]
    w = (costs[j] - at) / (costs[j] - costs[j - 1])
    return [(j - 1, float(w)), (j, float(1.0 - w))]


def lift_test(diffs, *, confidence=0.95) -> dict:
    """diffs [S, n] (paired per-sample lifts) or [S] (per-seed lifts, no decisions) ->
    lift (mean), lift_lo / lift_hi, two-sided pvalue of lift = 0, ci_method."""
    d = np.asarray(diffs, float)
    if d.ndim == 2:
        var, df = crossed_variance(d)
        method = TWO_WAY if len(d) > 1 else SAMPLES     # one seed: test samples only
    elif len(d) > 1:
        var, df = seed_variance(d)
        method = SEEDS
    else:
        return {"lift": float(d.mean()) if d.size else np.nan, "lift_lo": np.nan,
                "lift_hi": np.nan, "pvalue": np.nan, "ci_method": NONE}
    mean, var, df = float(d.mean()), float(var), float(df)
    half = float(half_width(var, df, confidence=confidence))
    if var > 0:
        p = float(2 * stats.t.sf(abs(mean) / np.sqrt(var), df))
    else:
        p = 1.0 if mean == 0 else 0.0              # identical values: no doubt either way
    return {"lift": mean, "lift_lo": mean - half, "lift_hi": mean + half, "pvalue": p,
            "ci_method": method}


def _runs(points: pd.DataFrame) -> dict:
    """{(setting_id, split, severity): {seed: point_id}} of the successful points."""
    ok = points[points["status"] == "ok"]
    ok = ok.assign(setting_id=setting_ids(ok))
    out: dict = {}
    for sid, split, sev, seed, pid in ok[["setting_id", "split", "severity", "seed",
                                          "point_id"]].itertuples(index=False):
        out.setdefault((sid, split, sev), {})[seed] = pid
    return out


def _seed_run(runs: dict, seed):
    """The run of `seed`, else the lowest seed's."""
    return runs[seed] if seed in runs else runs[min(runs)]


class _Paired:
    """Per-seed correctness (per test sample where decisions exist, else the point's
    accuracy) of the points, looked up by point id."""

    def __init__(self, points: pd.DataFrame, decisions: pd.DataFrame | None):
        self.units = decision_units(decisions) if decisions is not None and len(decisions) \
            else None
        self.accuracy = dict(zip(zip(points["point_id"], points["severity"]),
                                 points["accuracy"].astype(float)))

    def correct(self, pid, severity):
        if self.units is None:
            return pd.Series([self.accuracy.get((pid, severity), np.nan)], index=["_"])
        unit = self.units.get((pid, severity))
        return None if unit is None else unit["correct"]


def _correct_pair(runs: dict, mix: list, seed, paired: _Paired, severity):
    """(router, reference) correctness of one point's `seed`: Series on the same samples;
    the reference is the mixture Σ w · correct of its settings' runs; None if one is missing."""
    router = paired.correct(runs[seed], severity)
    ref = 0.0
    for ref_runs, w in mix:
        part = paired.correct(_seed_run(ref_runs, seed), severity)
        if router is None or part is None:
            return None
        ref = ref + w * part
    return pd.concat([router, ref], axis=1, keys=["router", "ref"]).dropna()


def _paired_means(router_runs: list, mixes: list, paired: _Paired, severity) -> dict:
    """{seed: DataFrame (router, ref) per sample, averaged over the K points}, for the seeds
    every point has; `router_runs[k]`: {seed: pid}, `mixes[k]`: [(ref runs, weight)]."""
    out = {}
    for key, seeds in _seed_rows(router_runs):
        per_point = [_correct_pair(r, m, seed, paired, severity)
                     for r, m, seed in zip(router_runs, mixes, seeds)]
        if all(p is not None for p in per_point):
            out[key] = pd.concat(per_point).groupby(level=0).mean() \
                if len(per_point) > 1 else per_point[0]
    return out


def _seed_rows(router_runs: list) -> list:
    """[(key, the seed of each point)]: the seeds every point has; when the points share none
    (an adaptive search runs some configurations on fewer seeds), their seeds by rank, as
    many as the fewest-seeded point has (one: the samples-only interval)."""
    common = sorted(set.intersection(*(set(r) for r in router_runs)))
    if common:
        return [(seed, [seed] * len(router_runs)) for seed in common]
    ranked = [sorted(r) for r in router_runs]
    return [(f"rank{i}", [r[i] for r in ranked]) for i in range(min(map(len, ranked)))]


def _matrices(pairs: dict) -> tuple:
    """{seed: (router, ref) frame} -> (router, ref) arrays [S, n] on the samples every seed
    has, or [S] without decisions (a point's accuracy per seed)."""
    if not pairs:
        return np.array([]), np.array([])
    frame = pd.concat(pairs, axis=1).dropna()
    router = frame.xs("router", axis=1, level=1).to_numpy(float).T
    ref = frame.xs("ref", axis=1, level=1).to_numpy(float).T
    if list(frame.index) == ["_"]:
        return router[:, 0], ref[:, 0]
    return router, ref


def _reference_rows(test: pd.DataFrame, ids: list) -> pd.DataFrame:
    """Test rows of setting ids `ids`, ascending cost (the reference curve's settings)."""
    rows = test[test["setting_id"].isin(ids) & test["accuracy"].notna()]
    return rows.sort_values(["cost", "accuracy"], kind="stable")


def _hull_ids(singles: pd.DataFrame) -> list:
    """Setting ids of the single models on the non-decreasing upper hull (H(c))."""
    hc, ha = upper_hull(cost=singles["cost"], accuracy=singles["accuracy"])
    return [singles.loc[(singles["cost"] == c) & (singles["accuracy"] == a),
                        "setting_id"].iloc[0] for c, a in zip(hc, ha)]


def strongest_baseline(frame: pd.DataFrame, *, ref_cost) -> tuple:
    """(method, its val-frontier setting ids) of the threshold baseline with the largest
    normalised val hypervolume (ties: the first method in name order); (None, [])."""
    best = (None, [], -np.inf)
    for method in sorted(set(frame.loc[~frame["method"].isin(NOT_BASELINES)
                                       & ~is_learned(frame), "method"])):
        rows = frame[frame["method"] == method]
        ids = val_frontier(rows)
        val = candidates(rows)
        val = val[val["setting_id"].isin(ids)]
        if len(val):
            hv = normalised_hypervolume(cost=val["cost"], accuracy=val["accuracy"],
                                        ref_cost=ref_cost)
            best = max(best, (method, ids, hv), key=lambda b: b[2])
    return best[:2]


def _compare(router: pd.DataFrame, ref: pd.DataFrame, runs: dict, paired: _Paired,
             severity, confidence) -> dict:
    """One comparison: the router's points (test rows) against the reference curve."""
    key = lambda r: runs.get((r["setting_id"], "test", severity), {})  # noqa: E731
    ref_recs = ref.to_dict("records")
    mixes = [mixture(ref["cost"], c) for c in router["cost"]]
    refs = [[(key(ref_recs[i]), w) for i, w in mix] for mix in mixes]
    router_runs = [key(r) for r in router.to_dict("records")]
    pairs = _paired_means(router_runs, refs, paired, severity) if all(router_runs) and all(
        key(r) for r in ref_recs) else {}
    acc, ref_acc = _matrices(pairs)
    return {"points": len(router), "cost_lo": router["cost"].min(),
            "cost_hi": router["cost"].max(), "accuracy": acc.mean() if acc.size else np.nan,
            "reference_accuracy": ref_acc.mean() if acc.size else np.nan,
            "n_seeds": len(pairs), **lift_test(acc - ref_acc, confidence=confidence)}


def _curves(test: pd.DataFrame, base, base_ids) -> list:
    """[(versus, what, reference test rows)] at one severity: static mixing, the baseline."""
    singles = test[test["method"].isin(SINGLE_METHODS) & test["accuracy"].notna()]
    out = []
    if len(singles):
        hull = _reference_rows(test, _hull_ids(singles))
        out.append((STATIC, "hull of " + ", ".join(map(str, hull["label"])), hull))
    if base is not None:
        out.append((base, f"{base}, {len(base_ids)} thresholds of its val frontier",
                    _reference_rows(test, base_ids)))
    return out


def _family_rows(agg: pd.DataFrame, family, severities, runs, paired, confidence) -> list:
    """The verdict rows of one family: per learned router (method, variant), severity and
    reference curve."""
    fam = agg[agg["family"] == family]
    unit = fam["cost_unit"].dropna().iloc[0] if fam["cost_unit"].notna().any() else None
    singles = fam[fam["method"].isin(SINGLE_METHODS)]
    base, base_ids = strongest_baseline(fam, ref_cost=singles["cost"].max()
                                        if len(singles) else np.nan)
    rows = []
    learned = fam[is_learned(fam)]
    learned = learned.assign(_variant=learned["variant"].fillna(""))   # the method as is first
    for (method, variant), g in learned.groupby(["method", "_variant"], sort=True):
        name = f"{method} {variant}" if variant else method
        ids = val_frontier(g)
        for sev in ["all", *severities]:
            test = select(fam, severity=sev)
            router = _reference_rows(test, ids)
            for versus, what, ref in _curves(test, base, base_ids):
                if len(router) and len(ref):
                    rows.append({"family": family, "router": name, "severity": sev,
                                 "versus": versus, "reference": what, "cost_unit": unit,
                                 **_compare(router, ref, runs, paired, sev, confidence)})
    return rows


def verdict_table(agg: pd.DataFrame, points: pd.DataFrame, decisions=None, *, severities=(),
                  families=None, confidence=0.95) -> pd.DataFrame:
    """The verdict (module doc) of every family in `agg` (`analysis.stats.seed_means` or
    `aggregate_seeds` of `points`); `decisions`: per-sample correctness (None: seeds only);
    `severities`: the levels in order; `families`: their order (None: as found). Columns
    COLUMNS."""
    runs, paired = _runs(points), _Paired(points, decisions)
    rows = []
    for family in families or dict.fromkeys(agg["family"]):
        rows += _family_rows(agg, family, list(severities), runs, paired, confidence)
    out = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("qvalue", "verdict")])
    return _with_verdict(out)


def _with_verdict(out: pd.DataFrame) -> pd.DataFrame:
    """`out` plus qvalue (BH over the rows with a p-value) and a verdict word per row."""
    q = np.full(len(out), np.nan)
    has_p = out["pvalue"].notna().to_numpy()
    if has_p.any():
        q[has_p] = stats.false_discovery_control(out.loc[has_p, "pvalue"].to_numpy(float))
    out = out.assign(qvalue=q)
    lift, better = out["lift"].to_numpy(float), q <= ALPHA
    words = np.select([np.isnan(q), better & (lift > 0), better & (lift < 0)],
                      ["no test (1 seed, no per-sample decisions)", "router better",
                       "reference better"], "no significant difference")
    return out.assign(verdict=words)[COLUMNS]
