"""The quiet console's view of the sweep: a Tune callback that feeds `sweep.console.TrialLine`.

Tune runs with verbose 0 (no tables); this callback counts the trials from the list Tune passes
to every hook (so a restored experiment counts the trials finished before the restore too) and
redraws one line. It is pickled into tuner.pkl with the run's other callbacks, so it holds no
stream (TrialLine writes to sys.stdout when it writes).
"""
from __future__ import annotations

from ray import tune

from sweep import families
from sweep.console import TrialLine


def _family(trial) -> str:
    """The trial's router (its family's method, e.g. gater / em_router)."""
    name = (getattr(trial, "config", None) or {}).get("point", {}).get("family", "?")
    try:
        return families.get(name).method
    except KeyError:
        return str(name)


def counts(trials, trial=None, now: str | None = None) -> dict:
    """TrialLine.update's arguments from Tune's trial list; `trial` has status `now`, which
    Tune sets only after the hook (a completing trial is still RUNNING in on_trial_complete)."""
    status = [str(now if t is trial and now else getattr(t, "status", "")) for t in trials]
    fams: dict = {}
    for t, s in zip(trials, status):
        d, n = fams.get(_family(t), (0, 0))
        fams[_family(t)] = (d + (s in ("TERMINATED", "ERROR")), n + 1)
    return {"done": sum(s in ("TERMINATED", "ERROR") for s in status),
            "failed": status.count("ERROR"), "running": status.count("RUNNING"),
            "families": fams}


class Progress(tune.Callback):
    """One live line of the trials (see sweep/console.py)."""

    def __init__(self, line: TrialLine | None = None):
        self.line = line or TrialLine()
        self.total = 0

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
        self.total = int(total_num_samples or 0)

    def _show(self, trials, trial=None, now=None) -> None:
        self.line.update(total=max(self.total, len(trials)), **counts(trials, trial, now))

    def on_step_end(self, iteration, trials, **info):
        self._show(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._show(trials, trial, "TERMINATED")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._show(trials, trial, "ERROR")

    def on_experiment_end(self, trials, **info):
        self._show(trials)
        self.line.close()
