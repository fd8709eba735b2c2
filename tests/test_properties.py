"""Laws of the maths, checked on generated inputs (hypothesis).

Values are drawn from small integer grids so that ties (equal costs, equal accuracies,
collinear points) come up often: that is where the strict / non-strict comparisons live.
Derandomized and without an example database: every run checks the same examples and writes
nothing, so a failure reproduces and mutation testing sees a stable verdict.
"""
import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.frontier import hull_accuracy, mixing_lift, pareto_mask, upper_hull
from analysis.stats import mcnemar_exact
from trainers.baselines import FALLBACKS, oracle_routes
from trainers.em_router import e_step

LAWS = settings(max_examples=50, deadline=None, derandomize=True, database=None)
EPS = 1e-9

grid = st.integers(0, 6).map(lambda i: i / 6)                     # 0, 1/6, ..., 1


@st.composite
def points(draw, *, min_size=0, nan=False):
    """(cost [n], accuracy [n]) float arrays on the grid, NaN sometimes when `nan`."""
    value = grid | st.just(np.nan) if nan else grid
    pairs = draw(st.lists(st.tuples(value, value), min_size=min_size, max_size=12))
    c = np.array([p[0] for p in pairs], float)
    a = np.array([p[1] for p in pairs], float)
    return c, a


def dominates(cq, aq, cp, ap) -> bool:
    return cq <= cp and aq >= ap and (cq < cp or aq > ap)


# ----------------------------------------------------------------------------- Pareto mask

@LAWS
@given(points(nan=True))
def test_pareto_mask_keeps_exactly_the_non_dominated(pts):
    c, a = pts
    keep = pareto_mask(cost=c, accuracy=a)
    valid = ~(np.isnan(c) | np.isnan(a))
    assert not np.any(keep & ~valid)                                     # NaN never kept
    for p in np.flatnonzero(keep):                                       # no kept point dominated
        assert not any(dominates(c[q], a[q], c[p], a[p]) for q in np.flatnonzero(valid))
    for p in np.flatnonzero(valid & ~keep):                              # dropped: a kept dominator
        assert any(dominates(c[q], a[q], c[p], a[p]) for q in np.flatnonzero(keep))


# ----------------------------------------------------------------------------- static mixing

@LAWS
@given(points(min_size=1), st.integers(0, 11), st.integers(0, 11), grid)
def test_static_mixing_hull_is_concave_nondecreasing_and_above_every_mixture(pts, i, j, w):
    c, a = pts
    hc, ha = upper_hull(cost=c, accuracy=a)
    assert len(hc) >= 1 and np.all(np.diff(hc) > 0)                     # sorted, distinct costs
    assert np.all(np.diff(ha) >= -EPS)                                   # non-decreasing
    slopes = np.diff(ha) / np.diff(hc)
    assert np.all(np.diff(slopes) <= EPS)                                # concave
    # every vertex is a single model, the hull starts at the cheapest and ends at the best
    assert all(np.any((c == x) & (a == y)) for x, y in zip(hc, ha))
    assert hc[0] == c.min() and ha[-1] == a.max()
    # never below a single model, nor below any static mixture of two of them
    assert np.all(hull_accuracy(hc, ha, c) >= a - EPS)
    i, j = i % len(c), j % len(c)
    mix_c, mix_a = w * c[i] + (1 - w) * c[j], w * a[i] + (1 - w) * a[j]
    assert hull_accuracy(hc, ha, mix_c) >= mix_a - EPS
    # the lift of every single model against the hull is <= 0
    singles = pd.DataFrame({"cost": c, "accuracy": a})
    assert np.all(mixing_lift(singles, singles)["lift"] <= EPS)


# ----------------------------------------------------------------------------- E-step

@LAWS
@given(st.integers(1, 6), st.integers(2, 5), st.integers(0, 2**32 - 1),
       st.lists(st.floats(0, 20), min_size=2, max_size=2), st.floats(0.1, 5))
def test_e_step_posteriors_sum_to_one_and_cost_falls_with_lam(n, k, seed, lams, tau):
    rng = np.random.default_rng(seed)
    ll = -rng.exponential(rng.choice([1.0, 30.0]), (n, k))              # log p(y|x,k) <= 0
    prior = np.log(rng.dirichlet(np.ones(k), size=n))
    costs = np.sort(rng.uniform(0.05, 1.0, k))
    lo, hi = sorted(lams)
    post = {lam: e_step(log_lik=ll, log_prior=prior, costs=costs, lam=lam, tau=tau)
            for lam in (lo, hi)}
    for p in post.values():
        assert np.all(p >= 0) and np.allclose(p.sum(1), 1.0, atol=1e-12)
    # d/dlam E_r[c] = -Var_r(c) / tau <= 0, per sample
    assert np.all(post[hi] @ costs <= post[lo] @ costs + EPS)


# ----------------------------------------------------------------------------- oracle

@LAWS
@given(st.integers(1, 8), st.integers(1, 4), st.integers(0, 2**32 - 1),
       st.sampled_from(FALLBACKS))
def test_oracle_beats_every_routing(n, t, seed, fallback):
    """The oracle is right wherever any target is right, and among the right targets takes
    the cheapest: for every routing r, acc(oracle) >= acc(r), and on the samples where r is
    right the oracle is right too at cost <= r's."""
    rng = np.random.default_rng(seed)
    correct = rng.random((n, t)) < rng.uniform(0.1, 0.9)
    costs = rng.integers(1, 4, t).astype(float)                          # ties come up
    oracle = oracle_routes(correct=correct, costs=costs, fallback=fallback)
    rows = np.arange(n)
    o_hit, o_cost = correct[rows, oracle], costs[oracle]
    assert np.array_equal(o_hit, correct.any(axis=1))
    fallback_target = t - 1 if fallback == "last" else int(np.argmin(costs))
    assert np.all(oracle[~o_hit] == fallback_target)
    for r in [rng.integers(0, t, n) for _ in range(20)] + [np.full(n, i) for i in range(t)]:
        hit = correct[rows, r]
        assert o_hit.mean() >= hit.mean()
        assert np.all(o_hit[hit]) and np.all(o_cost[hit] <= costs[r][hit])


# ----------------------------------------------------------------------------- McNemar

@LAWS
@given(st.lists(st.tuples(st.booleans(), st.booleans()), max_size=40))
def test_mcnemar_is_symmetric(pairs):
    a = np.array([p[0] for p in pairs], bool)
    b = np.array([p[1] for p in pairs], bool)
    ab, ba = mcnemar_exact(a_correct=a, b_correct=b), mcnemar_exact(a_correct=b, b_correct=a)
    assert (ab["b"], ab["c"]) == (ba["c"], ba["b"]) and ab["n"] == ba["n"] == len(a)
    assert ab["pvalue"] == ba["pvalue"]
    assert 0.0 <= ab["pvalue"] <= 1.0
    if ab["b"] == ab["c"]:                       # no imbalance between the discordant pairs
        assert ab["pvalue"] == 1.0
