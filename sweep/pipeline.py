"""One run end to end: data -> feature store -> Ray Tune -> tables -> manifest -> report.

Each phase is timed; the manifest records the resolved config, versions, hardware, measured
costs, the dataset, every trial's status and the phase timings. Every family-specific step
goes through the enabled families' registry entries (sweep/families/).
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import time

from analysis import load
from analysis.report import write_report
from analysis.summary import summary_text
from sweep import families
from sweep.data.datasets import load_data
from sweep.device import pick_device
from sweep.results import assemble, manifest as M
from sweep.results import tables as results
from sweep.tuning import cluster, remote, storage
from sweep.tuning import tuner as T


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


def run_pipeline(cfg, *, out: str, overwrite: bool = False, address=None, report=True,
                 features_on: str = "auto") -> dict:
    t, created = {}, _now()
    plan = storage.plan_for(cfg.sweep.storage_path, out)
    cluster.check_local_capacity(cfg, address)
    device = pick_device(cfg.device)
    t0 = time.perf_counter()
    splits, data_info = load_data(cfg)
    t["data_s"] = time.perf_counter() - t0
    on_cluster = bool(cluster.cluster_address(cfg, address)) or features_on == "cluster"
    if on_cluster:            # the cluster's capacity is checked before any compute
        t["ray_init_s"] = cluster.start(cfg, address)
    t0 = time.perf_counter()
    store, cache_info = remote.build_features(cfg, splits, device=device, mode=features_on,
                                              mirror=plan.cache)
    t["features_s"] = time.perf_counter() - t0
    if not on_cluster:        # a local Ray: after the features (checked against this machine)
        t["ray_init_s"] = cluster.start(cfg, address)
    if overwrite and os.path.isdir(out):     # only now: bad data or checkpoints lose nothing
        shutil.rmtree(out)
    os.makedirs(out, exist_ok=True)
    costs = families.resolve_costs(cfg, store["meta"])
    manifest = M.new_manifest(cfg, created=created, device=device, store=store, costs=costs,
                              data_info=data_info, cache_info=cache_info, timings=t, plan=plan)
    results.write_json(os.path.join(out, "manifest.json"), manifest)
    storage.publish_results(out, plan)
    trials = _sweep(cfg, store, costs, plan=plan, timings=t)
    return finish(cfg, out=out, store=store, costs=costs, trials=trials, manifest=manifest,
                  plan=plan, report=report)


def finish(cfg, *, out, store, costs, trials, manifest, plan, report=True) -> dict:
    """Trials + baselines -> Parquet tables, manifest (status, trials), report, shared copy."""
    t = manifest["timings"]
    t0 = time.perf_counter()
    points, routes, decisions = assemble.tables(cfg, store, costs, trials)
    results.write_tables(out, points, routes, decisions)
    M.finished(manifest, trials, when=_now())
    t["tables_s"] = time.perf_counter() - t0
    if report:
        t0 = time.perf_counter()
        write_report(out)
        t["report_s"] = time.perf_counter() - t0
    results.write_json(os.path.join(out, "manifest.json"), manifest)
    storage.publish_results(out, plan)
    print(summary_text(load(out), results_dir=out))
    return manifest


def shared_store(store: dict, cfg) -> dict:
    """What trials get through the object store: the splits (meta stays on the driver) and
    what each enabled family ships with them (`Family.extras`, e.g. pretrained weights)."""
    shared = {"meta": {}, **{k: v for k, v in store.items() if k != "meta"}}
    for f in families.enabled(cfg):
        shared.update(f.extras(cfg))
    return shared


def _sweep(cfg, store, costs, *, plan, timings) -> list[dict]:
    t0 = time.perf_counter()
    tuner = T.make_tuner(cfg, shared_store(store, cfg), T.trial_settings(cfg, costs), costs,
                         storage_path=plan.tune_storage, name=plan.name)
    trials = T.collect(tuner.fit())
    timings["sweep_s"] = time.perf_counter() - t0
    return trials
