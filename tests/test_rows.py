"""Threshold methods in the results assembly: every threshold is reported on val, on test only
those Pareto-optimal on val (sweep/families/rows.py, the EM router's seed-averaged curve in
sweep/families/em.py). The hand-built arrays are chosen so that choosing on test would keep a
different threshold than choosing on val."""
import numpy as np

from sweep.families.em import _em_router
from sweep.families import rows
from sweep.families.rows import add_threshold_method, val_curve

# 4 samples, 2 targets (exit 0 costs 1, exit 1 costs 3), 3 thresholds.
COST = np.array([1.0, 3.0])
THRESHOLDS = [0.2, 0.5, 0.8]
ROUTES = {"val": np.array([[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]]),
          "test": np.array([[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]])}
CORRECT = {"val": np.array([[1, 1], [1, 1], [0, 1], [0, 1]], bool),     # [N, targets]
           "test": np.array([[0, 1], [0, 1], [1, 0], [1, 1]], bool)}
# val:  thr .2 -> acc .5 @ 1; thr .5 -> .5 @ 2 (dominated by .2); thr .8 -> 1.0 @ 3
# test: thr .2 -> acc .5 @ 1; thr .5 -> 1.0 @ 2;                 thr .8 -> .75 @ 3 (dominated by .5)
# on val keep {.2, .8}; on test it would be {.2, .5}


class FakeTables:
    """Records what add / add_failed receive."""

    def __init__(self):
        self.rows, self.failed = [], []

    def add(self, *, meta, split, target, correct, cost, target_names):
        self.rows.append({"meta": meta, "split": split, "target": np.asarray(target).tolist(),
                          "correct": np.asarray(correct).tolist(),
                          "cost": np.asarray(cost).tolist(), "names": target_names})

    def add_failed(self, *, meta):
        self.failed.append(meta)

    def thresholds(self, split, **match):
        return [r["meta"]["threshold"] for r in self.rows if r["split"] == split
                and all(r["meta"].get(k) == v for k, v in match.items())]


def test_val_curve_by_hand():
    acc, cost = val_curve(routes_val=ROUTES["val"], costs_val=COST[ROUTES["val"]],
                          correct_val=CORRECT["val"])
    np.testing.assert_allclose(acc, [0.5, 0.5, 1.0])
    np.testing.assert_allclose(cost, [1.0, 2.0, 3.0])
    # per-sample costs that differ from the routes' (the cascade pays for every expert run)
    _, cost = val_curve(routes_val=ROUTES["val"], costs_val=np.array([[1, 2, 3, 6]] * 3, float),
                        correct_val=CORRECT["val"])
    np.testing.assert_allclose(cost, [3.0, 3.0, 3.0])


def test_add_threshold_method_keeps_the_val_pareto_thresholds_on_test():
    tables = FakeTables()
    add_threshold_method(tables, meta={"method": "branchynet"}, routes=ROUTES,
                         costs={s: COST[ROUTES[s]] for s in ROUTES}, correct=CORRECT,
                         thresholds=THRESHOLDS, names=["e0", "e1"])
    assert tables.thresholds("val") == [0.2, 0.5, 0.8]
    assert tables.thresholds("test") == [0.2, 0.8]                 # not {.2, .5}: chosen on val
    row = [r for r in tables.rows if r["split"] == "test"][-1]     # threshold .8 on test
    assert row["target"] == [1, 1, 1, 1] and row["names"] == ["e0", "e1"]
    assert row["correct"] == [True, True, False, True] and row["cost"] == [3.0] * 4
    assert row["meta"] == {"method": "branchynet", "threshold": 0.8}


def test_add_threshold_method_with_given_keep():
    tables = FakeTables()
    add_threshold_method(tables, meta={"method": "em_router"}, routes=ROUTES,
                         costs={s: COST[ROUTES[s]] for s in ROUTES}, correct=CORRECT,
                         thresholds=THRESHOLDS, names=["e0", "e1"],
                         keep=np.array([False, True, False]))
    assert tables.thresholds("val") == [0.2, 0.5, 0.8]
    assert tables.thresholds("test") == [0.5]


def test_em_router_chooses_on_the_seed_averaged_val_curve():
    # seed 0's val curve keeps {.2, .8}; seed 1's routes thr .5 as [0,0,1,1] (acc 1.0 @ 2) and
    # keeps {.2, .5}. The mean curve (.5 @ 1, .75 @ 2, 1.0 @ 3) keeps all three, for both seeds.
    seed1 = {s: ROUTES[s].copy() for s in ROUTES}
    seed1["val"][1] = [0, 0, 1, 1]

    def trial(seed, routes, lam=1.0):
        return {"trial_id": f"t{seed}-{lam}", "seed": seed, "lam": lam, "tau": 1.0,
                "status": "ok", "error": None,
                "decisions": {f"{s}_target": routes[s] for s in routes}}

    tables = FakeTables()
    _em_router(tables, [trial(0, ROUTES), trial(1, seed1), trial(2, ROUTES, lam=2.0)],
               base={"family": "exits"}, method="em_router", c=COST, correct=CORRECT,
               names=["e0", "e1"], thresholds=THRESHOLDS)
    assert tables.thresholds("test", seed=0) == [0.2, 0.5, 0.8]
    assert tables.thresholds("test", seed=1) == [0.2, 0.5, 0.8]
    assert tables.thresholds("test", seed=2) == [0.2, 0.8]        # its own (λ, τ): seed 0's curve
    assert tables.thresholds("val", seed=1) == [0.2, 0.5, 0.8] and not tables.failed


# ------------------------------------------------- routed families: one target per sample
def test_correct_targets_by_hand():
    logits = np.array([[[2.0, 1.0], [0.0, 3.0]],       # sample 0: target 0 says 0, target 1 says 1
                       [[0.0, 1.0], [5.0, 4.0]]])      # sample 1: target 0 says 1, target 1 says 0
    assert rows.correct_targets(logits, np.array([1, 1])).tolist() == [[False, True],
                                                                        [True, False]]


class _Fam:
    name, cost_unit, method = "toy", "ms", "toy-router"


class _Cfg:
    class data:
        seed = 7


def _trial(tid, status="ok", val=(0, 1), test=(1, 1, 0)):
    return {"trial_id": tid, "seed": 3, "lam": 0.25, "tau": 2.0, "status": status,
            "error": None if status == "ok" else "boom",
            "decisions": {"val_target": np.array(val), "test_target": np.array(test)}}


def test_routed_rows_adds_each_trials_routes_with_per_target_costs():
    """val: 2 samples, test: 3; target t costs (1.5, 4.0)[t]; a failed trial keeps one row."""
    store = {"meta": {"names": ["cheap", "dear"]},
             "val": {"logits": np.array([[[1, 0], [0, 1]], [[1, 0], [1, 0]]]),
                     "label": np.array([1, 0])},
             "test": {"logits": np.array([[[1, 0], [0, 1]], [[0, 1], [0, 1]], [[1, 0], [0, 1]]]),
                      "label": np.array([1, 1, 0])}}
    tab = FakeTables()
    assemble = rows.routed_rows(logits="logits", names="names", cost="ms")
    assemble(_Fam, tab, store, [_trial("a"), _trial("b", status="error")], {"ms": [1.5, 4.0]},
             _Cfg)
    assert [r["split"] for r in tab.rows] == ["val", "test"]              # trial a only
    val, test = tab.rows
    assert val["target"] == [0, 1] and val["correct"] == [False, True]
    assert val["cost"] == [1.5, 4.0] and val["names"] == ["cheap", "dear"]
    assert test["target"] == [1, 1, 0] and test["correct"] == [True, True, True]
    assert test["cost"] == [4.0, 4.0, 1.5]
    assert val["meta"] == {"family": "toy", "cost_unit": "ms", "seed": 3, "method": "toy-router",
                           "trial_id": "a", "lam": 0.25, "tau": 2.0, "variant": None}
    assert tab.failed == [{"family": "toy", "cost_unit": "ms", "seed": 3, "method": "toy-router",
                           "trial_id": "b", "lam": 0.25, "tau": 2.0, "variant": None,
                           "error": "boom"}]


def test_base_meta_takes_the_data_seed():
    assert rows.base_meta(_Fam, _Cfg) == {"family": "toy", "cost_unit": "ms", "seed": 7}
