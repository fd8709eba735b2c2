"""Ray itself: connect or start it, and what its nodes can hold.

* `start(cfg, address)`: join `--address` / `sweep.address` / RAY_ADDRESS (probed over TCP
  first: nothing answering there is bad input, exit 2, within PROBE_S), else start a private
  local Ray (address="local") whose servers listen on 127.0.0.1 only; a trial must fit on some
  node (else exit 2).
* `check_capacity(cfg, nodes)`: a trial asking for more CPUs / GPUs than ANY node has (alive,
  or a node type the autoscaler may launch, from ~/ray_bootstrap_config.yaml on a launcher's
  head) would wait forever; it is bad input instead (UserError, exit 2, nothing written).
"""
from __future__ import annotations

import contextlib
import os
import socket
import time

import ray
import torch
import yaml
from ray._common.network_utils import parse_address
from ray._common.utils import get_ray_address_file
from ray._private import ray_constants as rc
from ray._private import services

from sweep import console
from sweep.errors import UserError

BOOTSTRAP = "~/ray_bootstrap_config.yaml"
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


LOOPBACK = "127.0.0.1"
PROBE_S = 6.0       # s an address may stay closed (a head still starting) before it is bad input
_FIX = ("start the cluster (ray start --head / ray up) or check the address; drop --address "
        "and RAY_ADDRESS to run on a local Ray")


def init_ray(address: str | None, *, quiet: bool = False) -> None:
    """Join `address` / RAY_ADDRESS (UserError within ~PROBE_S when nothing answers there),
    else start a private local Ray that listens on 127.0.0.1 only. `quiet`: the workers'
    stdout / stderr stay in Ray's log files (log_to_driver=False; sweep/console.py)."""
    if ray.is_initialized():
        return
    src = "address" if address else "RAY_ADDRESS"
    address = address or os.environ.get("RAY_ADDRESS")
    if address and address != "local":
        return _join(address, src, quiet=quiet)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join([_ROOT] + paths)  # local workers import us
    with _single_machine():
        # address="local": a new Ray, never the one a stale ray_current_cluster file names
        ray.init(address="local", _node_ip_address=LOOPBACK, include_dashboard=False,
                 dashboard_host=LOOPBACK, configure_logging=False, log_to_driver=not quiet)


@contextlib.contextmanager
def _single_machine():
    """While Ray starts: its node IP stays 127.0.0.1. Ray swaps a loopback _node_ip_address for
    the machine's external IP unless clusters are "disabled" (its Windows/macOS mode, a flag read
    once at import), and its servers (GCS, raylet + object manager, workers, agents, metrics)
    bind to 0.0.0.0 unless the node IP is loopback. Restored after start-up: a later join of a
    real cluster from this process must advertise the external IP."""
    flag, rc.ENABLE_RAY_CLUSTER = rc.ENABLE_RAY_CLUSTER, False
    try:
        yield
    finally:
        rc.ENABLE_RAY_CLUSTER = flag


def gcs_target(address: str) -> tuple[str, int, str]:
    """`address` as Ray dials it -> (host, port, where it came from). 'auto' is resolved by
    Ray's own lookup (RAY_ADDRESS, then TMP/ray/ray_current_cluster, then a local gcs_server);
    ray://HOST:PORT is a Ray Client server, probed as is."""
    origin = ""
    if address.startswith("ray://"):
        hostport = address[len("ray://"):].split("/")[0]
    else:
        if address == "auto":
            file = get_ray_address_file(None)
            origin = ("RAY_ADDRESS" if os.environ.get("RAY_ADDRESS") else
                      f"{file}; delete it if that cluster is gone" if os.path.exists(file)
                      else "a gcs_server running on this machine")
        try:
            hostport = services.canonicalize_bootstrap_address(address)
        except (ConnectionError, ValueError) as e:     # auto: no cluster found / bad format
            raise UserError(f"Ray address '{address}': {e}; {_FIX}") from None
    parsed = parse_address(hostport or "")
    port = parsed[1] if parsed else ""
    if not (parsed and port.isdigit() and 0 < int(port) < 65536):
        raise UserError(f"Ray address '{address}' is not HOST:PORT (e.g. 10.0.0.5:6379 or "
                        f"auto); {_FIX}")
    return parsed[0], int(port), origin


def probe(host: str, port: int, seconds: float = PROBE_S) -> bool:
    """True once a TCP connect to host:port succeeds; retried (a head may be starting) until
    `seconds` have passed. A closed port fails in microseconds, a dropped one in <= 3 s."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection((host, port), timeout=min(3.0, seconds)):
                return True
        except OSError:
            if time.monotonic() + 1.0 > deadline:
                return False
            time.sleep(1.0)


def _join(address: str, src: str, *, quiet: bool = False) -> None:
    host, port, origin = gcs_target(address)
    where = f"'{address}'" + (f" (from {src})" if src == "RAY_ADDRESS" else "")
    dialed = f"{host}:{port}" + (f", from {origin}" if origin else "")
    if not probe(host, port):
        raise UserError(f"no Ray cluster answers at Ray address {where} (dialed {dialed} for "
                        f"{PROBE_S:g} s); {_FIX}")
    # Something listens: Ray's own connect loop (NUM_REDIS_GET_RETRIES x ~40 s when it is not a
    # GCS) is cut to one attempt unless the user set its budget.
    budget = "RAY_gcs_server_port_wait_time_s"
    given = os.environ.get(budget)
    os.environ.setdefault(budget, "1")
    try:
        ray.init(address=address, log_to_driver=not quiet)
    except ConnectionError as e:
        raise UserError(f"Ray address {where} (dialed {dialed}) listens but Ray cannot join it "
                        f"({str(e)[:200]}); {_FIX}") from None
    finally:
        if given is None:
            os.environ.pop(budget, None)


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
    if console.quiet(cfg):
        console.quiet_ray_logs()
    init_ray(address or cfg.sweep.address, quiet=console.quiet(cfg))
    check_capacity(cfg, cluster_capacity())
    return time.perf_counter() - t0


def trial_slots(cfg) -> int:
    """Concurrent trial slots Ray can fill: cluster CPUs (GPUs) / per-trial, capped."""
    res, sw = ray.cluster_resources(), cfg.sweep
    n = int(res.get("CPU", 0) // sw.cpus_per_trial) if sw.cpus_per_trial else 10**6
    if sw.gpus_per_trial:
        n = min(n, int(res.get("GPU", 0) // sw.gpus_per_trial))
    return max(1, min(n, sw.max_concurrent or n))
