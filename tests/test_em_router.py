"""EM router: E-step maths, targets, implied prior, threshold routing, the EM loop, validation."""
import math

import numpy as np
import pytest
import torch

from trainers.em_router import (Routers, conditional_targets, e_step, halting_probs,
                                implied_log_prior, log_likelihood, route_by_threshold,
                                routes_for_thresholds, run_em, validate_em_args)

torch.set_num_threads(1)

# hand example: p(y|x,k) = .2, .5, .9; costs 1/3, 2/3, 1.
# tau=1, lam=1, uniform prior: .2e^{-1/3} = .143306, .5e^{-2/3} = .256709, .9e^{-1} = .331091,
# sum .731106 -> .196013, .351123, .452864. tau=2 takes the square root of each term first.
# prior (.5,.3,.2), lam=3, tau=.5: (.1e^{-1})^2, (.15e^{-2})^2, (.18e^{-3})^2 normalised.
HAND = [
    (1.0, 1.0, [1 / 3] * 3, [0.1960128896, 0.3511234316, 0.4528636788]),
    (2.0, 1.0, [1 / 3] * 3, [0.2591749507, 0.3468810821, 0.3939439672]),
    (0.5, 3.0, [0.5, 0.3, 0.2], [0.7332200445, 0.2232687204, 0.0435112351]),
]


@pytest.mark.parametrize("tau,lam,prior,expected", HAND)
def test_e_step_hand_example(tau, lam, prior, expected):
    post = e_step(log_lik=np.log([[0.2, 0.5, 0.9]]), log_prior=np.log([prior]),
                  costs=[1 / 3, 2 / 3, 1.0], lam=lam, tau=tau)
    np.testing.assert_allclose(post[0], expected, atol=1e-6)


def test_e_step_is_stable_and_cost_monotone():
    rng = np.random.default_rng(0)
    ll = -rng.exponential(300.0, (50, 4))          # very unlikely labels: exp() would underflow
    ll[0] = [-1e4, -2e4, -3e4, -4e4]
    costs = np.array([.25, .5, .75, 1.])
    posts = [e_step(log_lik=ll, log_prior=np.full(4, -math.log(4)), costs=costs, lam=lam)
             for lam in (0.0, 1.0, 10.0, 100.0)]
    for p in posts:
        assert np.all(np.isfinite(p)) and np.allclose(p.sum(1), 1)
    cost = [float((p @ costs).mean()) for p in posts]
    assert all(a >= b - 1e-12 for a, b in zip(cost, cost[1:]))


def test_conditional_targets_last_is_one_and_reconstruct():
    rng = np.random.default_rng(1)
    r = rng.dirichlet(np.ones(4), size=20)
    r = np.vstack([r, [[1, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0]]])
    t = conditional_targets(posterior=r)
    assert np.all(t[:, -1] == 1) and np.all((t >= 0) & (t <= 1))
    go_on = np.concatenate([np.ones((len(t), 1)), np.cumprod(1 - t[:, :-1], axis=1)], axis=1)
    np.testing.assert_allclose(t * go_on, r, atol=1e-12)     # r_k = t_k prod_{j<k}(1 - t_j)
    np.testing.assert_allclose(t[-1], [0, 1, 1, 1])         # zero tail after exit 1 -> t = 1


def test_implied_prior_sums_to_one_and_inverts_targets():
    rng = np.random.default_rng(2)
    s = rng.normal(0, 3, (30, 4))
    s[0], s[1] = [60, -60, 900, -900], [-900, -900, -900, 5]  # extreme logits stay finite
    logp = implied_log_prior(halt_logits=s)
    assert np.all(np.isfinite(logp[2:]))
    np.testing.assert_allclose(np.exp(logp).sum(1), 1.0, atol=1e-12)
    t = conditional_targets(posterior=np.exp(logp[2:]))       # targets of the prior = sigmoids
    np.testing.assert_allclose(t[:, :-1], 1 / (1 + np.exp(-s[2:, :-1])), atol=1e-9)


def test_log_likelihood_is_log_softmax_at_label():
    z = np.random.default_rng(3).normal(size=(5, 4, 3))
    y = np.array([0, 1, 2, 0, 1])
    expected = torch.log_softmax(torch.tensor(z), -1)[torch.arange(5), :, torch.tensor(y)].numpy()
    np.testing.assert_allclose(log_likelihood(exit_logits=z, labels=y), expected, atol=1e-12)


def test_route_by_threshold_edges():
    p = np.array([[0.9, 0.2, 0.7, 1.0], [0.1, 0.6, 0.3, 1.0], [0.0, 0.0, 0.0, 1.0]])
    assert route_by_threshold(halt_probs=p, threshold=0.0).tolist() == [0, 0, 0]
    assert route_by_threshold(halt_probs=p, threshold=1.01).tolist() == [3, 3, 3]
    assert route_by_threshold(halt_probs=p, threshold=0.5).tolist() == [0, 1, 3]
    assert route_by_threshold(halt_probs=p, threshold=0.65).tolist() == [0, 3, 3]
    thr = np.linspace(0, 1.1, 12)
    many = routes_for_thresholds(p, thr)
    assert many.shape == (12, 3) and many.dtype == np.int64
    for i, t in enumerate(thr):
        assert many[i].tolist() == route_by_threshold(halt_probs=p, threshold=t).tolist()


def _separable(n=200, seed=0):
    """Group A (x0 > 0): every exit is right -> should exit at 0. Group B: only the last exit
    is right -> should go to the end. Features reveal the group at every exit."""
    rng = np.random.default_rng(seed)
    easy = rng.random(n) < 0.5
    feats = [np.c_[np.where(easy, 1.0, -1.0) + 0.1 * rng.normal(size=n),
                   rng.normal(size=(n, d - 1))].astype(np.float32) for d in (3, 4, 5, 6)]
    ll = np.where(easy[:, None], np.log(0.95), [math.log(0.05)] * 3 + [math.log(0.95)])
    return feats, ll, easy


EM_KW = dict(costs=[.25, .5, .75, 1.], lam=2.0, tau=1.0, tol=0.0, hidden=8, epochs=5,
             lr=1e-2, batch_size=64, seed=0)


def test_run_em_separable_converges_and_calls_back():
    feats, ll, easy = _separable()
    calls = []
    res = run_em(features=feats, log_lik=ll, em_iters=5,
                 on_round=lambda r, m, s: calls.append((r, m, s)), **EM_KW)
    assert [c[0] for c in calls] == list(range(5)) and len(res.history) == 5
    change = [h["posterior_change"] for h in res.history]
    assert math.isnan(change[0]) and change[-1] < change[1]
    assert {"router_bce", "expected_cost", "router_expected_cost"} <= set(calls[-1][1])
    routes = route_by_threshold(halt_probs=halting_probs(res.routers, feats), threshold=0.5)
    assert np.mean(routes[easy] == 0) > 0.95 and np.mean(routes[~easy] == 3) > 0.95


def test_run_em_resume_matches_uninterrupted():
    feats, ll, _ = _separable(n=80, seed=1)
    states = []
    full = run_em(features=feats, log_lik=ll, em_iters=3,
                  on_round=lambda r, m, s: states.append(s), **EM_KW)
    resumed = run_em(features=feats, log_lik=ll, em_iters=3, state=states[0], **EM_KW)
    np.testing.assert_array_equal(full.posterior, resumed.posterior)
    for a, b in zip(full.routers.state_dict().values(), resumed.routers.state_dict().values()):
        assert torch.equal(a, b)
    assert [h["router_bce"] for h in full.history] == [h["router_bce"] for h in resumed.history]


def test_run_em_accepts_tensors():
    feats, ll, _ = _separable(n=60, seed=3)
    a = run_em(features=feats, log_lik=ll, em_iters=2, **EM_KW)
    b = run_em(features=[torch.from_numpy(f) for f in feats], log_lik=torch.from_numpy(ll),
               em_iters=2, **EM_KW)
    np.testing.assert_array_equal(a.posterior, b.posterior)


def test_run_em_stops_at_tol():
    """posterior_change of round r = mean |r_r - r_{r-1}| (from the saved posteriors); EM stops
    after the first round whose change is strictly below tol."""
    feats, ll, _ = _separable(n=80, seed=2)
    posts = []
    ref = run_em(features=feats, log_lik=ll, em_iters=4,
                 on_round=lambda r, m, s: posts.append(s["posterior"].numpy()), **EM_KW)
    change = [h["posterior_change"] for h in ref.history]
    assert math.isnan(change[0]) and not ref.converged
    for r in (1, 2, 3):
        assert change[r] == pytest.approx(np.mean(np.abs(posts[r] - posts[r - 1])), rel=1e-12)
    c1, c2, c3 = change[1:]
    assert c1 > c2 > c3                                  # this run settles
    # tol between c2 and c1: round 1 goes on, round 2 stops
    mid = run_em(features=feats, log_lik=ll, em_iters=6, **{**EM_KW, "tol": (c1 + c2) / 2})
    assert len(mid.history) == 3 and mid.converged and mid.history[-1]["converged"]
    # tol == c2 exactly: strict, so round 2 goes on and round 3 (c3 < c2) stops
    eq = run_em(features=feats, log_lik=ll, em_iters=6, **{**EM_KW, "tol": c2})
    assert [h["posterior_change"] for h in eq.history][1:] == change[1:]   # the same run
    assert len(eq.history) == 4 and eq.converged
    assert [h["converged"] for h in eq.history] == [False, False, False, True]


def test_m_step_fits_routers_to_conditional_targets():
    """Every sample has r = (.5, .25, .25) (lam 0, uniform prior, p(y|k) = .5, .25, .25), so
    the targets are t = (.5, .25 / .5 = .5, 1): routers fitted for many epochs on uninformative
    features halt with probability ~(.5, .5). Trained on r itself, router 1 would sit at .25."""
    rng = np.random.default_rng(0)
    n = 64
    feats = [rng.normal(size=(n, d)).astype(np.float32) for d in (2, 3, 4)]
    ll = np.log(np.tile([.5, .25, .25], (n, 1)))
    res = run_em(features=feats, log_lik=ll, costs=[.25, .5, 1.], lam=0.0, em_iters=1, tol=0.0,
                 hidden=4, epochs=50, lr=3e-2, batch_size=64, seed=0)
    np.testing.assert_allclose(res.posterior, np.tile([.5, .25, .25], (n, 1)), atol=1e-12)
    halt = halting_probs(res.routers, feats)
    np.testing.assert_allclose(halt.mean(0), [.5, .5, 1.0], atol=0.04)
    assert halt[:, 1].min() > .4                          # every sample, not just the mean


def test_routers_last_exit_always_halts():
    r = Routers([3, 4, 5], hidden=4, seed=0)
    s = r([torch.zeros(2, d) for d in (3, 4, 5)])
    assert s.shape == (2, 3) and torch.isinf(s[:, -1]).all()
    p = halting_probs(r, [np.zeros((2, d), np.float32) for d in (3, 4, 5)])
    assert np.all(p[:, -1] == 1.0)


@pytest.mark.parametrize("kwargs", [
    dict(thresholds=[0.2, 1.2]), dict(thresholds=[-0.1]), dict(thresholds=[float("nan")]),
    dict(em_iters=0), dict(em_iters=2.5),
    dict(costs=[0.25, 0.25, 0.75, 1.0]), dict(costs=[0.5, 0.25, 0.75, 1.0]),
    dict(costs=[0.0, 0.5, 0.75, 1.0]), dict(costs=[0.25, 0.5, 0.75, 1.5]),
    dict(num_exits=3, backbone_stages=4), dict(costs=[0.5, 1.0], num_exits=4),
    dict(tol=-1.0), dict(hidden=0), dict(epochs=0), dict(lr=0.0), dict(batch_size=0),
])
def test_validate_em_args_rejects(kwargs):
    with pytest.raises(ValueError):
        validate_em_args(**kwargs)


def test_validate_em_args_accepts_good():
    validate_em_args(em_iters=10, thresholds=[0, 0.5, 1],
                     costs=[.25, .5, .75, 1.], num_exits=4, backbone_stages=4, tol=1e-3,
                     hidden=64, epochs=20, lr=1e-3, batch_size=256)


# ----------------------------------------------------------------------------- m_step (issue 13)
# The two-sample example, three exits. Posteriors r (rows sum to 1):
#   A = (0.9, 0.05, 0.05): t_1 = 0.05 / 0.1 = 1/2,   w_1 = r_1 + r_2 = 0.1
#   B = (0.1, 0.05, 0.85): t_1 = 0.05 / 0.9 = 1/18,  w_1 = 0.9
# A router with only a bias gives both samples one sigma_1. d/ds sum_n w_n BCE(t_n, sigma(s)) =
# sum_n w_n (sigma - t_n) = 0, so the minimiser is sigma = sum w t / sum w:
#   paper (w = 1):  (1/2 + 1/18) / 2           = 5/18 = 0.2778
#   exact EM:       (0.1/2 + 0.9/18) / (0.1 + 0.9) = (0.05 + 0.05) / 1 = 0.100
# Router 0 sees w_0 = 1 for both: t_0 = (0.9, 0.1), so sigma_0 = 0.5 under either M-step.
TWO = np.array([[0.9, 0.05, 0.05], [0.1, 0.05, 0.85]])


class BiasOnly(torch.nn.Module):
    """A free per-exit constant router: s_k is one learned number per exit (last: +inf)."""

    def __init__(self, k: int):
        super().__init__()
        self.b = torch.nn.Parameter(torch.zeros(k - 1))

    def forward(self, features):
        n = len(features[0])
        return torch.cat([self.b.expand(n, -1), torch.full((n, 1), math.inf)], dim=1)


def test_reach_mass_hand_example():
    from trainers.em_router import reach_mass
    np.testing.assert_allclose(reach_mass(posterior=TWO), [[1.0, 0.1, 0.05], [1.0, 0.9, 0.85]])
    # w_k t_k = r_k (the law that makes the weighted BCE exact EM)
    t = conditional_targets(posterior=TWO)
    np.testing.assert_allclose((reach_mass(posterior=TWO) * t)[:, :-1], TWO[:, :-1])


def test_m_step_weights_paper_is_none_weighted_is_reach_mass():
    from trainers.em_router import m_step_weights, reach_mass
    assert m_step_weights(posterior=TWO, m_step="paper") is None
    np.testing.assert_array_equal(m_step_weights(posterior=TWO, m_step="weighted"),
                                  reach_mass(posterior=TWO))
    with pytest.raises(ValueError, match="m_step"):
        m_step_weights(posterior=TWO, m_step="exact")


@pytest.mark.parametrize("m_step,sigma1", [("paper", 5 / 18), ("weighted", 0.1)])
def test_m_step_bias_router_reaches_the_hand_optimum(m_step, sigma1):
    """fit_routers with the M-step's weights drives a bias-only router to sum w t / sum w."""
    from trainers.em_router import fit_routers, m_step_weights
    torch.manual_seed(0)
    router = BiasOnly(3)
    feats = [torch.zeros(2, 1)] * 3
    fit_routers(router, features=feats, targets=conditional_targets(posterior=TWO), epochs=3000,
                lr=0.05, batch_size=2, seed=0,
                weights=m_step_weights(posterior=TWO, m_step=m_step))
    sigma = torch.sigmoid(router.b.detach()).numpy()
    np.testing.assert_allclose(sigma, [0.5, sigma1], atol=2e-3)


def test_weighted_bce_gradient_vanishes_at_the_weighted_mean():
    """The loss fit_routers minimises, by hand at three sigmas: its minimiser on a fine grid
    is 5/18 unweighted and 0.1 weighted (router 1 of the two-sample example)."""
    from trainers.em_router import reach_mass
    t = conditional_targets(posterior=TWO)[:, 1]                                   # (1/2, 1/18)
    w = reach_mass(posterior=TWO)[:, 1]                                            # (0.1, 0.9)
    grid = np.linspace(0.001, 0.999, 9981)
    bce = -(t[:, None] * np.log(grid) + (1 - t[:, None]) * np.log(1 - grid))     # [2, G]
    assert grid[np.argmin(bce.mean(0))] == pytest.approx(5 / 18, abs=1e-4)
    assert grid[np.argmin((w[:, None] * bce).mean(0))] == pytest.approx(0.1, abs=1e-4)


def test_fit_routers_weighted_loss_value():
    """The returned loss is the batch mean of w * BCE over N x (K-1) terms: at s = 0 every BCE
    term is log 2, so the loss is log 2 * mean(w[:, :-1]) (lr 0: nothing moves)."""
    from trainers.em_router import fit_routers, reach_mass
    router = BiasOnly(3)
    feats = [torch.zeros(2, 1)] * 3
    t = conditional_targets(posterior=TWO)
    w = reach_mass(posterior=TWO)
    for weights, mean_w in ((None, 1.0), (w, (1 + 0.1 + 1 + 0.9) / 4)):
        loss = fit_routers(router, features=feats, targets=t, epochs=1, lr=1e-12, batch_size=2,
                           seed=0, weights=weights)
        assert loss == pytest.approx(math.log(2) * mean_w, rel=1e-5)


def test_run_em_m_step_paper_is_the_default_bit_for_bit_and_weighted_differs():
    rng = np.random.default_rng(3)
    n, dims = 60, [3, 4, 5]
    feats = [rng.normal(size=(n, d)).astype(np.float32) for d in dims]
    ll = np.log(rng.uniform(0.05, 1.0, size=(n, 3)))
    kw = dict(features=feats, log_lik=ll, costs=[0.3, 0.6, 1.0], lam=1.0, em_iters=2,
              hidden=4, epochs=2, batch_size=16, seed=0)
    default, paper, weighted = run_em(**kw), run_em(**kw, m_step="paper"), \
        run_em(**kw, m_step="weighted")
    for a, b in zip(default.routers.state_dict().values(), paper.routers.state_dict().values()):
        assert torch.equal(a, b)
    np.testing.assert_array_equal(default.posterior, paper.posterior)
    assert not np.allclose(halting_probs(paper.routers, feats),
                           halting_probs(weighted.routers, feats))
    with pytest.raises(ValueError, match="m_step"):
        run_em(**kw, m_step="exact")


def test_validate_em_args_m_step():
    validate_em_args(m_step="paper")
    validate_em_args(m_step="weighted")
    validate_em_args()
    with pytest.raises(ValueError, match="m_step"):
        validate_em_args(m_step="Weighted")
