"""The baselines' input contracts and numerics (trainers/baselines.py), case by case: what
mutation testing showed test_baselines.py let through."""
import numpy as np
import pytest

from trainers import baselines as B


def test_fixed_routes_are_int64():
    r = B.fixed_routes(n=3, target=2.0)
    assert r.tolist() == [2, 2, 2] and r.dtype == np.int64


@pytest.mark.parametrize("probs", [[[0.5, 0.5]], [], [np.nan, 1.0], [np.inf, 1.0], [-0.1, 1.1],
                                   [0.0, 0.0]])
def test_random_routes_refuses_each_bad_mix_alone(probs):
    """Each condition on its own refuses (2-d, empty, NaN, inf, negative, zero sum)."""
    with pytest.raises(ValueError, match="random routing probabilities"):
        B.random_routes(n=4, probs=probs, seed=0)


def test_random_routes_one_target_and_unnormalised_weights():
    assert B.random_routes(n=5, probs=[3.0], seed=1).tolist() == [0] * 5
    r = B.random_routes(n=2000, probs=[1, 3], seed=0)                 # ints, sum 4 -> 1/4, 3/4
    assert r.dtype == np.int64 and abs(r.mean() - 0.75) < 0.03


@pytest.mark.parametrize("correct, costs", [([True, False], [1.0, 2.0]),          # 1-d
                                            ([[True, False]], [1.0, 2.0, 3.0])])  # T mismatch
def test_oracle_refuses_each_shape_error_alone(correct, costs):
    with pytest.raises(ValueError, match=r"oracle needs correct \[N, T\]"):
        B.oracle_routes(correct=correct, costs=costs)


def test_oracle_reads_correct_as_truth_values_and_ties_by_index_among_many():
    """0/1 ints mean wrong/right; 40 targets whose costs tie in threes: the lowest index of the
    cheapest correct ones wins (a stable sort; numpy's default quicksort reorders ties here)."""
    assert B.oracle_routes(correct=[[0, 1], [0, 0]], costs=[1, 2], fallback="cheapest").tolist() \
        == [1, 0]
    costs = np.random.default_rng(6).integers(0, 3, 40).astype(float)   # cost 0 first at 10
    cheapest = int(np.flatnonzero(costs == 0)[0])
    ok = np.ones((2, 40), bool)
    ok[1] = False                                       # nothing right: the 'cheapest' fallback
    assert cheapest == 10
    assert B.oracle_routes(correct=ok, costs=costs, fallback="cheapest").tolist() == [10, 10]


def test_log_softmax_is_stable_for_large_logits():
    """Subtracting (not adding) the max: logits 1000 and 0 give log-probs 0 and -1000."""
    out = B._log_softmax(np.array([[1000.0, 0.0]]))
    assert np.allclose(out, [[0.0, -1000.0]])
    assert np.allclose(B._log_softmax(np.array([[1, 1]])), -np.log(2))          # ints too


def test_first_hit_with_nothing_to_check_is_last():
    """No positions (L = 0): every sample at `last`, shape [T, N], int64."""
    out = B._first_hit(np.zeros((2, 3, 0), bool), 4)
    assert out.shape == (2, 3) and out.dtype == np.int64 and (out == 4).all()


def test_branchynet_with_one_exit_and_thresholds_of_any_shape():
    """One exit: nothing before it, so every threshold routes to exit 0 (the only, last one);
    thresholds given as a [2,1] column are read as a flat list."""
    logits = np.zeros((3, 1, 4))
    out = B.branchynet_routes(exit_logits=logits, thresholds=np.array([[0.1], [5]]))
    assert out.shape == (2, 3) and (out == 0).all()


def _cascade(**kw):
    logits = np.log(np.array([[[0.9, 0.1], [0.5, 0.5], [0.6, 0.4]],
                              [[0.6, 0.4], [0.5, 0.5], [0.95, 0.05]]]))        # [N=2,E=3,C=2]
    args = dict(logits=logits, order=[0, 2], costs=[1.0, 5.0, 2.0], thresholds=[0.8]) | kw
    return B.cascade_routes(**args)


@pytest.mark.parametrize("order", [[], [0, 0], [-1, 1], [0, 3]])
def test_cascade_refuses_each_bad_order_alone(order):
    with pytest.raises(ValueError, match="cascade order must list distinct expert indices < 3"):
        _cascade(order=order)


def test_cascade_one_expert_order_and_the_last_index():
    """Order [2] alone: expert 2 for all, at its cost; order [0, 2] may end at index 2 = E-1;
    an order of floats and thresholds as a column are read as flat integer/float lists."""
    e, c = _cascade(order=[2])
    assert e.tolist() == [[2, 2]] and c.tolist() == [[2.0, 2.0]]
    e, c = _cascade(order=np.array([[0.0], [2.0]]), thresholds=np.array([[0.8], [0.95]]))
    assert e.tolist() == [[0, 2], [2, 2]] and c.tolist() == [[1.0, 3.0], [3.0, 3.0]]


def test_cascade_refuses_a_cost_count_that_is_not_the_expert_count():
    with pytest.raises(ValueError, match="cascade needs one cost per expert: 2 costs, 3 experts"):
        _cascade(costs=[1.0, 2.0])


@pytest.mark.parametrize("acc, cost", [([0.5, 0.6], [1.0]), ([[0.5]], [[1.0]])])
def test_pareto_on_val_refuses_each_shape_error_alone(acc, cost):
    with pytest.raises(ValueError, match="must be 1-d of equal length"):
        B.pareto_on_val(val_acc=acc, val_cost=cost)


def test_pareto_on_val_is_a_boolean_mask_and_reads_ints():
    keep = B.pareto_on_val(val_acc=[1, 0, 1], val_cost=[2, 1, 3])    # ints: 1 = 100 %
    assert keep.dtype == bool and keep.tolist() == [True, True, False]
