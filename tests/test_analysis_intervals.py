"""Intervals of seed means (analysis/intervals.py): hand-worked variance parts, the fallbacks
when data is missing, the plumbing through aggregate_seeds and the report, and coverage of
known populations by simulation (fast: two regimes; slow: a grid)."""
import itertools
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit

from analysis import load
from analysis.embed import figures_in
from analysis.intervals import (NONE, SAMPLES, SEEDS, TWO_WAY, caption, crossed_variance,
                                half_width, seed_intervals, seed_variance)
from analysis.report import build_html
from analysis.stats import aggregate_seeds
from analysis.tables import build_tables
from tests.fake_results import write_fake_results

T975 = stats.t.ppf(0.975, 49 / 30)


def test_crossed_variance_by_hand():
    # 2 seeds x 3 samples. Seed means 2/3, 1/3; sample means 1, 1/2, 0; grand mean 1/2.
    # MS_seed = 3 * (1/36 + 1/36) / 1 = 1/6; MS_samp = 2 * (1/4 + 0 + 1/4) / 2 = 1/2;
    # residuals ∓1/6, ±1/3, ∓1/6 -> MS_res = (4/36 + 2/9) / 2 = 1/6.
    # A = MS_seed / 6 = 1/36, B = (MS_samp - MS_res) / 6 = 1/18, V = 1/12.
    # nu_B = (1/3)² / ((1/2)²/2 + (1/6)²/2) = 0.8; gamma = (1 + 4)/1 = 5:
    # nu = (5/36 + 2/36)² / ((5/36)² / 1 + (2/36)² / 0.8) = 49 / (25 + 5) = 49/30.
    var, df = crossed_variance([[1, 1, 0], [1, 0, 0]])
    assert var == pytest.approx(1 / 12) and df == pytest.approx(49 / 30)


def test_crossed_variance_laws():
    rng = np.random.default_rng(0)
    y = (rng.uniform(size=(4, 50)) < 0.7).astype(float)
    # one seed: the variance of a mean of n samples, n - 1 df
    var, df = crossed_variance(y[:1])
    assert var == pytest.approx(y[0].var(ddof=1) / 50) and df == 49
    # seeds that agree on every sample: no seed part; the sample part with n - 1 df
    same = np.repeat(y[:1], 3, axis=0)
    var, df = crossed_variance(same)
    assert var == pytest.approx(y[0].var(ddof=1) / 50) and df == pytest.approx(49)
    # every sample equally hard (a constant per seed): seed part only, the t over seeds
    flat = np.repeat(y[:, :1] + np.arange(4)[:, None], 50, axis=1)
    var, df = crossed_variance(flat)
    assert var == pytest.approx(seed_variance(flat.mean(1))[0]) and df == pytest.approx(3)
    # identical values: zero variance, zero width
    assert half_width(*crossed_variance(np.ones((3, 5)))) == 0
    # vectorised over leading axes
    stacked = crossed_variance(np.stack([y, 1 - y]))
    assert np.allclose(stacked[0], crossed_variance(y)[0])


def _units(*rows):
    """One seed's unit frame (decision_units' value) from per-sample correct values."""
    return [pd.DataFrame({"correct": r, "cost": np.asarray(r, float) + 1.0},
                         index=pd.Index(range(len(r)), name="sample_id")) for r in rows]


def test_seed_intervals_say_which_method_and_why():
    two = seed_intervals([2 / 3, 1 / 3], [5 / 3, 4 / 3], _units([1, 1, 0], [1, 0, 0]))
    half = T975 * np.sqrt(1 / 12)
    assert two["ci_method"] == TWO_WAY and two["ci_note"] == ""
    assert two["accuracy_lo"] == pytest.approx(max(0.5 - half, 0))
    assert two["cost_lo"] == pytest.approx(1.5 - half)  # cost: the same matrix + 1
    assert two["cost_hi"] == pytest.approx(1.5 + half)
    one = seed_intervals([0.75], [1.75], _units([1, 1, 1, 0]))
    # t_{3} * sqrt(var([1,1,1,0]) / 4) = 3.182 * 0.25 = 0.7956 -> [0, 1] after clipping
    assert (one["ci_method"], one["accuracy_lo"], one["accuracy_hi"]) == (SAMPLES, 0.0, 1.0)
    assert one["cost_hi"] == pytest.approx(1.75 + stats.t.ppf(.975, 3) * 0.25)
    seeds = seed_intervals([0.80, 0.82, 0.84], [1.0, 1.0, 1.0], None)
    assert seeds["ci_method"] == SEEDS and "test-sample variation not included" in seeds["ci_note"]
    assert seeds["accuracy_hi"] == pytest.approx(0.82 + stats.t.ppf(.975, 2) * 0.02 / np.sqrt(3))
    assert seeds["cost_lo"] == seeds["cost_hi"] == 1.0  # identical costs: zero width
    unpaired = seed_intervals([0.8, 0.9], [1.0, 2.0], _units([1, 0]) + [None])
    assert unpaired["ci_method"] == SEEDS and unpaired["ci_note"].startswith("seeds' decisions")
    for got, reason in ((seed_intervals([0.8], [1.0], None), "1 seed and no per-sample decisions"),
                        (seed_intervals([], [], None), "no successful seed")):
        assert got["ci_method"] == NONE and got["ci_note"] == reason
        assert all(np.isnan(got[c]) for c in ("accuracy_lo", "accuracy_hi", "cost_lo", "cost_hi"))


def _run():
    """A gater config with 2 seeds and a single model, samples 0-2 at clean and severe."""
    correct = {("r0", "clean"): [1, 1, 0], ("r0", "severe"): [1, 0, 0],
               ("r1", "clean"): [1, 0, 0], ("r1", "severe"): [0, 0, 0],
               ("s", "clean"): [1, 1, 1], ("s", "severe"): [1, 0, 1]}
    decisions = pd.DataFrame([dict(point_id=p, sample_id=i, severity=sev, label=0, target="a",
                                   correct=bool(c), cost=1.0 + c)
                              for (p, sev), cs in correct.items() for i, c in enumerate(cs)])
    rows = []
    for pid, method, seed in (("r0", "gater", 0), ("r1", "gater", 1), ("s", "expert", 0)):
        for sev in ("all", "clean", "severe"):
            d = decisions[(decisions["point_id"] == pid)
                          & ((decisions["severity"] == sev) | (sev == "all"))]
            rows.append(dict(point_id=pid, family="experts", method=method,
                             variant="sq" if method == "expert" else None,
                             lam=.7 if method == "gater" else None,
                             tau=1. if method == "gater" else None, threshold=None,
                             split="test", severity=sev, cost_unit="ms", n=len(d), status="ok",
                             seed=seed, accuracy=d["correct"].mean(), cost=d["cost"].mean()))
    return pd.DataFrame(rows), decisions


def test_aggregate_seeds_pairs_seeds_on_samples_and_clusters_severities():
    points, decisions = _run()
    agg = aggregate_seeds(points, decisions).set_index(["method", "severity"])
    clean = agg.loc[("gater", "clean")]  # the hand-worked 2 x 3 matrix
    assert clean["ci_method"] == TWO_WAY and clean["accuracy"] == pytest.approx(0.5)
    assert clean["cost_hi"] == pytest.approx(1.5 + T975 * np.sqrt(1 / 12))  # cost = correct + 1
    assert (clean["accuracy_lo"], clean["accuracy_hi"]) == (0.0, 1.0)  # 3 samples: clipped
    # 'all': one unit per sample_id (its severities averaged): [[1, .5, 0], [.5, 0, 0]]
    whole = agg.loc[("gater", "all")]
    half = half_width(*crossed_variance([[1, .5, 0], [.5, 0, 0]]))
    assert whole["accuracy"] == pytest.approx(1 / 3)
    assert whole["cost_lo"] == pytest.approx(4 / 3 - half)
    assert whole["cost_hi"] == pytest.approx(4 / 3 + half)
    assert agg.loc[("expert", "all"), "ci_method"] == SAMPLES
    # the same points without decisions: seeds only, and no interval for one seed
    bare = aggregate_seeds(points).set_index(["method", "severity"])
    assert bare.loc[("gater", "clean"), "ci_method"] == SEEDS
    assert bare.loc[("expert", "all"), "ci_method"] == NONE


def test_caption_names_methods_counts_and_reasons():
    points, decisions = _run()
    text = caption(aggregate_seeds(points, decisions))
    assert f"{TWO_WAY} — covers a new training seed on new test data: 3" in text
    assert f"{SAMPLES} — covers that one trained model on new test data: 3" in text
    text = caption(aggregate_seeds(points))
    assert "no interval drawn (1 seed and no per-sample decisions: 3)" in text


@pytest.mark.slow                      # builds the whole report (~8 s)
def test_report_names_the_method_and_says_where_there_is_none(tmp_path):
    run = write_fake_results(tmp_path / "run")
    page, _ = build_html(build_tables(load(run)))
    assert TWO_WAY in page and "bootstrap" not in page
    (run / "decisions.parquet").unlink()
    page, _ = build_html(build_tables(load(run)))
    assert SEEDS in page and "no interval drawn (1 seed and no per-sample decisions" in page
    hovers = json.dumps(figures_in(page), ensure_ascii=False)     # the figures' data
    assert "(no interval: 1 seed and no per-sample decisions)" in hovers  # the hover


# --- coverage ------------------------------------------------------------------------------

def simulate(rng, *, seeds, n, reps, logit_mean, logit_sd, seed_sd):
    """`reps` experiments: a test set of n samples drawn from an infinite population (sample i
    has logit z_i ~ N(logit_mean, logit_sd)), `seeds` training seeds (seed s shifts every logit
    by a_s ~ N(0, seed_sd)), correctness y ~ Bernoulli(expit(z_i + a_s)), shared test set.
    Returns y bool [reps, seeds, n] and the true mean accuracy mu = E expit(z + a)."""
    z = rng.normal(logit_mean, logit_sd, (reps, 1, n))
    a = rng.normal(0.0, seed_sd, (reps, seeds, 1))
    y = rng.uniform(size=(reps, seeds, n)) < expit(z + a)
    # z + a ~ N(logit_mean, hypot(logit_sd, seed_sd)): mu by Gauss-Hermite quadrature
    x, w = np.polynomial.hermite.hermgauss(80)
    sd = np.hypot(logit_sd, seed_sd)
    return y, float(np.sum(w * expit(logit_mean + np.sqrt(2) * sd * x)) / np.sqrt(np.pi))


def coverage(rng, *, reps, chunk=1000, **population) -> tuple:
    """(share of `reps` simulated experiments whose 95% interval contains mu, mu), simulated
    `chunk` experiments at a time (memory)."""
    hits = 0
    for size in np.diff(np.r_[0:reps:chunk, reps]):
        y, mu = simulate(rng, reps=int(size), **population)
        y = y.astype(np.float32)
        half = half_width(*crossed_variance(y))
        hits += int(np.sum(np.abs(y.mean(axis=(-2, -1)) - mu) <= half))
    return hits / reps, mu


# name -> (logit_mean, logit_sd, seed_sd, n): mean accuracy 0.78 on 400 test samples (the
# default run has ~360 images per severity); the seeds' true accuracies have an SD of 3.1
# points (the seed part dominates) or 0.5 points (the shared test-sample part dominates)
REGIMES = {"seed-heavy": (2.0, 2.0, 0.3, 400), "sample-heavy": (2.0, 2.0, 0.05, 400)}
REPS = 4000


@pytest.mark.parametrize("seeds", [3, 5])
@pytest.mark.parametrize("regime", sorted(REGIMES))
def test_coverage_at_nominal_95(seeds, regime):
    logit_mean, logit_sd, seed_sd, n = REGIMES[regime]
    got, _ = coverage(np.random.default_rng([seeds, n]), reps=REPS, seeds=seeds, n=n,
                      logit_mean=logit_mean, logit_sd=logit_sd, seed_sd=seed_sd)
    print(f"coverage {regime}, {seeds} seeds, {REPS} replicates: {got:.4f}")
    assert 0.93 <= got <= 0.97, got


@pytest.mark.slow
def test_coverage_grid():
    """36 populations x 3 and 5 seeds: mean accuracy 0.56-0.96, SD of the seeds' true accuracy
    0 to ~6 points, 100 or 1000 test samples; 4000 experiments each (~40 s)."""
    failures, lines = [], []
    for seeds, m, sd, sa, n in itertools.product((3, 5), (0.5, 2.0, 3.5), (1.0, 2.5),
                                                  (0.0, 0.15, 0.3), (100, 1000)):
        rng = np.random.default_rng([seeds, int(10 * m), int(10 * sd), int(100 * sa), n])
        got, mu = coverage(rng, reps=4000, seeds=seeds, n=n, logit_mean=m, logit_sd=sd,
                           seed_sd=sa)
        lines.append(f"{seeds} seeds, logit {m} ± {sd}, seed sd {sa}, n {n}: mu {mu:.3f}, "
                     f"coverage {got:.4f}")
        if not 0.93 <= got <= 0.97:
            failures.append(lines[-1])
    print("\n".join(lines))
    assert not failures, failures
