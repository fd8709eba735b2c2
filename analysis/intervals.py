"""Confidence intervals of a configuration's seed mean: seed-to-seed AND test-sample variation.

What is estimated. A configuration (everything but the seed) is trained with S seeds; every
seed is evaluated on the SAME n test samples (paired). Let y[s, i] be seed s's value on test
sample i (correct 0/1, or its cost). The reported value is the grand mean ȳ = mean_s mean_i
y[s, i] (= the mean of the seeds' accuracies). The interval covers, at the nominal level,

    μ = E_seed E_x [ y ]: the expected accuracy (cost) of one more training seed on new test
        data from the same distribution (not just these seeds, not just this test set).

Derivation (crossed random effects, seeds × samples; Searle, Casella & McCulloch 1992, ch. 4):
y[s, i] = μ + α_s + β_i + e[s, i] with seed effects α (variance σ²_α), sample effects β
(sample difficulty, shared by all seeds: σ²_β) and seed × sample disagreement e (σ²_e). Since
the test set is shared, Var(ȳ) = σ²_α/S + (σ²_β/n + σ²_e/(S n)). The two-way ANOVA mean squares

    MS_seed = n Σ_s (ȳ_s· − ȳ)² / (S−1)                 E = n σ²_α + σ²_e
    MS_samp = S Σ_i (ȳ_·i − ȳ)² / (n−1)                 E = S σ²_β + σ²_e
    MS_res  = Σ (y − ȳ_s· − ȳ_·i + ȳ)² / ((S−1)(n−1))   E = σ²_e

give Var(ȳ) = A + B with A = MS_seed/(S n) (estimates σ²_α/S + σ²_e/(S n): the variance of a
mean of S independent per-seed accuracies; k = S−1 df) and B = (MS_samp − MS_res)/(S n)
(estimates σ²_β/n, the shared test-sample part; floored at 0; Satterthwaite df ν_B ≈ n). The
interval is

    ȳ ± t_{ν, (1+c)/2} √(A + B),    ν = (γA + B)² / ((γA)²/k + B²/ν_B),  γ = (k+4)/k,

Satterthwaite's df for a sum of independently estimated variances, with a small-sample
correction: the seed part enters ν at γ = (S+3)/(S−1) times its estimate (3 seeds: 3, 5 seeds:
2). It is the t-interval over seeds when A dominates (ν → S−1; 3 seeds: t = 4.30, not z =
1.96) and the paired test-sample interval when B dominates (ν large). Why γ: this is the
Behrens–Fisher problem (no exact interval exists). Plain Satterthwaite (γ = 1) undercovers with
few seeds: its ν is as noisy as MS_seed (χ² with 2 df for 3 seeds) and too large exactly when
MS_seed is small by chance. With A ∝ χ²_k and B known, numerically, its coverage over all
ratios B/A is 0.923–0.951 for k = 2 (0.942–0.951 for k = 4); with γ = (k+4)/k it is
0.947–0.962 (0.951–0.956), and Banerjee's conservative sum of per-part half-widths 0.950–0.975.
Measured on simulated Bernoulli correctness (tests/test_analysis_intervals.py, slow grid of 36
populations: mean accuracy 0.56–0.96, seeds' accuracy SD 0–6 points, 100 or 1000 test samples;
4000 experiments each): coverage 0.940–0.967 with 3 seeds, 0.941–0.964 with 5 (plain
Satterthwaite: 0.920–0.960 with 3 seeds, 11 of 36 populations below 0.93). It falls below 0.93
when seed effects are large AND skewed (accuracy near 100 % with a seed SD ≳ 5 points), as for
any t-interval over 3–5 seeds; 2 seeds (k = 1) are weaker: down to ~0.93 even in theory.

Unit of a test sample: `sample_id`. For a severity level one row is one unit; for the whole
test set ('all') the rows of one sample_id (the same image at every severity) are averaged into
one unit, because they are correlated and not independent draws.

With less data the interval covers less, and `ci_method` / `ci_note` say so:
* 1 seed, per-sample decisions: Var over samples / n with t_{n−1}: the accuracy of THAT trained
  model on new test data (a single model is one training run; seed variation is not estimable).
* ≥ 2 seeds, no decisions (none recorded, the val split, seeds not paired): Var over seeds / S
  with t_{S−1}: the expected accuracy of a new seed on THIS test set (test-sample variation
  omitted).
* 1 seed and no decisions, or no successful seed: no interval (NaN).
An interval of zero width means the values are identical (e.g. the cost of a single model).
Accuracy intervals are clipped to [0, 1].
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

TWO_WAY = "t, seeds × test samples (Satterthwaite df, small-sample corrected)"
SAMPLES = "t, test samples (1 seed)"
SEEDS = "t, seeds only (no per-sample decisions)"
NONE = "none"
COVERS = {TWO_WAY: "a new training seed on new test data",
          SAMPLES: "that one trained model on new test data",
          SEEDS: "a new training seed on this test set"}


def crossed_variance(y) -> tuple:
    """y [..., S, n] (seeds x paired samples) -> (V, df), each [...]: the estimated variance
    of the grand mean and the df of its t (module doc); S = 1: test samples only, n-1 df."""
    y = np.asarray(y, float)
    s, n = y.shape[-2:]
    g = y.mean(axis=(-2, -1), keepdims=True)
    a, b = y.mean(axis=-1, keepdims=True), y.mean(axis=-2, keepdims=True)  # [..,S,1], [..,1,n]
    ms_samp = s * ((b - g) ** 2).sum(axis=(-2, -1)) / (n - 1)
    if s == 1:
        return ms_samp / n, np.full(ms_samp.shape, n - 1.0)
    k, df_res = s - 1, (s - 1) * (n - 1)
    ms_seed = n * ((a - g) ** 2).sum(axis=(-2, -1)) / k
    ms_res = ((y - a - b + g) ** 2).sum(axis=(-2, -1)) / df_res
    seed_part = ms_seed / (s * n)                                   # A: k df
    samp_part = np.maximum(ms_samp - ms_res, 0.0) / (s * n)         # B
    samp_df = np.divide((ms_samp - ms_res) ** 2, ms_samp ** 2 / (n - 1) + ms_res ** 2 / df_res,
                        out=np.full(seed_part.shape, np.inf), where=samp_part > 0)
    gamma_a = (k + 4) / k * seed_part  # small-sample correction of the df (module doc)
    denom = gamma_a ** 2 / k + np.where(samp_part > 0, samp_part ** 2 / samp_df, 0.0)
    df = np.divide((gamma_a + samp_part) ** 2, denom, out=np.full(denom.shape, np.inf),
                   where=denom > 0)
    return seed_part + samp_part, df


def seed_variance(values) -> tuple:
    """Per-seed values [..., S] alone -> (Var over seeds / S, S - 1): no test-sample part."""
    v = np.asarray(values, float)
    s = v.shape[-1]
    return v.var(axis=-1, ddof=1) / s, np.full(v.shape[:-1], s - 1.0)


def half_width(var, df, *, confidence=0.95):
    """t_{df, (1+confidence)/2} sqrt(var), elementwise; var 0 -> 0 (identical values)."""
    var = np.asarray(var, float)
    t = stats.t.ppf((1 + confidence) / 2, df)
    return np.where(var > 0, t * np.sqrt(np.maximum(var, 0.0)), 0.0)


def decision_units(decisions: pd.DataFrame) -> dict:
    """{(point_id, severity): DataFrame indexed by sample_id with mean correct and cost}, for
    every severity level and 'all' (a sample_id's rows averaged over its severities)."""
    d = decisions[["point_id", "severity", "sample_id", "correct", "cost"]].astype(
        {"correct": float, "cost": float})
    levels = d.groupby(["point_id", "severity", "sample_id"], sort=True)[["correct", "cost"]].mean()
    whole = d.groupby(["point_id", "sample_id"], sort=True)[["correct", "cost"]].mean()
    out = _split_by(levels.reset_index(), ["point_id", "severity"])
    out.update({(pid, "all"): frame for (pid,), frame in
                _split_by(whole.reset_index(), ["point_id"]).items()})
    return out


def _split_by(frame: pd.DataFrame, keys: list) -> dict:
    """{key tuple: its rows' (correct, cost) indexed by sample_id} of a frame sorted by keys:
    one slice per run of equal keys (a groupby + droplevel per group costs ~10x more)."""
    cols = [frame[k].to_numpy() for k in keys]
    n = len(frame)
    change = np.zeros(n, bool)
    change[:1] = True
    for c in cols:
        change[1:] |= c[1:] != c[:-1]
    starts = np.flatnonzero(change).tolist() + [n]
    sid, vals = frame["sample_id"].to_numpy(), frame[["correct", "cost"]].to_numpy(float)
    return {tuple(c[a] for c in cols): pd.DataFrame(vals[a:b], columns=["correct", "cost"],
                                                     index=pd.Index(sid[a:b], name="sample_id"))
            for a, b in zip(starts[:-1], starts[1:])}


def paired_units(units: list):
    """Per-seed unit frames (`decision_units` values) -> (correct [S, n], cost [S, n]) on the
    sample_ids every seed has; None if a seed has none or fewer than 2 are shared."""
    if not units or any(u is None or len(u) == 0 for u in units):
        return None
    shared = units[0].index
    for u in units[1:]:
        shared = shared.intersection(u.index)
    if len(shared) < 2:
        return None
    return tuple(np.stack([u.loc[shared, col].to_numpy(float) for u in units])
                 for col in ("correct", "cost"))


def seed_intervals(acc, cost, units, *, confidence=0.95) -> dict:
    """Intervals of one configuration from its successful seeds: acc, cost [S] (point values,
    the centres) and `units` (one `decision_units` frame per seed, None where absent, or None
    when the run has no decisions at all). Returns accuracy_lo/hi, cost_lo/hi, ci_method and
    ci_note (module doc for the cases)."""
    acc, cost = np.asarray(acc, float), np.asarray(cost, float)
    s = len(acc)
    matrices = None if units is None else paired_units(units)
    if s == 0:
        return _no_interval("no successful seed")
    if matrices is not None:
        method, note = (TWO_WAY, "") if s > 1 else (SAMPLES, "seed variation not estimable")
        halves = [half_width(*crossed_variance(m), confidence=confidence) for m in matrices]
    elif s > 1:
        why = "no per-sample decisions" if units is None else "seeds' decisions not paired"
        method, note = SEEDS, why + ": test-sample variation not included"
        halves = [half_width(*seed_variance(v), confidence=confidence) for v in (acc, cost)]
    else:
        return _no_interval("1 seed and no per-sample decisions")
    out = {"ci_method": method, "ci_note": note}
    for name, centre, half in zip(("accuracy", "cost"), (acc.mean(), cost.mean()), halves):
        out[name + "_lo"], out[name + "_hi"] = float(centre - half), float(centre + half)
    out["accuracy_lo"] = max(out["accuracy_lo"], 0.0)  # an accuracy lies in [0, 1]
    out["accuracy_hi"] = min(out["accuracy_hi"], 1.0)
    return out


def _no_interval(reason: str) -> dict:
    return {"accuracy_lo": np.nan, "accuracy_hi": np.nan, "cost_lo": np.nan, "cost_hi": np.nan,
            "ci_method": NONE, "ci_note": reason}


def caption(rows: pd.DataFrame, *, confidence=0.95) -> str:
    """One sentence for a report: each interval method used in `rows` (what it covers, how many
    configurations), and how many have no interval and why."""
    if rows.empty or "ci_method" not in rows:
        return ""
    counts = rows.groupby("ci_method", sort=False).size()
    parts = [f"{method} — covers {COVERS[method]}: {counts[method]}"
             for method in (TWO_WAY, SAMPLES, SEEDS) if method in counts]
    none = rows[rows["ci_method"] == NONE]
    if len(none):
        reasons = "; ".join(f"{r}: {k}" for r, k in none.groupby("ci_note").size().items())
        parts.append(f"no interval drawn ({reasons})")
    return (f"{confidence:.0%} intervals by method (number of configuration × severity "
            "points): " + "; ".join(parts) + ".")
