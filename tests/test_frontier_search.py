"""`sweep.search: frontier` (sweep/tuning/frontier_plan.py, search.py) on fake objectives whose
frontier is known: λ sequences worked by hand, the stopping rules, the seed mean, and Tune's
Searcher protocol (suggest / on_trial_complete / FINISHED / save + restore)."""
import math

import numpy as np
import pytest
from ray.tune.search import Searcher

from sweep.config import load_config
from sweep.errors import UserError
from sweep.tuning.frontier_plan import (FrontierPlan, _setting, contributions,
                                         hypervolume, pareto)
from sweep.tuning.search import FrontierSearcher, plans, val_points

ONE = [{"family": "f", "lam": 0.0, "tau": 1.0, "seed": 0}]


def _run(plan, objective) -> list:
    """Drive a plan to the end, one batch at a time; the λ values in the order run."""
    seq = []
    while batch := plan.next_points():
        for p in batch:
            seq.append(p["lam"])
            plan.add(p, objective(p))
    return seq


def test_sqrt_frontier_by_hand():
    """cost = λ, accuracy = √λ on [0, 1]. Coarse 0, ½, 1; then the gap areas (Δc·Δa):
    0→½: 0.354 > ½→1: 0.146 -> ¼; then ½→1 (0.146) -> ¾; then 0→¼ (0.125) -> ⅛;
    then ¼→½ (0.052) -> ⅜; then 0→⅛ (0.044) -> 1/16. Budget 8: done."""
    plan = FrontierPlan(ONE, lams=[0, 1], coarse=3, budget=8, tol=0)
    seq = _run(plan, lambda p: [[p["lam"], math.sqrt(p["lam"])]])
    assert seq == [0, 0.5, 1, 0.25, 0.75, 0.125, 0.375, 0.0625]
    assert plan.finished and plan.runs == 8


def test_no_trial_where_the_frontier_is_flat():
    """accuracy = min(1, 2λ): past λ = ½ every point is dominated by λ = ½, so every new λ
    lands in (0, ½), and the found hypervolume (against cost ½) approaches the true frontier's:
    ∫₀¹ (½ − a/2) da = ¼, from below."""
    plan = FrontierPlan(ONE, lams=[0, 1], coarse=3, budget=12, tol=0)
    seq = _run(plan, lambda p: [[p["lam"], min(1.0, 2 * p["lam"])]])
    assert all(0 < lam < 0.5 for lam in seq[3:]) and len(seq) == 12
    front = plan.val_front()
    assert hypervolume(front) == pytest.approx(0.25, abs=0.03)
    assert hypervolume(front) <= 0.25


def test_stops_at_the_tolerance_and_at_the_budget():
    flat = FrontierPlan(ONE, lams=[0, 1], coarse=3, budget=50, tol=1e-3)
    assert _run(flat, lambda p: [[p["lam"], 0.9]]) == [0, 0.5, 1]      # one frontier point
    # accuracy 0.9 + 0.001 λ: gaps of 0.5 x 0.0005 against a hypervolume of ~0.9: below 1e-3
    # of it, so the coarse pass is all; with tol 0 the search goes on to its budget
    slight = lambda p: [[p["lam"], 0.9 + 0.001 * p["lam"]]]  # noqa: E731
    assert _run(FrontierPlan(ONE, lams=[0, 1], coarse=3, budget=50, tol=1e-3), slight) == [0, 0.5, 1]
    assert len(_run(FrontierPlan(ONE, lams=[0, 1], coarse=3, budget=5, tol=0), slight)) == 5
    two_seeds = [dict(ONE[0], seed=0), dict(ONE[0], seed=1)]
    short = FrontierPlan(two_seeds, lams=[0, 1], coarse=3, budget=7, tol=0)
    # coarse on seed 0: 3 trials. Refining at ¼ would need 3 + 1 trials, plus the seed 1 of
    # the 3 frontier configurations and of the new one: 8 > 7, so the plan replicates: by
    # contribution against cost 1.5 (one mean gap beyond 1): ½ (0.354), 1 (0.146), 0 (0);
    # then nothing is missing and refining still does not fit: done at 6
    assert _run(short, lambda p: [[p["lam"], math.sqrt(p["lam"])]]) == [0, .5, 1, .5, 1, 0]
    assert short.runs == 6 and short.finished
    # one more trial of budget: ¼ fits with its replica (3 + 1 + 4 = 8), then the replicas
    # by contribution against cost 4/3: ¼ (.125), ½ (.104), 1 (.098), 0 (0)
    more = FrontierPlan(two_seeds, lams=[0, 1], coarse=3, budget=8, tol=0)
    assert _run(more, lambda p: [[p["lam"], math.sqrt(p["lam"])]]) == \
        [0, .5, 1, .25, .25, .5, 1, 0]


def test_without_replicas_the_whole_budget_refines():
    """replicate=False: the sqrt frontier of test_sqrt_frontier_by_hand on two seeds, seeds in
    turn, never a second seed of one configuration."""
    two = [dict(ONE[0], seed=0), dict(ONE[0], seed=1)]
    plan = FrontierPlan(two, lams=[0, 1], coarse=3, budget=7, tol=0, replicate=False)
    seen = []
    while batch := plan.next_points():
        for p in batch:
            seen.append((p["lam"], p["seed"]))
            plan.add(p, [[p["lam"], math.sqrt(p["lam"])]])
    assert seen == [(0, 0), (.5, 1), (1, 0), (.25, 1), (.75, 0), (.125, 1), (.375, 0)]


def test_replicas_go_to_the_frontier_and_seeds_are_averaged():
    two = [dict(ONE[0], seed=0), dict(ONE[0], seed=1)]
    plan = FrontierPlan(two, lams=[0, 1], coarse=2, budget=10, tol=1.0)   # never refines
    batch = plan.next_points() + plan.next_points()     # the coarse batches go out together
    assert [(p["lam"], p["seed"]) for p in batch] == [(0, 0), (1, 1)]   # seeds in turn
    assert plan.next_points() == []
    objective = lambda p: [[p["lam"], 0.5 + 0.2 * p["seed"] - 0.15 * p["lam"]]]  # noqa: E731
    for p in batch:
        plan.add(p, objective(p))
    # front (0, .5), (1, .55); contributions against cost 2: .5 and .05, so λ 0 first
    [rep] = plan.next_points()
    assert (rep["lam"], rep["seed"]) == (0, 1)
    plan.add(rep, objective(rep))  # (0, .7): λ 0's seed mean (0, .6) dominates λ 1's (1, .55)
    assert plan.val_front() == [(0.0, pytest.approx(0.6), 0.0, _setting(ONE[0]))]
    assert plan.next_points() == [] and plan.finished and plan.runs == 3   # λ 1: off the front


def test_a_failed_trial_adds_nothing():
    plan = FrontierPlan(ONE, lams=[0, 1], coarse=2, budget=4, tol=0)
    a, b = plan.next_points() + plan.next_points()
    plan.add(a, None)
    plan.add(b, [[1.0, 0.9]])
    assert plan.outstanding == 0 and plan.val_front() == [(1.0, 0.9, 1.0, _setting(ONE[0]))]


def test_exploring_seeds_go_in_turn_from_the_search_seed():
    three = [dict(ONE[0], seed=s) for s in (7, 8, 9)]
    for seed, want in ((0, [7, 8, 9]), (1, [8, 9, 7]), (4, [8, 9, 7])):
        plan = FrontierPlan(three, lams=[0, 1], coarse=3, seed=seed)
        assert [p["seed"] for _ in range(3) for p in plan.next_points()] == want


def test_pareto_and_hypervolume_by_hand():
    front = pareto([(1, .5, 0), (2, .5, 1), (2, .8, 2), (3, .7, 3), (4, .9, 4)])
    assert front == [(1, .5, 0), (2, .8, 2), (4, .9, 4)]
    assert hypervolume(front) == pytest.approx(3 * .5 + 2 * .3 + 0 * .1)
    # exclusive shares against cost 5.5 (one mean gap, 1.5, beyond 4): (2-1)(.5-0),
    # (4-2)(.8-.5), (5.5-4)(.9-.8)
    assert contributions(front) == pytest.approx([.5, .6, .15])


def test_the_searcher_speaks_tunes_protocol(tmp_path):
    searcher = FrontierSearcher({"f": FrontierPlan(ONE, lams=[0, 1], coarse=2, budget=3,
                                                   tol=0)})
    assert searcher.budget() == 3
    a, b = searcher.suggest("t1"), searcher.suggest("t2")
    assert (a["point"]["lam"], b["point"]["lam"]) == (0, 1)
    assert searcher.suggest("t3") is None               # waiting for the coarse results
    searcher.on_trial_complete("t1", {"val_cost": 0.0, "val_accuracy": 0.2})
    searcher.on_trial_complete("t2", {"val_points": [[1.0, 0.9]], "status": "ok"})
    searcher.save(str(tmp_path / "state.pkl"))
    again = FrontierSearcher({})
    again.restore(str(tmp_path / "state.pkl"))
    c = again.suggest("t3")
    assert c["point"]["lam"] == 0.5                      # the one gap: 0 -> 1
    assert again.suggest("t4") is None
    again.on_trial_complete("t4-unknown", None)          # not ours: ignored
    again.on_trial_complete("t3", {"status": "failed"}, error=True)
    assert again.suggest("t5") == Searcher.FINISHED      # budget 3 spent


def test_val_points_of_a_result():
    assert val_points({"val_points": [[0.5, 0.9]]}) == [[0.5, 0.9]]
    assert val_points({"val_cost": 1.0, "val_accuracy": 0.7}) == [[1.0, 0.7]]
    assert val_points({"status": "failed", "val_cost": 1.0}) is None
    assert val_points(None) is None and val_points({"epoch": 1}) is None


def test_plans_follow_each_familys_grid():
    cfg = load_config(None, ["sweep.search=frontier", "sweep.max_trials=30"])
    by_family = plans(cfg)
    assert set(by_family) == {"experts", "exits"}
    gater = by_family["experts"]
    assert len(gater.settings) == len(cfg.gater.taus) and gater.seeds == list(cfg.gater.seeds)
    lo, hi = min(cfg.gater.lams), max(cfg.gater.lams)
    assert [b[0][0] for b in gater.todo] == pytest.approx(
        np.linspace(lo, hi, cfg.sweep.coarse_lams).tolist())
    assert gater.budget == 30
    assert all(len(b) == len(cfg.gater.taus) for b in gater.todo)   # every τ, one seed each
    assert [x[2] for x in gater.todo[0]] == list(cfg.gater.seeds)[:len(cfg.gater.taus)]


@pytest.mark.parametrize("sets, message", [
    (["sweep.search=hyperopt"], "sweep.search must be one of grid, frontier, optuna"),
    (["sweep.coarse_lams=1"], "sweep.coarse_lams must be an integer >= 2"),
    (["sweep.hv_tol=2.0"], "sweep.hv_tol must be"),
])
def test_bad_search_settings_stop_before_compute(sets, message):
    with pytest.raises(UserError, match=message):
        load_config(None, sets)


@pytest.mark.slow
def test_a_frontier_search_with_an_axis_end_to_end(tmp_path):
    """The smoke run with `sweep.search: frontier` (8 trials per family) and one axis: λ values
    the config never listed, the axis as a column and in `variant`, trial names with both."""
    import json
    import os
    import subprocess
    import sys

    import pandas as pd
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "sweep.run", "--smoke-test", "--out", str(out),
                        "--set", f"cache_dir={tmp_path / 'cache'}", "--set",
                        "sweep.search=frontier", "--set", "sweep.max_trials=8", "--set",
                        "sweep.axes.exits.router_hidden=[16,32]"],
                       cwd=root, env={**os.environ, "PYTHONPATH": root}, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "at most 16 trials (frontier search)" in r.stdout
    points = pd.read_parquet(out / "points.parquet")
    gater = set(points.loc[points["method"] == "gater", "lam"])
    coarse = {0.5, 0.666667, 0.833333, 1.0}          # coarse_lams 4 over the smoke λ range
    assert coarse <= gater and gater - coarse                          # placed by the search
    em = points[points["method"] == "em_router"]
    assert set(em["exits.router_hidden"]) == {16, 32}
    assert set(em["variant"]) == {"router_hidden=16", "router_hidden=32"}
    trials = json.loads((out / "manifest.json").read_text())["trials"]
    assert len(trials) <= 16 and all(t["status"] == "ok" for t in trials)


# ------------------------------------------------------------------ sweep.search: optuna

class FakeTrial:
    """What OptunaSpace asks of an Optuna trial: suggest_float, suggest_categorical, number."""

    def __init__(self, number, lam, setting):
        self.number, self.lam, self.setting, self.asked = number, lam, setting, []

    def suggest_float(self, name, lo, hi):
        self.asked.append((name, lo, hi))
        return self.lam

    def suggest_categorical(self, name, choices):
        self.asked.append((name, tuple(choices)))
        return self.setting


def test_optuna_space_and_budget():
    pytest.importorskip("optuna")
    from sweep.tuning.search import optuna_search
    cfg = load_config(None, ["sweep.search=optuna", "exits.enabled=false", "gater.taus=[0.5,1]",
                             "gater.seeds=[0,1,2]", "gater.lams=[0.5,0.9]"])
    search, budget = optuna_search(cfg)
    assert budget == 2 * 2 * 3 and search.metric == ["val_accuracy", "val_cost"]
    assert search.mode == ["max", "min"]
    space = search._space
    trial = FakeTrial(number=4, lam=0.61234567, setting=1)
    point = space(trial)["point"]
    assert trial.asked == [("lam", 0.5, 0.9), ("setting", (0, 1))]
    assert point == {"family": "experts", "lam": 0.612346, "tau": 1.0, "seed": 1}  # 4 % 3
    assert optuna_search(load_config(None, ["sweep.search=optuna", "exits.enabled=false",
                                            "sweep.max_trials=5"]))[1] == 5


def test_optuna_needs_one_family_and_the_package(monkeypatch):
    import importlib.util
    with pytest.raises(UserError, match="searches one family at a time; enabled: gater, exits"):
        load_config(None, ["sweep.search=optuna"])
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda mod, *a: None if mod == "optuna" else real(mod, *a))
    with pytest.raises(UserError, match="optuna is not installed"):
        load_config(None, ["sweep.search=optuna", "exits.enabled=false"])


def test_em_objectives_are_its_most_accurate_val_point():
    from sweep.families.em import _val_objectives
    got = _val_objectives([[0.3, 0.8], [0.5, 0.9], [0.7, 0.9], [1.0, 0.85]])
    assert (got["val_cost"], got["val_accuracy"]) == (0.5, 0.9) and len(got["val_points"]) == 4


@pytest.mark.slow
def test_an_optuna_search_end_to_end(tmp_path):
    pytest.importorskip("optuna")
    import os
    import subprocess
    import sys

    import pandas as pd
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "sweep.run", "--smoke-test", "--out", str(out),
                        "--set", f"cache_dir={tmp_path / 'cache'}", "--set", "sweep.search=optuna",
                        "--set", "exits.enabled=false", "--set", "sweep.max_trials=5"],
                       cwd=root, env={**os.environ, "PYTHONPATH": root}, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    points = pd.read_parquet(out / "points.parquet")
    lams = set(points.loc[points["method"] == "gater", "lam"])
    assert len(lams) == 5 and all(0.5 <= lam <= 1.0 for lam in lams)


def test_two_settings_of_one_lam_are_split_towards_each_others_cost():
    """Two τ of λ ½ far apart in cost (τ 1: (1, .5); τ 2: (3, .8)) with λ 0 and 1 placed:
    their λ cannot be split, so τ 1 moves half way up to λ ¾ (cost rises with λ here) and
    τ 2 half way down to ¼."""
    two = [dict(ONE[0], tau=1.0), dict(ONE[0], tau=2.0)]
    plan = FrontierPlan(two, lams=[0, 1], coarse=3, budget=20, tol=0)
    table = {(0.0, 1.0): (0.5, .1), (0.0, 2.0): (0.6, .1), (0.5, 1.0): (1, .5),
             (0.5, 2.0): (3, .8), (1.0, 1.0): (4, .81), (1.0, 2.0): (4, .81)}
    batch = [p for _ in range(3) for p in plan.next_points()]
    for p in batch:
        plan.add(p, [list(table[(p["lam"], p["tau"])])])
    # gaps: (.5,.1)->(1,.5): .5 x .4 = .2; (1,.5)->(3,.8): 2 x .3 = .6; (3,.8)->(4,.81): .01
    got = [(p["lam"], p["tau"]) for p in plan.next_points()]
    assert got == [(0.75, 1.0), (0.25, 2.0)]


def test_the_cost_side_of_lam_is_read_from_the_results():
    """EM-like: cost falls as λ rises, so the cheaper setting moves DOWN in λ."""
    two = [dict(ONE[0], tau=1.0), dict(ONE[0], tau=2.0)]
    plan = FrontierPlan(two, lams=[0, 1], coarse=3, budget=20, tol=0)
    table = {(1.0, 1.0): (0.5, .1), (1.0, 2.0): (0.6, .1), (0.5, 1.0): (1, .5),
             (0.5, 2.0): (3, .8), (0.0, 1.0): (4, .81), (0.0, 2.0): (4, .81)}
    for p in [p for _ in range(3) for p in plan.next_points()]:
        plan.add(p, [list(table[(p["lam"], p["tau"])])])
    assert plan._up() == -1
    assert [(p["lam"], p["tau"]) for p in plan.next_points()] == [(0.25, 1.0), (0.75, 2.0)]
