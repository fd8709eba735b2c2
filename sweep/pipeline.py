"""One run end to end: data -> feature store -> Ray Tune -> tables -> manifest -> report.

Each phase is timed; the manifest records the resolved config, versions, hardware, measured
costs, the dataset, every trial's status and the phase timings. Every family-specific step
goes through the enabled families' registry entries (sweep/families/). An existing run in OUT
is replaced only once the new one is complete (sweep/results/outdir.py).
"""
from __future__ import annotations

import datetime as dt
import os
import time

from analysis import load
from analysis.report import write_report
from analysis.summary import summary_text
from sweep import console, families
from sweep.families import axes as AX
from sweep.data.datasets import load_data
from sweep.device import pick_device
from sweep.results import assemble, outdir
from sweep.results import manifest as M
from sweep.results import tables as results
from sweep.tuning import cluster, remote, storage, trust
from sweep.tuning.tracking import tracking_callbacks
from sweep.tuning import tuner as T


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


def run_pipeline(cfg, *, out: str, overwrite: bool = False, address=None, report=True,
                 features_on: str = "auto") -> dict:
    """One run into OUT. -> the manifest."""
    outdir.check_out(out, overwrite)          # before any compute (run.py checks it too)
    t, created = {}, _now()
    plan = storage.plan_for(cfg.sweep.storage_path, out)
    cluster.check_local_capacity(cfg, address)
    device = pick_device(cfg.device)
    t0 = time.perf_counter()
    splits, data_info = load_data(cfg)
    t["data_s"] = time.perf_counter() - t0
    console.phase("data", f"{cfg.data.name} loaded ({t['data_s']:.1f} s)")
    on_cluster = bool(cluster.cluster_address(cfg, address)) or features_on == "cluster"
    if on_cluster:            # the cluster's capacity is checked before any compute
        t["ray_init_s"] = _start_ray(cfg, address)
    t0 = time.perf_counter()
    store, cache_info = remote.build_features(cfg, splits, device=device, mode=features_on,
                                              mirror=plan.cache)
    t["features_s"] = time.perf_counter() - t0
    console.phase("features", ", ".join(
        f"{part} {'from cache' if (info or {}).get('cache_hit') else 'built'}"
        for part, info in cache_info.items()) + f" ({t['features_s']:.1f} s)")
    if not on_cluster:        # a local Ray: after the features (checked against this machine)
        t["ray_init_s"] = _start_ray(cfg, address)
    costs = families.resolve_costs(cfg, store["meta"])
    work, made = outdir.begin(out, overwrite)   # only now: bad data or checkpoints lose nothing
    with outdir.unfinished(work, out, created=made):
        run_plan = storage.relocated(plan, work)
        manifest = M.new_manifest(cfg, created=created, device=device, store=store, costs=costs,
                                  data_info=data_info, cache_info=cache_info, timings=t,
                                  plan=run_plan)
        if work != out:
            manifest["replaces"] = os.path.abspath(out)
        results.write_json(os.path.join(work, "manifest.json"), manifest)
        storage.publish_results(work, run_plan)
        trials = _sweep(cfg, store, costs, plan=run_plan, timings=t, out=work)
        manifest = finish(cfg, out=work, dest=out, store=store, costs=costs, trials=trials,
                          manifest=manifest, plan=run_plan, report=report)
    return manifest


def _start_ray(cfg, address) -> float:
    seconds = cluster.start(cfg, address)
    console.phase("ray", f"ready ({seconds:.1f} s)")
    return seconds


def expected_trials(cfg, trials: list[dict]) -> list[dict]:
    """TRIALS plus a failed entry for every grid point Tune returned no trial for: a missing
    trial is a failed row in the tables, never a silently missing one. A frontier search has
    no grid to miss: its points are the ones its searcher handed out, each a Tune trial."""
    if cfg.sweep.search != "grid":
        return trials
    key = lambda x: (x["family"], x["lam"], x["tau"], x["seed"], x.get("variant"),  # noqa: E731
                     AX.label(x.get("axes") or {}))
    have = {key(x) for x in trials}
    missing = [{**p, "trial_id": None, "status": "failed", "metrics": {}, "decisions": None,
                "restored": False, "error": "no result from Tune for this grid point"}
               for p in T.grid_points(cfg) if key(p) not in have]
    return trials + missing


def finish(cfg, *, out, store, costs, trials, manifest, plan, report=True, dest=None) -> dict:
    """Trials + baselines -> Parquet tables, the final manifest (status, end time, trials),
    THEN the report in OUT (its header shows that final status); then OUT replaces DEST (when
    it is another directory), the shared copy is updated and the summary printed, ending with
    the path of report.html.

    status: "complete" when every grid point's trial succeeded, else "partial" (its failed
    rows say why); `python -m sweep.run` exits 3 on "partial"."""
    dest = dest or out
    t = manifest["timings"]
    t0 = time.perf_counter()
    trials = expected_trials(cfg, trials)
    points, routes, decisions = assemble.tables(cfg, store, costs, trials)
    results.write_tables(out, points, routes, decisions)
    M.finished(manifest, trials, when=_now(), plan=storage.relocated(plan, dest))
    t["tables_s"] = time.perf_counter() - t0
    console.phase("tables", f"points, routes, decisions, manifest ({t['tables_s']:.1f} s)")
    manifest_path = os.path.join(out, "manifest.json")
    results.write_json(manifest_path, manifest)        # the report shows the final status
    if report:
        t0 = time.perf_counter()
        write_report(out)
        t["report_s"] = time.perf_counter() - t0
        console.phase("report", f"report.html ({t['report_s']:.1f} s)")
        results.write_json(manifest_path, manifest)
    outdir.swap(out, dest)
    storage.publish_results(dest, storage.relocated(plan, dest))
    page = os.path.join(dest, "report.html") if report else None
    print(summary_text(load(dest), results_dir=dest, report=page))   # ends with the report
    return manifest


def shared_store(store: dict, cfg) -> dict:
    """What trials get through the object store: the splits (meta stays on the driver) and
    what each enabled family ships with them (`Family.extras`, e.g. pretrained weights)."""
    shared = {"meta": {}, **{k: v for k, v in store.items() if k != "meta"}}
    for f in families.enabled(cfg):
        shared.update(f.extras(cfg))
    return shared


def _sweep(cfg, store, costs, *, plan, timings, out) -> list[dict]:
    t0 = time.perf_counter()
    console.phase("sweep", f"{T.planned(cfg)} on Ray Tune"
                  + (" (Tune's tables: --verbose)" if console.quiet(cfg) else ""))
    ledger = trust.Ledger(out, mirror=plan.results)
    tuner = T.make_tuner(cfg, shared_store(store, cfg), T.trial_settings(cfg, costs), costs,
                         storage_path=plan.tune_storage, name=plan.name,
                         callbacks=[trust.Recorder(), *tracking_callbacks(cfg, out)])
    ledger.record_stored(plan.experiment, names=(trust.TUNER,))     # Tuner() just wrote it
    trials = T.collect(fit(tuner, ledger))
    timings["sweep_s"] = time.perf_counter() - t0
    console.phase("sweep", f"done ({timings['sweep_s']:.1f} s)")
    return trials


def fit(tuner, ledger):
    """Tuner.fit with the experiment's sha256 list kept current (sweep/tuning/trust.py) -> its
    grid.

    On Ctrl-C Tune stops the trials, saves its state and returns normally: a sweep that
    returns with unfinished trials raises KeyboardInterrupt, so it is never taken for a
    finished one (the run stays resumable)."""
    with trust.recording(ledger):
        grid = tuner.fit()
    unfinished = len(grid) - grid.num_terminated - grid.num_errors
    if unfinished:
        raise KeyboardInterrupt(f"the sweep was stopped with {unfinished} of {len(grid)} "
                                f"trials unfinished")
    return grid
