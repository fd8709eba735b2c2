"""One run end to end: data -> feature store -> Ray Tune -> tables -> manifest -> report.

Each phase is timed; the manifest records the resolved config, versions, hardware, measured
costs, the dataset, every trial's status and the phase timings.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
import platform
import shutil
import time

import numpy as np

from sweep.families import rows as assemble
from sweep.results import tables as results
from sweep.config import to_dict
from sweep.store.build import corruption_levels
from sweep.config.validate import check_sizes


def pick_device(name: str) -> str:
    import torch
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        from sweep.errors import UserError
        raise UserError("device: cuda requested but no CUDA device is visible; use device=auto")
    return name


def resolve_costs(cfg, store) -> dict:
    meta, ex = store["meta"], cfg.experts
    costs: dict = {}
    if cfg.gater.enabled:
        measured = [meta["expert_costs"][n]["latency_ms"] for n in meta["experts"]]
        given = ex.cost_source == "given"
        costs["expert_ms"] = list(ex.given_latency_ms) if given else measured
        costs["gater_ms"] = (ex.given_gater_ms if given and ex.given_gater_ms
                             else meta["gater_cost"]["latency_ms"])
    if cfg.exits.enabled:
        costs["exit_costs"] = meta["exit_costs"][cfg.exits.exit_cost]
    return costs


def hardware(device: str) -> dict:
    import psutil
    import torch
    hw = {"device": device, "cpu": platform.processor() or platform.machine(),
          "cores": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
          "platform": platform.platform(), "gpu": None}
    if device.startswith("cuda"):
        hw["gpu"] = torch.cuda.get_device_name(0)
    return hw


def versions() -> dict:
    import importlib.metadata as md
    out = {"python": platform.python_version()}
    for p in ("routesweep", "torch", "torchvision", "timm", "ray", "numpy", "pandas", "pyarrow",
              "plotly", "scipy", "scikit-learn"):
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = None
    return out


def cost_manifest(cfg, store, costs) -> dict:
    m, out = store["meta"], {}
    if cfg.gater.enabled:
        out["experts"] = {n: {"latency_ms": float(costs["expert_ms"][i]),
                              "measured_latency_ms": m["expert_costs"][n]["latency_ms"],
                              "latency": m["expert_costs"][n]["latency"],
                              "flops": m["expert_costs"][n]["flops"],
                              "source": cfg.experts.cost_source}
                          for i, n in enumerate(m["experts"])}
        out["gater"] = {**m["gater_cost"], "latency_ms": float(costs["gater_ms"])}
        out["latency_method"] = m.get("latency_method")
        out["expert_accuracy"] = m["expert_accuracy"]
    if cfg.exits.enabled:
        out["exits"] = {n: {"compute": float(costs["exit_costs"][k]), "flops": m["exit_flops"][k],
                            "compute_uniform": m["exit_costs"]["uniform"][k],
                            "compute_flops": m["exit_costs"]["flops"][k]}
                        for k, n in enumerate(m["exits"])}
        out["exit_cost_mode"] = cfg.exits.exit_cost
        out["exit_accuracy"] = m["exit_accuracy"]
    return out


def cluster_address(cfg, address=None) -> str | None:
    return address or cfg.sweep.address or os.environ.get("RAY_ADDRESS")


def check_local_capacity(cfg, address=None) -> None:
    """Without a cluster address: a trial must fit this machine (checked before Ray starts)."""
    from sweep.tuning import remote
    if not cluster_address(cfg, address):
        remote.check_capacity(cfg, remote.local_capacity())


def start_ray(cfg, address=None) -> float:
    """Connect to / start Ray; a trial must fit on some node of it (else exit 2).
    -> seconds taken."""
    from sweep.tuning import remote
    from sweep.tuning import tuner as T
    check_local_capacity(cfg, address)
    t0 = time.perf_counter()
    T.init_ray(address or cfg.sweep.address)
    remote.check_capacity(cfg, remote.cluster_capacity())
    return time.perf_counter() - t0


def load_data(cfg):
    from sweep.data.datasets import load_splits
    d = cfg.data
    splits, data_info = load_splits(d.name, root=d.root, image_size=d.image_size, seed=d.seed,
                                    val_fraction=d.val_fraction, test_fraction=d.test_fraction,
                                    download=d.download, synthetic_n=d.synthetic_n,
                                    synthetic_classes=d.synthetic_classes,
                                    skip_corrupt=d.skip_corrupt)
    check_sizes(cfg, splits)
    return splits, data_info


def run_pipeline(cfg, *, out: str, overwrite: bool = False, address=None, report=True,
                 features_on: str = "auto") -> dict:
    from sweep.tuning import remote, storage
    t, created = {}, dt.datetime.now().isoformat(timespec="seconds")
    plan = storage.plan_for(cfg.sweep.storage_path, out)
    check_local_capacity(cfg, address)
    device = pick_device(cfg.device)
    t0 = time.perf_counter()
    splits, data_info = load_data(cfg)
    t["data_s"] = time.perf_counter() - t0
    on_cluster = bool(cluster_address(cfg, address)) or features_on == "cluster"
    if on_cluster:            # the cluster's capacity is checked before any compute
        t["ray_init_s"] = start_ray(cfg, address)
    t0 = time.perf_counter()
    store, cache_info = remote.build_features(cfg, splits, device=device, mode=features_on,
                                              mirror=plan.cache)
    t["features_s"] = time.perf_counter() - t0
    if not on_cluster:        # a local Ray: after the features (checked against this machine)
        t["ray_init_s"] = start_ray(cfg, address)
    if overwrite and os.path.isdir(out):     # only now: bad data or checkpoints lose nothing
        shutil.rmtree(out)
    os.makedirs(out, exist_ok=True)
    costs = resolve_costs(cfg, store)
    d = cfg.data
    manifest = {"routesweep_version": "0.1.0", "status": "running", "created": created,
                "config_name": cfg.name, "config": to_dict(cfg), "versions": versions(),
                "hardware": hardware(device), "costs": cost_manifest(cfg, store, costs),
                "dataset": {**data_info, "severities": list(d.severities),
                            "corruption_levels": corruption_levels(cfg),
                            "samples": {k: int(len(store[k]["label"])) for k in
                                        ("train", "val", "test")}},
                "feature_store": cache_info, "timings": t,
                "storage": {**dataclasses.asdict(plan), "experiment": plan.experiment}}
    results.write_json(os.path.join(out, "manifest.json"), manifest)
    storage.publish_results(out, plan)
    trials = _sweep(cfg, store, costs, plan=plan, timings=t)
    return finish(cfg, out=out, store=store, costs=costs, trials=trials, manifest=manifest,
                  plan=plan, report=report)


def finish(cfg, *, out, store, costs, trials, manifest, plan, report=True) -> dict:
    """Trials + baselines -> Parquet tables, manifest (status, trials), report, shared copy."""
    from sweep.tuning import storage
    t = manifest["timings"]
    t0 = time.perf_counter()
    points, routes, decisions = tables(cfg, store, costs, trials)
    results.write_tables(out, points, routes, decisions)
    failed = [x for x in trials if x["status"] != "ok"]
    manifest.update(status="complete" if not failed else "partial",
                    finished=dt.datetime.now().isoformat(timespec="seconds"),
                    trials=[{k: x[k] for k in ("trial_id", "family", "lam", "tau", "seed",
                                               "status", "error", "restored")} |
                            {"method": "gater" if x["family"] == "experts" else "em_router",
                             "train_time_s": x["metrics"].get("train_time_s")}
                            for x in trials])
    t["tables_s"] = time.perf_counter() - t0
    if report:
        t0 = time.perf_counter()
        _report(out)
        t["report_s"] = time.perf_counter() - t0
    results.write_json(os.path.join(out, "manifest.json"), manifest)
    storage.publish_results(out, plan)
    from analysis.summary import print_summary
    print_summary(out, points, routes, store["meta"], manifest)
    return manifest


def tables(cfg, store, costs, trials):
    """-> (points, routes, decisions) DataFrames: every trial and every baseline."""
    tab = results.Tables(severity={k: store[k]["severity"] for k in ("val", "test")},
                         sample_id=store["test"]["sample_id"], label=store["test"]["label"])
    by_family = lambda f: [x for x in trials if x["family"] == f]
    if cfg.gater.enabled:
        assemble.expert_family(tab, store, trials=by_family("experts"),
                               expert_ms=costs["expert_ms"], gater_ms=costs["gater_ms"], cfg=cfg)
    if cfg.exits.enabled:
        assemble.exit_family(tab, store, trials=by_family("exits"),
                             exit_costs=costs["exit_costs"], cfg=cfg)
    return tab.frames()


def shared_store(store: dict, cfg) -> dict:
    """What trials get through the object store (meta stays on the driver), plus the
    gater's pretrained trunk weights when `gater.trunk_pretrained` (loaded here, once)."""
    shared = {"meta": {}, **{k: v for k, v in store.items() if k != "meta"}}
    if cfg.gater.enabled and cfg.gater.trunk_pretrained:
        from trainers.gater import pretrained_trunk_state
        shared["gater_trunk"] = pretrained_trunk_state()
    return shared


def _sweep(cfg, store, costs, *, plan, timings) -> list[dict]:
    from sweep.tuning import tuner as T
    t0 = time.perf_counter()
    tuner = T.make_tuner(cfg, shared_store(store, cfg), T.trial_settings(cfg, costs),
                         storage_path=plan.tune_storage, name=plan.name)
    trials = T.collect(tuner.fit())
    timings["sweep_s"] = time.perf_counter() - t0
    return trials


def _report(out: str) -> None:
    try:
        from analysis.report import write_report
    except ImportError:
        return
    write_report(out)
