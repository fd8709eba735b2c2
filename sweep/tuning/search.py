"""The searches of `sweep.search` besides the grid, as Tune Searchers.

`frontier`: `FrontierSearcher`, one `FrontierPlan` per enabled family.

`suggest` hands out the plans' points one trial at a time ({"point": ...}; Tune merges it into
the param space's settings and costs), None while a plan waits for its batch's results, and
FINISHED when every plan is done. `on_trial_complete` feeds each trial's val points back:
`val_points` ([[cost, accuracy], ...]: the EM router's curve over its thresholds) or else
(`val_cost`, `val_accuracy`) (the gater). Its state is saved with the experiment, so
`--resume` continues the same search.

`optuna`: Tune's `OptunaSearch`, multi-objective (val accuracy up, val cost down; Optuna's
default sampler for two objectives, NSGA-II, seeded by `sweep.search_seed`) over ONE enabled
family (checked with the config): λ uniform over its configured range, and its (τ, variant,
axes) setting as a categorical choice; seed i goes to the i-th trial in turn. A trial's
objectives are its final `val_accuracy` / `val_cost` (the EM router: the most accurate point of
its val curve, the cheapest among ties). `max_trials` trials (0: the grid's size).
"""
from __future__ import annotations

import os
import pickle

from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch         # optuna itself: only when used

from sweep import families
from sweep.tuning.frontier_plan import FrontierPlan


def val_points(result: dict | None):
    """A trial's val (cost, accuracy) points from its last result; None without."""
    if not result or result.get("status") == "failed":
        return None
    if result.get("val_points"):
        return result["val_points"]
    if result.get("val_cost") is not None and result.get("val_accuracy") is not None:
        return [[result["val_cost"], result["val_accuracy"]]]
    return None


def budget(cfg) -> int:
    """The trials a search may run: frontier, the sum of its plans' budgets; optuna,
    `max_trials` or the one family's grid size. No searcher is built (the console asks)."""
    if cfg.sweep.search == "frontier":
        return sum(p.budget for p in plans(cfg).values())
    return cfg.sweep.max_trials or sum(len(f.grid(cfg)) for f in families.enabled(cfg))


def plans(cfg) -> dict:
    """{family: FrontierPlan} of the enabled families (their grid at one λ as the template)."""
    sw, out = cfg.sweep, {}
    for f in families.enabled(cfg):
        grid = f.grid(cfg)
        first = grid[0]["lam"]
        out[f.name] = FrontierPlan([p for p in grid if p["lam"] == first],
                                   lams=f.section_of(cfg).lams, coarse=sw.coarse_lams,
                                   budget=sw.max_trials, tol=sw.hv_tol, seed=sw.search_seed,
                                   replicate=sw.replicate)
    return out


class FrontierSearcher(Searcher):
    """Tune's side of the plans (module doc)."""

    def __init__(self, plans_by_family: dict):
        super().__init__()     # no metric: Tune checks none (a trial's epochs report no val
                               # points; only its last result is read, on completion)
        self.plans, self.queue, self.pending = plans_by_family, [], {}

    def suggest(self, trial_id: str):
        if not self.queue:
            for name, plan in self.plans.items():
                self.queue += [(name, p) for p in plan.next_points()]
        if self.queue:
            name, point = self.queue.pop(0)
            self.pending[trial_id] = (name, point)
            return {"point": point}
        return None if self.pending else Searcher.FINISHED

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if trial_id in self.pending:
            name, point = self.pending.pop(trial_id)
            self.plans[name].add(point, None if error else val_points(result))

    def budget(self) -> int:
        return sum(p.budget for p in self.plans.values())

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump((self.plans, self.queue, self.pending), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.plans, self.queue, self.pending = pickle.load(f)


def optuna_search(cfg) -> tuple:
    """(OptunaSearch over the one enabled family, its trial budget): module doc."""
    [fam] = families.enabled(cfg)
    grid, sec = fam.grid(cfg), fam.section_of(cfg)
    settings = list({_without(p, "lam", "seed"): p for p in grid}.values())   # τ, variant, axes
    space = OptunaSpace(settings, list(sec.seeds), float(min(sec.lams)), float(max(sec.lams)))
    # a trial's epochs / EM rounds report no objective; only its final result is read
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    search = OptunaSearch(space=space, metric=["val_accuracy", "val_cost"], mode=["max", "min"],
                          seed=cfg.sweep.search_seed)
    return search, budget(cfg)


class OptunaSpace:
    """Optuna's define-by-run space (a class: Tune pickles the searcher with the experiment)."""

    def __init__(self, settings: list, seeds: list, lo: float, hi: float):
        self.settings, self.seeds, self.lo, self.hi = settings, seeds, lo, hi

    def __call__(self, trial) -> dict:
        lam = trial.suggest_float("lam", self.lo, self.hi) if self.hi > self.lo else self.lo
        pick = self.settings[trial.suggest_categorical("setting", list(range(len(self.settings))))]
        seed = self.seeds[trial.number % len(self.seeds)]
        return {"point": {**pick, "lam": round(lam, 6), "seed": seed}}


def _without(point: dict, *keys) -> str:
    return repr(sorted((k, repr(v)) for k, v in point.items() if k not in keys))
