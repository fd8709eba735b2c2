"""Baselines: fixed, random, oracle, BranchyNet, cascade, Pareto selection on val."""
import numpy as np
import pytest

from trainers.baselines import (branchynet_routes, cascade_routes, fixed_routes, oracle_routes,
                                pareto_on_val, random_routes, softmax_entropy)


def test_fixed_and_random_routes():
    assert fixed_routes(n=3, target=2).tolist() == [2, 2, 2]
    a = random_routes(n=4000, probs=[0.25] * 4, seed=7)
    assert np.array_equal(a, random_routes(n=4000, probs=[0.25] * 4, seed=7))
    np.testing.assert_allclose(np.bincount(a, minlength=4) / 4000, 0.25, atol=0.03)
    b = random_routes(n=2000, probs=[0.0, 3.0, 1.0], seed=0)                  # unnormalised mix
    assert b.min() >= 1 and abs(np.mean(b == 1) - 0.75) < 0.03
    with pytest.raises(ValueError):
        random_routes(n=5, probs=[-1, 2], seed=0)
    with pytest.raises(ValueError):
        fixed_routes(n=5, target=-1)


def test_oracle_hand_example_and_fallbacks():
    correct = np.array([[0, 1, 1], [1, 1, 1], [0, 0, 0], [0, 0, 1]], bool)
    costs = [1.0, 2.0, 3.0]
    assert oracle_routes(correct=correct, costs=costs).tolist() == [1, 0, 2, 2]
    assert oracle_routes(correct=correct, costs=costs, fallback="cheapest").tolist() == [1, 0, 0, 2]
    # expert family: costs not in index order (Sq 2.14, Mob 10.59, DeiT 7.56)
    ok = np.array([[0, 1, 1], [0, 1, 0]], bool)
    assert oracle_routes(correct=ok, costs=[2.14, 10.59, 7.56]).tolist() == [2, 1]
    with pytest.raises(ValueError):
        oracle_routes(correct=correct, costs=costs, fallback="best")


def _route_stats(route, correct, costs):
    hit = correct[np.arange(len(route)), route]
    return hit, np.asarray(costs)[route]


@pytest.mark.parametrize("seed", range(8))
def test_oracle_dominates_every_method(seed):
    """On the same samples: the oracle is at least as accurate as any route; wherever a route is
    right the oracle is right at no more cost; no route matches the oracle's accuracy for less."""
    rng = np.random.default_rng(seed)
    n, k, c = 300, 4, 5
    logits = rng.normal(0, 1, (n, k, c)) * np.linspace(0.5, 3, k)[None, :, None]
    labels = rng.integers(0, c, n)
    logits[np.arange(n), :, labels] += np.linspace(0, 2, k)                    # deeper = better
    correct = logits.argmax(-1) == labels[:, None]
    costs = np.array([0.25, 0.5, 0.75, 1.0])
    oracle = oracle_routes(correct=correct, costs=costs, fallback="cheapest")
    o_hit, o_cost = _route_stats(oracle, correct, costs)
    others = [fixed_routes(n=n, target=t) for t in range(k)]
    others += [random_routes(n=n, probs=np.ones(k), seed=seed)]
    others += list(branchynet_routes(exit_logits=logits, thresholds=[0.1, 0.5, 1.0, 1.5]))
    others += list(cascade_routes(logits=logits, order=range(k), costs=costs,
                                  thresholds=[0.3, 0.6, 0.9])[0])
    for route in others:
        hit, cost = _route_stats(route, correct, costs)
        assert o_hit.mean() >= hit.mean()
        assert np.all(o_hit[hit]) and np.all(o_cost[hit] <= cost[hit])
        if hit.mean() >= o_hit.mean():
            assert cost.mean() >= o_cost.mean()
    fb_last = oracle_routes(correct=correct, costs=costs)                      # paper's oracle
    assert np.array_equal(_route_stats(fb_last, correct, costs)[0], o_hit)


def test_branchynet_extremes_and_hand_example():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 4, 10))
    assert np.all(branchynet_routes(exit_logits=logits, thresholds=[0.0]) == 3)
    assert np.all(branchynet_routes(exit_logits=logits, thresholds=[1e9]) == 0)
    # entropies: exit0 uniform (log 3 = 1.0986), exit1 ~1e-3, exit2 ~2e-20
    z = np.array([[[0, 0, 0], [10, 0, 0], [50, 0, 0], [0, 0, 0]]], float)
    ent = softmax_entropy(logits=z)[0]
    assert abs(ent[0] - np.log(3)) < 1e-12 and ent[1] < 0.01 and ent[3] == pytest.approx(np.log(3))
    routes = branchynet_routes(exit_logits=z, thresholds=[1e-15, 0.01, 1.2])
    assert routes[:, 0].tolist() == [2, 1, 0]


def test_cascade_cost_accounting():
    # 3 experts, run in order 2 -> 0 -> 1; max softmax per expert for 3 samples:
    # sample 0: expert 2 confident (0.9) -> stop at 2, cost c2
    # sample 1: expert 2 unsure, expert 0 confident -> stop at 0, cost c2 + c0
    # sample 2: nobody confident -> last in order (1), cost c2 + c0 + c1
    p = np.array([[[.5, .5], [.5, .5], [.9, .1]],
                  [[.95, .05], [.5, .5], [.6, .4]],
                  [[.55, .45], [.6, .4], [.5, .5]]])
    costs = [2.0, 10.0, 1.0]
    chosen, cost = cascade_routes(logits=np.log(p), order=[2, 0, 1], costs=costs,
                                  thresholds=[0.8, 0.0, 1.01])
    assert chosen.tolist() == [[2, 0, 1], [2, 2, 2], [1, 1, 1]]
    np.testing.assert_allclose(cost, [[1, 3, 13], [1, 1, 1], [13, 13, 13]])
    with pytest.raises(ValueError):
        cascade_routes(logits=np.log(p), order=[0, 0], costs=costs, thresholds=[0.5])


def test_pareto_on_val():
    acc = np.array([0.5, 0.7, 0.6, 0.9, 0.7, 0.9, 0.95])
    cost = np.array([0.2, 0.4, 0.5, 0.8, 0.4, 0.9, 1.0])
    mask = pareto_on_val(val_acc=acc, val_cost=cost)
    # 2 dominated by 1; 4 duplicates 1 (first kept); 5 dominated by 3
    assert mask.tolist() == [True, True, False, True, False, False, True]
