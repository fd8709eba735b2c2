"""The feature store built on the cluster: one Ray task per store part.

On a cluster with GPUs (`sweep.gpus_per_trial > 0`) or when asked (`--features-on cluster`),
each store part (experts, exits) is built by its own Ray task (num_gpus=1 where GPUs exist), so
the parts build in parallel on several workers. Each task first pulls its part from the shared
cache mirror (STORAGE/cache), builds it on a miss and pushes it back, so a second run -- on a
new cluster too -- reuses it; the arrays come back through the object store.
"""
from __future__ import annotations

import dataclasses
import os

import ray
import torch

from sweep.device import pick_device
from sweep.errors import UserError
from sweep.store.build import merge_parts, needed_parts
from sweep.store.mirror import cached_build
from sweep.tuning.cluster import cluster_has_gpus


def use_cluster(cfg, mode: str) -> bool:
    """mode: auto (cluster when trials use GPUs and the cluster has some) | driver | cluster."""
    if mode in ("driver", "cluster"):
        return mode == "cluster"
    return cfg.sweep.gpus_per_trial > 0 and ray.is_initialized() and cluster_has_gpus()


def _part_task(cfg, splits, part, mirror, threads):
    """Runs on a worker: one store part -> ((arrays, meta), info). Uses the driver's torch
    thread count: CPU float results (and so the store key) depend on it."""
    torch.set_num_threads(threads)
    device = pick_device(cfg.device)
    store, info = cached_build(cfg, splits, device=device, mirror=mirror, parts=[part])
    where = {"node_id": ray.get_runtime_context().get_node_id(), "device": device}
    for entry in info.values():
        entry["built_on"] = where
    return ({k: v for k, v in store.items() if k != "meta"}, store["meta"]), info


def build_on_cluster(cfg, splits, *, mirror: str | None, log=print):
    """One Ray task per needed part (GPU each where the cluster has GPUs), in parallel."""
    gpus = 1 if cluster_has_gpus() else 0
    cfg = dataclasses.replace(cfg, cache_dir=os.path.abspath(cfg.cache_dir))
    task = ray.remote(_part_task).options(num_cpus=1, num_gpus=gpus, max_retries=2)
    splits_ref = ray.put(splits)
    parts = needed_parts(cfg)
    log(f"[features] building {parts} as Ray tasks (num_gpus={gpus} each)")
    threads = torch.get_num_threads()
    try:
        done = ray.get([task.remote(cfg, splits_ref, p, mirror, threads) for p in parts])
    except ray.exceptions.RayTaskError as e:          # bad input found on a worker: one line
        if isinstance(e.cause, UserError):
            raise UserError(str(e.cause)) from None
        raise
    info = {k: v for _, part_info in done for k, v in part_info.items()}
    return merge_parts([arrays_meta for arrays_meta, _ in done]), info


def build_features(cfg, splits, *, device: str, mode: str, mirror: str | None, log=print):
    """-> (store, info): on the cluster (see module doc) or on the driver."""
    if use_cluster(cfg, mode):
        return build_on_cluster(cfg, splits, mirror=mirror, log=log)
    return cached_build(cfg, splits, device=device, mirror=mirror, log=log)
