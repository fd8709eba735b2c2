"""Ray Tune: the grid, resources, checkpoints and failure policy; the only place that runs Tune.

One Tuner runs every enabled family: the grid is a list of points {family, lam, tau, seed} (each
family's from its registry entry); the store is put in the object store ONCE by
`tune.with_parameters` and every trial reads it zero-copy. The param space also holds each
family's settings and the resolved costs (a resumed run reads them back).
"""
from __future__ import annotations

import json
import os

import numpy as np
from ray import tune

from sweep import console, families
from sweep.families import axes as AX
from sweep.tuning.progress import Progress
from sweep.tuning.search import FrontierSearcher, optuna_search
from sweep.tuning.search import budget as search_budget
from sweep.tuning.search import plans as search_plans
from sweep.tuning.stopping import PlateauStopper
from sweep.tuning.trials import router_trial as _router_trial


def grid_points(cfg) -> list[dict]:
    return [p for f in families.enabled(cfg) for p in f.grid(cfg)]


def planned(cfg) -> str:
    """How many trials the sweep runs, for the console: the grid's size, or the frontier
    search's budget."""
    if cfg.sweep.search == "frontier":
        return f"at most {search_budget(cfg)} trials (frontier search)"
    if cfg.sweep.search == "optuna":
        return f"{search_budget(cfg)} trials (optuna search)"
    return f"{len(grid_points(cfg))} trials"


def trial_settings(cfg, costs: dict) -> dict:
    """What trials need besides the store: resources and, per family, its settings; with
    `sweep.axes`, also per family and combination of its axes the settings computed from the
    config with those values ("axes": {family: {AX.label(combo): settings}})."""
    sw, fams = cfg.sweep, families.enabled(cfg)
    every = {"per_epoch_decisions": sw.early_stop_patience > 0}   # a stopped trial's routes
    out = {"cpus_per_trial": sw.cpus_per_trial, "gpus_per_trial": sw.gpus_per_trial,
           **{f.name: {**f.settings(cfg, costs[f.name]), **every} for f in fams}}
    by_axes = {f.name: {AX.label(c): {**f.settings(AX.apply(cfg, c), costs[f.name]), **every}
                        for c in AX.combos(sw.axes, f.section) if c} for f in fams}
    by_axes = {name: per for name, per in by_axes.items() if per}
    return {**out, "axes": by_axes} if by_axes else out


def trial_name(trial) -> str:
    """e.g. gater_lam0.7_tau1_s0 / em_router_lam2_tau0.5_s1: the grid point is readable in
    Tune's table (the family's method names it)."""
    p = trial.config["point"]
    try:
        kind = families.get(p["family"]).method
    except KeyError:
        kind = p["family"]
    kind += f"_{p['variant']}" if p.get("variant") else ""
    kind += "_" + AX.label(p["axes"]).replace(" ", "_") if p.get("axes") else ""
    return f"{kind}_lam{p['lam']:g}_tau{p['tau']:g}_s{p['seed']}_{trial.trial_id[-5:]}"


# Experiment state (which trials are finished) is saved at most this often (Tune's default,
# "auto", is >= 10 s): a driver killed right after a trial finished still knows it finished.
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")


def _checkpoint_metrics(ckpt_dir: str) -> dict:
    """The metrics saved with a checkpoint that holds decisions ({} without metrics.json)."""
    p = os.path.join(ckpt_dir, "metrics.json")
    if not os.path.exists(p):
        return {}
    with open(p) as f:
        return json.load(f)


def _final_metrics(ckpt) -> dict | None:
    """The metrics a trial reported with its final checkpoint (decisions.npz, and not marked
    `final: false` by per-epoch decisions); None if `ckpt` is not final."""
    with ckpt.as_directory() as d:
        if not os.path.exists(os.path.join(d, "decisions.npz")):
            return None
        metrics = _checkpoint_metrics(d)
        return metrics if metrics.get("final", True) else None


def router_trial(config: dict, store: dict, trials: dict) -> None:
    """sweep.tuning.trials.router_trial, except for a trial restored from its final checkpoint (it
    finished, but its node or the driver died before Tune recorded that): it reports its final
    metrics again instead of training again (the EM state there cannot restart a round)."""
    ckpt = tune.get_checkpoint()
    final = _final_metrics(ckpt) if ckpt is not None else None
    if final is not None:
        return tune.report({**final, "status": "ok", "finished_before_restore": 1})
    return _router_trial(config, store, trials)


def trainable(cfg, store: dict, fn=router_trial):
    """The store is put in the object store once, here, with every enabled family's trial
    function (workers need not know the registry); the resources come from the config."""
    sw, trials = cfg.sweep, {f.name: f.trial for f in families.enabled(cfg)}
    return tune.with_resources(tune.with_parameters(fn, store=store, trials=trials),
                               {"cpu": sw.cpus_per_trial, "gpu": sw.gpus_per_trial})


def make_tuner(cfg, store: dict, settings: dict, costs: dict | None = None, *,
               storage_path: str, name: str = "sweep", fn=router_trial, callbacks=()):
    """storage_path: a directory or a URI (s3://, gs://, file://) that pyarrow can open.
    fn: the trainable (config, store, trials) -> None; the benchmark wraps router_trial.
    callbacks: driver-side tune.Callbacks (saved in tuner.pkl, so restored with it); a quiet
    console (sweep/console.py) adds the live line of the trials (`progress.Progress`)."""
    sw = cfg.sweep
    space, search = {"settings": settings, "costs": costs or {}}, {}
    if sw.search == "frontier":      # the searcher hands out each trial's point
        searcher = FrontierSearcher(search_plans(cfg))
        search = {"search_alg": searcher, "num_samples": searcher.budget()}
    elif sw.search == "optuna":
        searcher, budget = optuna_search(cfg)
        search = {"search_alg": searcher, "num_samples": budget}
    else:
        space["point"] = tune.grid_search(grid_points(cfg))
    return tune.Tuner(
        trainable(cfg, store, fn), param_space=space,
        tune_config=tune.TuneConfig(max_concurrent_trials=sw.max_concurrent or None,
                                    reuse_actors=True, trial_name_creator=trial_name,
                                    trial_dirname_creator=trial_name, **search),
        run_config=tune.RunConfig(
            name=name, storage_path=storage_path, verbose=console.tune_verbosity(cfg),
            callbacks=list(callbacks) + ([Progress()] if console.quiet(cfg) else []),
            stop=PlateauStopper(patience=sw.early_stop_patience,
                                min_delta=sw.early_stop_delta) if sw.early_stop_patience else None,
            failure_config=tune.FailureConfig(max_failures=sw.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2)))


def restore_tuner(cfg, store: dict, experiment: str):
    """The experiment at `experiment` (dir or URI): finished trials stay finished; unfinished
    and errored ones continue from their last checkpoint. None if Tune never saved it."""
    if not tune.Tuner.can_restore(experiment):
        return None
    return tune.Tuner.restore(experiment, trainable(cfg, store), resume_unfinished=True,
                              resume_errored=True, restart_errored=False)


def _stopped_early(ckpt_dir: str) -> bool:
    """True when the checkpoint's metrics say it was not the trial's last epoch (the plateau
    rule stopped it: sweep/tuning/stopping.py)."""
    return _checkpoint_metrics(ckpt_dir).get("final", True) is False


def collect(result_grid) -> list[dict]:
    """One dict per trial: its point, status, error, final metrics and decision arrays."""
    out = []
    for r in result_grid:
        point, metrics = r.config["point"], dict(r.metrics or {})
        row = {**point, "trial_id": metrics.get("trial_id") or os.path.basename(r.path),
               "status": "ok", "error": None, "metrics": metrics, "decisions": None,
               "restored": metrics.get("iterations_since_restore", 0) <
               metrics.get("training_iteration", 0)}
        if r.error is not None:
            row.update(status="failed", error=str(r.error).strip().splitlines()[-1][:500])
        elif metrics.get("status") == "failed":
            row.update(status="failed", error=metrics.get("error"))
        elif r.checkpoint is not None:
            with r.checkpoint.as_directory() as d:
                p = os.path.join(d, "decisions.npz")
                if os.path.exists(p):
                    with np.load(p, allow_pickle=False) as z:
                        row["decisions"] = {k: z[k] for k in z.files}
                row["stopped_early"] = _stopped_early(d)
        if row["status"] == "ok" and row["decisions"] is None:
            row.update(status="failed", error="trial ended without final decisions")
        out.append(row)
    return sorted(out, key=lambda x: x["trial_id"])     # grid order, also after a restore
