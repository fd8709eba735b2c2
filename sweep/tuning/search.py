"""`sweep.search: frontier` as a Tune Searcher: one `FrontierPlan` per enabled family.

`suggest` hands out the plans' points one trial at a time ({"point": ...}; Tune merges it into
the param space's settings and costs), None while a plan waits for its batch's results, and
FINISHED when every plan is done. `on_trial_complete` feeds each trial's val points back:
`val_points` ([[cost, accuracy], ...]: the EM router's curve over its thresholds) or else
(`val_cost`, `val_accuracy`) (the gater). Its state is saved with the experiment, so
`--resume` continues the same search.
"""
from __future__ import annotations

import pickle

from ray.tune.search import Searcher

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


def plans(cfg) -> dict:
    """{family: FrontierPlan} of the enabled families (their grid at one λ as the template)."""
    sw, out = cfg.sweep, {}
    for f in families.enabled(cfg):
        grid = f.grid(cfg)
        first = grid[0]["lam"]
        out[f.name] = FrontierPlan([p for p in grid if p["lam"] == first],
                                   lams=f.section_of(cfg).lams, coarse=sw.coarse_lams,
                                   budget=sw.max_trials, tol=sw.hv_tol)
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
