"""`sweep.early_stop_patience`: a per-trial plateau rule, as a Tune Stopper.

A trial that reports `val_objective` (lower is better; the gater: λ·(1 − val accuracy) +
(1 − λ)·val cost / the costliest expert's, its training objective's analogue on val decisions)
is stopped once `patience` reports in a row have not lowered the best value so far by more
than `min_delta`. A trial that reports no `val_objective` (the EM router's rounds end on their
own tolerance, `exits.em_tol`) is never stopped by it. With the rule on, every report of a
trial carries its decisions (`per_epoch_decisions` in its settings), so a stopped trial's last
checkpoint holds the routes of its last epoch; its metrics say `final: false`, and the run's
manifest marks it `stopped_early`.
"""
from __future__ import annotations

from ray import tune


class PlateauStopper(tune.Stopper):
    """Tune's Stopper API: called with every result; True stops that trial."""

    def __init__(self, *, patience: int, min_delta: float, metric: str = "val_objective"):
        self.patience, self.min_delta, self.metric = patience, min_delta, metric
        self.best: dict[str, float] = {}
        self.stale: dict[str, int] = {}

    def __call__(self, trial_id: str, result: dict) -> bool:
        value = result.get(self.metric)
        if value is None:
            return False
        best = self.best.get(trial_id)
        if best is None or value < best - self.min_delta:
            self.best[trial_id], self.stale[trial_id] = value, 0
            return False
        self.stale[trial_id] = self.stale.get(trial_id, 0) + 1
        return self.stale[trial_id] >= self.patience

    def stop_all(self) -> bool:
        return False
