"""The EM router's arithmetic and bookkeeping, value by value (trainers/em_router.py): what
mutation testing showed the behavioural tests in test_em_router.py let through. Each test names
the bug it stops. All CPU, all small: a mutation run re-runs these per mutant."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from trainers import em_router as E

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- E-step maths

def test_np_is_float64_and_takes_tensors_that_require_grad():
    """_np detaches tensors (np.asarray on a grad tensor raises) and always gives float64."""
    t = torch.tensor([1.0, 2.0], requires_grad=True)
    assert E._np(t).tolist() == [1.0, 2.0] and E._np(t).dtype == np.float64
    assert E._np(np.array([1, 2], np.int64)).dtype == np.float64
    assert E._np([[1, 0, 0]]).dtype == np.float64


def test_conditional_targets_of_an_integer_one_hot_posterior():
    """A hard (integer) posterior is a posterior too: halt at exit 1 -> t = (0, 1, 1)."""
    t = E.conditional_targets(posterior=np.array([[0, 1, 0], [1, 0, 0]]))
    assert t.dtype == np.float64 and t.tolist() == [[0.0, 1.0, 1.0], [1.0, 1.0, 1.0]]


def test_e_step_default_temperature_is_one():
    """tau defaults to 1 (the paper): the first hand example of test_em_router.py, no tau."""
    post = E.e_step(log_lik=np.log([[0.2, 0.5, 0.9]]), log_prior=np.log([[1 / 3] * 3]),
                    costs=[1 / 3, 2 / 3, 1.0], lam=1.0)
    np.testing.assert_allclose(post[0], [0.1960128896, 0.3511234316, 0.4528636788], atol=1e-9)


def test_conditional_targets_stay_in_unit_interval_for_noisy_posteriors():
    """Targets feed a BCE, so they are clipped to [0, 1] even when a caller's posterior carries
    noise: r = (-.001, .6, .401) has tails (1, 1.001, .401), raw t_0 = -.001 -> 0; r = (.5, .6,
    -.1) has tails (1, .5, -.1), raw t_1 = .6 / .5 = 1.2 -> 1."""
    t = E.conditional_targets(posterior=np.array([[-1e-3, 0.6, 0.401], [0.5, 0.6, -0.1]]))
    assert t[0, 0] == 0.0 and t[1, 1] == 1.0
    assert t[0, 1] == pytest.approx(0.6 / 1.001) and t[1, 0] == pytest.approx(0.5)
    assert np.all(t[:, -1] == 1.0)


# ----------------------------------------------------------------------------- routers

def test_routers_defaults_hidden_64_seed_0_and_count_exits():
    r = E.Routers([3, 4, 5])
    assert r.num_exits == 3 and len(r.mlps) == 2
    assert [m.net[0].out_features for m in r.mlps] == [64, 64]
    same = E.Routers([3, 4, 5], hidden=64, seed=0)
    other = E.Routers([3, 4, 5], hidden=64, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(r.state_dict().values(),
                                                 same.state_dict().values()))
    assert not torch.equal(r.mlps[0].net[0].weight, other.mlps[0].net[0].weight)


class _Recording(E.Routers):
    """Routers that note the batch size of each forward call."""

    def __init__(self, dims):
        super().__init__(dims, hidden=1, seed=0)
        self.sizes = []

    def forward(self, features):
        self.sizes.append(len(features[0]))
        return super().forward(features)


def test_halting_probs_passes_batch_size_and_defaults_to_16384():
    r = _Recording([1, 1])
    p = E.halting_probs(r, [np.zeros((5, 1), np.float32)] * 2, batch_size=2)
    assert r.sizes == [2, 2, 1] and p.shape == (5, 2) and np.all(p[:, 1] == 1.0)
    r.sizes.clear()
    E.halting_probs(r, [np.zeros((16385, 1), np.float32)] * 2)
    assert r.sizes == [16384, 1]


# ----------------------------------------------------------------------------- M-step by hand

class _OneBias(nn.Module):
    """A 1-parameter router for K = 2 exits: halt logit s_0 = b for every sample, s_1 = +inf."""

    def __init__(self, b0: float):
        super().__init__()
        self.b = nn.Parameter(torch.tensor(float(b0)))

    def forward(self, features):
        n = len(features[0])
        return torch.cat([self.b.expand(n, 1), torch.full((n, 1), math.inf)], dim=1)


def _bce(s, t):
    """BCE with logits by hand: softplus(s) - t s."""
    return math.log1p(math.exp(s)) - t * s


def _fit(b0, n, t, **kw):
    r = _OneBias(b0)
    feats = [torch.zeros(n, 1), torch.zeros(n, 1)]
    targets = np.tile([t, 1.0], (n, 1))
    loss = E.fit_routers(r, features=feats, targets=targets, seed=0, **kw)
    return loss, r.b.item()


def test_fit_routers_first_adam_step_is_lr_and_loss_is_before_the_step():
    """One sample, one epoch: loss = BCE(0, .8) = log 2, then Adam's first step moves b by lr
    against the gradient sign (sigma(0) - .8 < 0): b = .1."""
    loss, b = _fit(0.0, 1, 0.8, epochs=1, lr=0.1, batch_size=1)
    assert loss == pytest.approx(math.log(2), abs=1e-6) and b == pytest.approx(0.1, abs=1e-6)


def test_fit_routers_computes_the_bce_in_float32():
    """Targets are cast to the routers' float32: a float64 target tensor would promote the BCE
    to float64 (a slow path on GPUs). Seen on CPU as a loss that is not a float32 number: at
    b = .1 the term t * b with t = .8 is not exact in float32 (at b = 0 it vanishes)."""
    loss, _ = _fit(0.0, 1, 0.8, epochs=2, lr=0.1, batch_size=1)      # last epoch at b = .1
    assert float(np.float32(loss)) == loss


def test_fit_routers_loss_is_the_mean_over_samples_of_the_last_epoch():
    """Two samples in batches of 1: step 1 at b=0 (log 2), step 2 at b=.1 (BCE(.1, .8)); the
    result is their mean over samples. In one batch of 2: one step, loss log 2, b = .1."""
    loss, b = _fit(0.0, 2, 0.8, epochs=1, lr=0.1, batch_size=1)
    assert loss == pytest.approx((math.log(2) + _bce(0.1, 0.8)) / 2, abs=1e-6)
    assert b > 0.15                                       # two steps of ~.1
    loss, b = _fit(0.0, 2, 0.8, epochs=1, lr=0.1, batch_size=2)
    assert loss == pytest.approx(math.log(2), abs=1e-6) and b == pytest.approx(0.1, abs=1e-6)
    # two epochs of one sample: the last epoch's loss is at b = .1 (after the first step)
    loss, b = _fit(0.0, 1, 0.8, epochs=2, lr=0.1, batch_size=1)
    assert loss == pytest.approx(_bce(0.1, 0.8), abs=1e-6)


def test_fit_routers_weight_decay_defaults_to_zero_and_is_used():
    """From b = 1, target .8: the BCE gradient sigma(1) - .8 = -.069 pushes b up to 1.1; with
    weight decay 1 the gradient is -.069 + 1 * b = .93, so b goes down to .9."""
    _, b = _fit(1.0, 1, 0.8, epochs=1, lr=0.1, batch_size=1)
    assert b == pytest.approx(1.1, abs=1e-6)
    _, b = _fit(1.0, 1, 0.8, epochs=1, lr=0.1, batch_size=1, weight_decay=1.0)
    assert b == pytest.approx(0.9, abs=1e-6)


def test_fit_routers_single_exit_has_nothing_to_fit():
    """K = 1: no router, loss 0.0."""
    r = E.Routers([3], hidden=2)
    loss = E.fit_routers(r, features=[torch.zeros(4, 3)], targets=np.ones((4, 1)), epochs=1,
                         lr=0.1, batch_size=2, seed=0)
    assert loss == 0.0


# ----------------------------------------------------------------------------- EM bookkeeping

def test_round_metrics_by_hand():
    """2 samples, 3 exits, costs (.25, .5, 1)."""
    post = np.array([[.2, .3, .5], [.6, .3, .1]])
    prev = np.array([[.2, .5, .3], [.6, .3, .1]])
    prior = np.array([[.5, .25, .25], [.25, .25, .5]])
    m = E._round_metrics(3, post, prev, np.array([.25, .5, 1.]), 0.7, np.log(prior))
    assert m["round"] == 3 and m["router_bce"] == 0.7
    assert m["posterior_change"] == pytest.approx(0.4 / 6)           # |.2| twice over 6
    assert m["expected_cost"] == pytest.approx((0.7 + 0.4) / 2)      # .05+.15+.5, .15+.15+.1
    assert m["router_expected_cost"] == pytest.approx((0.5 + 0.6875) / 2)
    masses = {k: v for k, v in m.items() if k.startswith("posterior_mass_")}
    assert masses == pytest.approx({"posterior_mass_0": .4, "posterior_mass_1": .3,
                                    "posterior_mass_2": .3})
    first = E._round_metrics(0, post, None, np.array([.25, .5, 1.]), 0.7, np.log(prior))
    assert math.isnan(first["posterior_change"]) and first["round"] == 0


def test_new_routers_use_hidden_and_seed():
    feats = [torch.randn(6, 2, generator=torch.Generator().manual_seed(0)), torch.zeros(6, 3)]
    a = E._new_routers(feats, hidden=3, seed=1, device="cpu")
    b = E._new_routers(feats, hidden=3, seed=1, device="cpu")
    c = E._new_routers(feats, hidden=3, seed=2, device="cpu")
    assert a.mlps[0].net[0].out_features == 3
    assert torch.equal(a.mlps[0].net[0].weight, b.mlps[0].net[0].weight)
    assert not torch.equal(a.mlps[0].net[0].weight, c.mlps[0].net[0].weight)
    torch.testing.assert_close(a.mlps[0].mean, feats[0].mean(0))      # standardised on feats


def test_resume_without_state_or_at_round_0_starts_from_the_uniform_prior():
    feats = [torch.zeros(2, 1)] * 3
    for state in (None, {"round": 0, "routers": E.Routers([1, 1, 1], hidden=2).state_dict()}):
        res = E.EMResult(E.Routers([1, 1, 1], hidden=2))
        start, prev, log_prior = E._resume(res, state, feats, 3, 2, "cpu")
        assert start == 0 and prev is None and log_prior.shape == (2, 3)
        np.testing.assert_allclose(np.exp(log_prior), 1 / 3, rtol=1e-15)


def _problem(n=12, seed=0):
    """Easy samples (x0 > 0) are right at every exit, hard ones only at the last; 3 exits."""
    rng = np.random.default_rng(seed)
    easy = np.arange(n) % 2 == 0
    feats = [np.c_[np.where(easy, 1.0, -1.0), rng.normal(size=n)].astype(np.float32)] * 3
    ll = np.where(easy[:, None], math.log(0.9), [math.log(0.2), math.log(0.3), math.log(0.9)])
    return feats, ll


KW = dict(costs=[.25, .5, 1.], lam=1.0, tol=0.0, hidden=4, epochs=2, lr=5e-2, batch_size=4,
          seed=0)


def _run(**kw):
    feats, ll = _problem()
    rounds = []
    res = E.run_em(features=feats, log_lik=ll, on_round=lambda r, m, s: rounds.append((r, m, s)),
                   **{**KW, **kw})
    return res, rounds


def test_round_0_posterior_by_hand_with_tau():
    """Round 0 uses the uniform prior, so its posterior is softmax((log p - lam c) / tau); two
    samples: p(y|k) = (.2, .5, .9) and (.6, .3, .1), costs (1/3, 2/3, 1), lam 1, tau 2."""
    feats = [np.array([[0.0], [1.0]], np.float32)] * 3
    ll = np.log([[.2, .5, .9], [.6, .3, .1]])
    posts = []
    E.run_em(features=feats, log_lik=ll, costs=[1 / 3, 2 / 3, 1.], lam=1.0, tau=2.0, em_iters=1,
             hidden=2, epochs=1, on_round=lambda r, m, s: posts.append(s["posterior"].numpy()))
    np.testing.assert_allclose(posts[0], [[0.2591749507, 0.3468810821, 0.3939439672],
                                          [0.5287995749, 0.3165145549, 0.1546858702]], atol=1e-9)


def test_run_em_defaults_are_the_documented_ones():
    """tau 1, hidden 64, epochs 5, lr 1e-3, batch 256, seed 0, weight decay 0 (N = 300, so a
    batch of 257 would split differently); em_iters 10 and tol 1e-3 below."""
    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(300, 1)).astype(np.float32)] * 2
    ll = np.log(rng.dirichlet([1, 1], size=300))
    a = E.run_em(features=feats, log_lik=ll, costs=[.5, 1.], lam=0.5, em_iters=1)
    b = E.run_em(features=feats, log_lik=ll, costs=[.5, 1.], lam=0.5, em_iters=1, tau=1.0,
                 hidden=64, epochs=5, lr=1e-3, batch_size=256, seed=0, weight_decay=0.0)
    assert a.routers.mlps[0].net[0].out_features == 64
    for x, y in zip(a.routers.state_dict().values(), b.routers.state_dict().values()):
        assert torch.equal(x, y)
    np.testing.assert_array_equal(a.posterior, b.posterior)


def test_run_em_default_em_iters_is_10():
    feats, ll = _problem(n=4)
    res = E.run_em(features=feats, log_lik=ll, costs=[.25, .5, 1.], lam=1.0, tol=0.0, hidden=1,
                   epochs=1, lr=5e-2, batch_size=4)
    assert len(res.history) == 10 and [h["round"] for h in res.history] == list(range(10))


def test_run_em_default_tol_is_1e_3():
    """Round 1 changes the posterior by more than 1e-3 (but less than 1), so with the default
    tol the run goes on to round 2."""
    feats, ll = _problem()
    res = E.run_em(features=feats, log_lik=ll, em_iters=3,
                   **{k: v for k, v in KW.items() if k != "tol"})
    assert 1e-3 < res.history[1]["posterior_change"] < 1
    assert len(res.history) == 3


def test_run_em_can_converge_at_round_1_and_the_snapshot_says_so():
    """posterior_change <= 1 always, so tol 2 stops after round 1 (round 0 has no change)."""
    res, rounds = _run(em_iters=5, tol=2.0)
    assert [r for r, _, _ in rounds] == [0, 1] and res.converged
    assert [s["converged"] for _, _, s in rounds] == [False, True]
    assert [m["converged"] for _, m, _ in rounds] == [False, True]


def test_run_em_weight_decay_reaches_the_routers():
    """A strong weight decay pulls the router weights toward 0."""
    a, _ = _run(em_iters=1, epochs=5)
    b, _ = _run(em_iters=1, epochs=5, weight_decay=5.0)
    norm = lambda res: sum(float(p.detach().norm()) for p in res.routers.parameters())   # noqa: E731
    assert norm(b) < norm(a)


def test_snapshot_holds_next_round_weights_posterior_history():
    res, rounds = _run(em_iters=2)
    r, m, s = rounds[0]
    assert s["round"] == 1 and s["converged"] is False
    assert s["posterior"].dtype == torch.float64 and s["posterior"].shape == (12, 3)
    assert s["history"] == [m] and s["history"][0] is not m
    for k, v in rounds[1][2]["routers"].items():                      # the final weights
        assert torch.equal(v, res.routers.state_dict()[k])


def _same_history(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_equal(x, y)                                 # nan == nan here


def test_resume_equals_uninterrupted_round_by_round():
    """Resuming from round 1's snapshot runs rounds 1, 2 only, with round 1's posterior_change
    measured against the saved round-0 posterior: the history equals the uninterrupted one."""
    full, rounds = _run(em_iters=3)
    again = []
    res = E.run_em(features=_problem()[0], log_lik=_problem()[1], em_iters=3,
                   state=rounds[0][2], on_round=lambda r, m, s: again.append(r), **KW)
    assert again == [1, 2]
    _same_history(res.history, full.history)
    assert not math.isnan(res.history[1]["posterior_change"])
    np.testing.assert_array_equal(res.posterior, full.posterior)


def test_resume_a_finished_run_returns_it():
    full, rounds = _run(em_iters=2)
    feats, ll = _problem()
    res = E.run_em(features=feats, log_lik=ll, em_iters=2, state=rounds[-1][2], **KW)
    _same_history(res.history, full.history)
    np.testing.assert_array_equal(res.posterior, full.posterior)
    # a checkpoint without a posterior (nothing to compare against): no posterior either
    bare = E.run_em(features=feats, log_lik=ll, em_iters=2,
                    state={"round": 2, "routers": rounds[-1][2]["routers"]}, **KW)
    assert bare.posterior is None and bare.history == [] and not bare.converged


def test_resume_a_converged_state_runs_nothing():
    _, rounds = _run(em_iters=5, tol=2.0)
    calls = []
    feats, ll = _problem()
    res = E.run_em(features=feats, log_lik=ll, em_iters=5, state=rounds[-1][2],
                   on_round=lambda *a: calls.append(a), **{**KW, "tol": 2.0})
    assert calls == [] and res.converged and len(res.history) == 2


def test_resume_a_minimal_state():
    """Only round and routers: history starts empty, round 1's change is unknown (nan)."""
    _, rounds = _run(em_iters=3)
    feats, ll = _problem()
    res = E.run_em(features=feats, log_lik=ll, em_iters=3,
                   state={"round": 1, "routers": rounds[0][2]["routers"]}, **KW)
    assert [h["round"] for h in res.history] == [1, 2]
    assert math.isnan(res.history[0]["posterior_change"])


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs,match", [
    (dict(em_iters=0), "em_iters"), (dict(costs=[.5, .25, 1.]), "exit costs"),
    (dict(tol=-1.0), "em tol"), (dict(hidden=0), "router hidden"),
    (dict(epochs=0), "router epochs"), (dict(lr=0.0), "router lr"),
    (dict(batch_size=0), "router batch_size"),
])
def test_run_em_validates_before_any_round(kwargs, match):
    feats, ll = _problem(n=4)
    calls = []
    with pytest.raises(ValueError, match=match):
        E.run_em(features=feats, log_lik=ll, on_round=lambda *a: calls.append(a),
                 **{**KW, "em_iters": 1, **kwargs})
    assert calls == []


def test_run_em_rejects_a_log_lik_of_the_wrong_shape():
    feats, ll = _problem(n=4)
    with pytest.raises(ValueError, match="do not agree"):
        E.run_em(features=feats, log_lik=ll[:, :2], em_iters=1, **{**KW, "costs": [.25, .5, 1.]})


def test_routes_for_a_2d_threshold_grid_and_two_exits():
    """Thresholds in any shape are flattened; with K = 2 the only router decides, >= at
    equality (p = .5 at threshold .5 halts at exit 0)."""
    p = np.array([[0.5, 1.0], [0.2, 1.0]])
    out = E.routes_for_thresholds(p, [[0.5, 0.6]])
    assert out.tolist() == [[0, 1], [1, 1]] and out.dtype == np.int64


def test_routes_with_a_single_exit_are_all_zero_int64():
    out = E.routes_for_thresholds(np.ones((3, 1)), [0.2, 0.9])
    assert out.shape == (2, 3) and out.dtype == np.int64 and not out.any()


@pytest.mark.parametrize("kwargs,match", [
    (dict(thresholds=[0.5, None]), "thresholds must be a non-empty list"),
    (dict(thresholds=[[0.1, 0.2]]), "thresholds must be a non-empty list"),
    (dict(thresholds=[]), "thresholds must be a non-empty list"),
    (dict(costs=[0.5, None]), "exit costs must be a non-empty list"),
    (dict(hidden=1.5), "router hidden must"), (dict(epochs=-1), "router epochs must"),
    (dict(batch_size=2.5), "router batch_size must"),
])
def test_validation_names_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        E.validate_em_args(**kwargs)


def test_validation_accepts_the_smallest_values():
    """1 is a valid hidden size, epoch count and batch size; one threshold is a grid too."""
    E.validate_em_args(hidden=1, epochs=1, batch_size=1, em_iters=1, thresholds=0.5)
    E.validate_em_args(thresholds=[0.5], costs=[1.0])
