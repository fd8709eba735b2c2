"""Baselines: fixed, random, oracle, BranchyNet, cascade, Pareto selection on val."""
import numpy as np
import pytest

from trainers.baselines import (branchynet_routes, cascade_routes, fixed_routes, oracle_routes,
                                pareto_on_val, random_routes, softmax_entropy)


def test_fixed_and_random_routes():
    assert fixed_routes(n=3, target=2).tolist() == [2, 2, 2]
    assert fixed_routes(n=2, target=0).dtype == np.int64
    # a probability-1 target takes every sample; the seed picks the draw
    assert random_routes(n=6, probs=[0, 2.0, 0], seed=1).tolist() == [1] * 6
    assert not np.array_equal(random_routes(n=50, probs=[1, 1], seed=7),
                              random_routes(n=50, probs=[1, 1], seed=8))
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


def test_oracle_fallbacks_with_costs_out_of_index_order():
    # costs 3, 1, 2: the cheapest target is index 1, the last index 2 is not the dearest
    correct = np.array([[0, 0, 0], [1, 0, 1], [1, 1, 1], [1, 0, 0]], bool)
    costs = [3.0, 1.0, 2.0]
    assert oracle_routes(correct=correct, costs=costs).tolist() == [2, 2, 1, 0]
    assert oracle_routes(correct=correct, costs=costs, fallback="cheapest").tolist() == [1, 2, 1, 0]
    # equal costs: the lower index wins
    tie = np.array([[0, 1, 1], [1, 1, 0]], bool)
    assert oracle_routes(correct=tie, costs=[2.0, 2.0, 2.0]).tolist() == [1, 0]


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
    # the fallbacks differ only where no target is right: 'last' = T-1, 'cheapest' = argmin
    fb_last = oracle_routes(correct=correct, costs=costs)                      # paper's oracle
    none = ~correct.any(axis=1)
    assert none.any() and (~none).any()
    assert np.array_equal(fb_last[~none], oracle[~none])
    assert np.all(fb_last[none] == k - 1) and np.all(oracle[none] == 0)


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


def test_branchynet_scores_by_entropy_not_max_softmax():
    # exit 0 of sample A: p = (.5, .5, 0): entropy log 2 = .6931, 1 - max p = .5
    # exit 0 of sample B: p = (.6, .2, .2): entropy .9503,          1 - max p = .4
    # entropy orders A before B, 1 - max p orders B before A.
    p0 = np.array([[.5, .5, 1e-300], [.6, .2, .2]])
    z = np.stack([np.log(p0), np.zeros((2, 3))], axis=1)                      # [N=2, K=2, C=3]
    routes = branchynet_routes(exit_logits=z, thresholds=[0.45, 0.8])
    # thr .45: no entropy below it -> both last (1 - max p would send B to exit 0)
    # thr .8: A exits (.693 < .8), B does not (.950) (1 - max p would send both to exit 0)
    assert routes.tolist() == [[1, 1], [0, 1]]


def test_branchynet_threshold_is_strict():
    # exit 0 certain (entropy exactly 0), exit 1 uniform over 2 classes (entropy exactly log 2)
    z = np.array([[[0.0, -1e4, -1e4], [0.0, 0.0, -1e4], [0.0, 0.0, 0.0]],
                  [[0.0, 0.0, 0.0], [0.0, 0.0, -1e4], [0.0, 0.0, 0.0]]])
    assert softmax_entropy(logits=z[0, 0]) == 0.0 and softmax_entropy(logits=z[0, 1]) == np.log(2)
    routes = branchynet_routes(exit_logits=z, thresholds=[0.0, np.log(2), np.nextafter(np.log(2), 1)])
    # entropy < thr: at thr 0 nobody exits; at thr log 2 only the certain exit 0 counts
    assert routes.tolist() == [[2, 2], [0, 2], [0, 1]]


def test_cascade_threshold_is_non_strict():
    # expert 0: max softmax exactly 1 (logits 0, -1e4) on sample 0, exactly .5 on sample 1
    z = np.array([[[0.0, -1e4], [0.0, 5.0]], [[0.0, 0.0], [5.0, 0.0]]])
    chosen, cost = cascade_routes(logits=z, order=[0, 1], costs=[1.0, 4.0],
                                  thresholds=[1.0, 0.5, np.nextafter(0.5, 1)])
    # conf >= thr: stop at 0 when equal
    assert chosen.tolist() == [[0, 1], [0, 0], [0, 1]]
    np.testing.assert_array_equal(cost, [[1, 5], [1, 1], [1, 5]])


def test_pareto_on_val_ties():
    # equal cost: only the more accurate point; equal accuracy: only the cheaper;
    # duplicates (0 and 3): the first index
    acc = np.array([0.6, 0.5, 0.8, 0.6, 0.8, 0.9])
    cost = np.array([0.2, 0.2, 0.5, 0.2, 0.6, 0.5])
    assert pareto_on_val(val_acc=acc, val_cost=cost).tolist() == [True, False, False, False,
                                                                  False, True]
    acc2 = np.array([0.6, 0.8, 0.8, 0.6])
    cost2 = np.array([0.3, 0.5, 0.5, 0.2])
    assert pareto_on_val(val_acc=acc2, val_cost=cost2).tolist() == [False, True, False, True]


# ----------------------------------------------------------------------------- cost-matched random
# costs (1, 4, 2) ms: sorted 1 < 2 < 4. Target 3 lies between 2 and 4: p(4) = (3-2)/(4-2) = 1/2,
# p(2) = 1/2, expected 0.5*4 + 0.5*2 = 3. Target 1.25 between 1 and 2: p(2) = .25, p(1) = .75,
# expected .75 + .5 = 1.25. Target 2 is expert 2 alone.
MATCH = [(3.0, [0.0, 0.5, 0.5]), (1.25, [0.75, 0.0, 0.25]), (2.0, [0.0, 0.0, 1.0]),
         (1.0, [1.0, 0.0, 0.0]), (4.0, [0.0, 1.0, 0.0]), (3.5, [0.0, 0.75, 0.25])]


@pytest.mark.parametrize("target,probs", MATCH)
def test_cost_matched_mix_by_hand(target, probs):
    from trainers.baselines import cost_matched_mix
    p = cost_matched_mix(costs=[1.0, 4.0, 2.0], target=target)
    np.testing.assert_allclose(p, probs, atol=1e-12)
    assert p @ np.array([1.0, 4.0, 2.0]) == pytest.approx(target, abs=1e-12)


def test_cost_matched_mix_ties_take_the_lower_index():
    from trainers.baselines import cost_matched_mix
    np.testing.assert_array_equal(cost_matched_mix(costs=[2, 1, 1, 3, 3], target=1), [0, 1, 0, 0, 0])
    np.testing.assert_allclose(cost_matched_mix(costs=[3, 1, 1, 3], target=2), [.5, .5, 0, 0])
    np.testing.assert_allclose(cost_matched_mix(costs=[1, 3, 1, 3], target=2.5), [.25, .75, 0, 0])


@pytest.mark.parametrize("target", [0.999, 4.001, float("nan"), float("inf")])
def test_cost_matched_mix_refuses_costs_no_mix_reaches(target):
    from trainers.baselines import cost_matched_mix
    with pytest.raises(ValueError, match="outside"):
        cost_matched_mix(costs=[1.0, 4.0, 2.0], target=target)


@pytest.mark.parametrize("costs", [[], [[1.0, 2.0]], [1.0, float("nan")], ["fast", "slow"]])
def test_cost_matched_mix_refuses_bad_costs(costs):
    from trainers.baselines import cost_levels, cost_matched_mix
    with pytest.raises(ValueError):
        cost_matched_mix(costs=costs, target=1.0)
    with pytest.raises(ValueError):
        cost_levels(costs=costs, n=3)


def test_cost_levels_by_hand():
    from trainers.baselines import cost_levels
    np.testing.assert_allclose(cost_levels(costs=[1.0, 4.0, 2.0], n=4), [1, 2, 3, 4])
    np.testing.assert_allclose(cost_levels(costs=[0.5, 0.25, 1.0], n=2), [0.25, 1.0])
    for n in (1, 0, 2.5):
        with pytest.raises(ValueError, match="n >= 2"):
            cost_levels(costs=[1.0, 2.0], n=n)


def test_cost_matched_random_routes_reach_the_target_cost():
    """A law: the draws' mean cost converges to the target (2000 draws, 5 sd of the mix)."""
    from trainers.baselines import cost_matched_mix, random_routes
    c = np.array([1.0, 4.0, 2.0])
    for target in (1.25, 3.0, 3.9):
        r = random_routes(n=2000, probs=cost_matched_mix(costs=c, target=target), seed=0)
        assert set(np.unique(r)) <= {0, 1, 2}
        sd = np.sqrt(cost_matched_mix(costs=c, target=target) @ (c - target) ** 2 / 2000)
        assert abs(c[r].mean() - target) <= 5 * sd
