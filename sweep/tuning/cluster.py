"""Ray itself: connect or start it, and what its nodes can hold.

* `start(cfg, address)`: connect to `--address` / `sweep.address` / RAY_ADDRESS, else start a
  local Ray (dashboard on 127.0.0.1 only); a trial must fit on some node (else exit 2).
* `check_capacity(cfg, nodes)`: a trial asking for more CPUs / GPUs than ANY node has (alive,
  or a node type the autoscaler may launch, from ~/ray_bootstrap_config.yaml on a launcher's
  head) would wait forever; it is bad input instead (UserError, exit 2, nothing written).
"""
from __future__ import annotations

import os
import time

import ray
import torch
import yaml

from sweep.errors import UserError

BOOTSTRAP = "~/ray_bootstrap_config.yaml"
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def init_ray(address: str | None) -> None:
    """Connect to `address` / RAY_ADDRESS, else start a local Ray (dashboard on 127.0.0.1 only)."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
        return
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join([_ROOT] + paths)  # local workers import us
    ray.init(include_dashboard=False, dashboard_host="127.0.0.1", configure_logging=False,
             log_to_driver=True)


def shutdown() -> None:
    if ray.is_initialized():
        ray.shutdown()


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
    alive = [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]
    return alive + node_types_capacity()


def local_capacity() -> list[dict]:
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


def cluster_address(cfg, address=None) -> str | None:
    return address or cfg.sweep.address or os.environ.get("RAY_ADDRESS")


def check_local_capacity(cfg, address=None) -> None:
    """Without a cluster address: a trial must fit this machine (checked before Ray starts)."""
    if not cluster_address(cfg, address):
        check_capacity(cfg, local_capacity())


def start(cfg, address=None) -> float:
    """Connect to / start Ray; a trial must fit on some node of it (else exit 2).
    -> seconds taken."""
    check_local_capacity(cfg, address)
    t0 = time.perf_counter()
    init_ray(address or cfg.sweep.address)
    check_capacity(cfg, cluster_capacity())
    return time.perf_counter() - t0


def trial_slots(cfg) -> int:
    """Concurrent trial slots Ray can fill: cluster CPUs (GPUs) / per-trial, capped."""
    res, sw = ray.cluster_resources(), cfg.sweep
    n = int(res.get("CPU", 0) // sw.cpus_per_trial) if sw.cpus_per_trial else 10**6
    if sw.gpus_per_trial:
        n = min(n, int(res.get("GPU", 0) // sw.gpus_per_trial))
    return max(1, min(n, sw.max_concurrent or n))
