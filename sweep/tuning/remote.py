"""What runs on the cluster besides trials: the capacity check and the feature-store build.

* `check_capacity(cfg)`: a trial asking for more CPUs / GPUs than ANY node has (alive, or a
  node type the autoscaler may launch, from ~/ray_bootstrap_config.yaml on a launcher's head)
  would wait forever; it is bad input instead (UserError, exit 2, nothing written).
* `build_features(...)`: on a cluster with GPUs (`sweep.gpus_per_trial > 0`) or when asked
  (`--features-on cluster`), each store part (experts, exits) is built by its own Ray task
  (num_gpus=1 where GPUs exist), so the two parts build in parallel on two workers. Each task
  first pulls its part from the shared cache mirror (STORAGE/cache), builds it on a miss and
  pushes it back, so a second run -- on a new cluster too -- reuses it; the arrays come back
  through the object store.
"""
from __future__ import annotations

import dataclasses
import os

import yaml

from sweep.tuning import storage
from sweep.errors import UserError
from sweep.store.build import build_store, merge_parts, part_key

BOOTSTRAP = "~/ray_bootstrap_config.yaml"


def node_types_capacity(path: str = BOOTSTRAP) -> list[dict]:
    """Resources of the autoscaler's node types (empty when not on a launcher's head)."""
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        conf = yaml.safe_load(f) or {}
    types = (conf.get("available_node_types") or {}).values()
    return [dict(t.get("resources") or {}) for t in types]


def cluster_capacity() -> list[dict]:
    """Per node: its total resources, for alive nodes and launchable node types."""
    import ray
    alive = [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]
    return alive + node_types_capacity()


def local_capacity() -> list[dict]:
    import torch
    return [{"CPU": float(os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}]


def check_capacity(cfg, nodes: list[dict]) -> None:
    sw = cfg.sweep
    for key, need, name in (("GPU", sw.gpus_per_trial, "gpus_per_trial"),
                            ("CPU", sw.cpus_per_trial, "cpus_per_trial")):
        most = max([float(n.get(key, 0)) for n in nodes] or [0.0])
        if need > most:
            hint = " (e.g. --set sweep.gpus_per_trial=0)" if key == "GPU" else ""
            raise UserError(f"sweep.{name}={need:g} but no node of this cluster has more than "
                            f"{most:g} {key}(s); lower it{hint} or add bigger nodes")


def cluster_has_gpus() -> bool:
    return any(float(n.get("GPU", 0)) > 0 for n in cluster_capacity())


def use_cluster(cfg, mode: str) -> bool:
    """mode: auto (cluster when trials use GPUs and the cluster has some) | driver | cluster."""
    import ray
    if mode in ("driver", "cluster"):
        return mode == "cluster"
    return cfg.sweep.gpus_per_trial > 0 and ray.is_initialized() and cluster_has_gpus()


def _only(cfg, part: str):
    """The config with only `part`'s family enabled (part keys do not depend on `enabled`)."""
    return dataclasses.replace(cfg, gater=dataclasses.replace(cfg.gater,
                                                             enabled=part == "experts"),
                               exits=dataclasses.replace(cfg.exits, enabled=part == "exits"))


def cached_build(cfg, splits, *, device: str, mirror: str | None, log=print):
    """build_store with the shared mirror: pull missing parts, build, push new parts."""
    pulled = {}
    for part in ("experts", "exits"):
        if (cfg.gater if part == "experts" else cfg.exits).enabled:
            path = os.path.join(cfg.cache_dir, part_key(part, cfg, device))
            pulled[part] = storage.pull_part(mirror, path)
            if pulled[part]:
                log(f"[features] '{part}' fetched from shared cache {mirror}")
    store, info = build_store(cfg, splits, device=device, log=log)
    for part, entry in info.items():
        entry["from_shared_cache"] = pulled[part]
        entry["pushed_to_shared_cache"] = storage.push_part(mirror, entry["path"])
    return store, info


def _part_task(cfg, splits, mirror, threads):
    """Runs on a worker: one store part -> ((arrays, meta), info). Uses the driver's torch
    thread count: CPU float results (and so the store key) depend on it."""
    import ray
    import torch
    torch.set_num_threads(threads)
    from sweep.pipeline import pick_device
    device = pick_device(cfg.device)
    store, info = cached_build(cfg, splits, device=device, mirror=mirror)
    where = {"node_id": ray.get_runtime_context().get_node_id(), "device": device}
    for entry in info.values():
        entry["built_on"] = where
    return ({k: v for k, v in store.items() if k != "meta"}, store["meta"]), info


def build_on_cluster(cfg, splits, *, mirror: str | None, log=print):
    """One Ray task per enabled part (GPU each where the cluster has GPUs), in parallel."""
    import ray
    gpus = 1 if cluster_has_gpus() else 0
    cfg = dataclasses.replace(cfg, cache_dir=os.path.abspath(cfg.cache_dir))
    task = ray.remote(_part_task).options(num_cpus=1, num_gpus=gpus, max_retries=2)
    splits_ref = ray.put(splits)
    parts = [p for p, on in (("experts", cfg.gater.enabled), ("exits", cfg.exits.enabled)) if on]
    log(f"[features] building {parts} as Ray tasks (num_gpus={gpus} each)")
    try:
        import torch
        threads = torch.get_num_threads()
        done = ray.get([task.remote(_only(cfg, p), splits_ref, mirror, threads) for p in parts])
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
