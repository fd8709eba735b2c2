"""Ray Tune: the grid, resources, checkpoints and failure policy; the only place that runs Tune.

One Tuner runs both families: the grid is a list of points {family, lam, tau, seed}; the store
is put in the object store ONCE by `tune.with_parameters` and every trial reads it zero-copy.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import time

import numpy as np
import ray
from ray import tune

from sweep.errors import UserError
from sweep.trials import router_trial as _router_trial

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def grid_points(cfg) -> list[dict]:
    pts = []
    for family, sec in (("experts", cfg.gater), ("exits", cfg.exits)):
        if sec.enabled:
            pts += [{"family": family, "lam": float(lam), "tau": float(tau), "seed": int(seed)}
                    for seed in sec.seeds for tau in sec.taus for lam in sec.lams]
    return pts


def trial_settings(cfg, costs: dict) -> dict:
    """What trials need besides the store: plain numbers, resolved costs."""
    g, e, sw = cfg.gater, cfg.exits, cfg.sweep
    common = {"gpus_per_trial": sw.gpus_per_trial}
    return {"cpus_per_trial": sw.cpus_per_trial,
            "experts": {**common, "lr": g.lr, "batch_size": g.batch_size, "epochs": g.epochs,
                        "ce_scale": g.ce_scale, "embed_dim": g.embed_dim,
                        "trunk_pretrained": g.trunk_pretrained, "precision": g.precision,
                        "eval_route": g.eval_route, "expert_ms": costs.get("expert_ms"),
                        "gater_ms": costs.get("gater_ms")},
            "exits": {**common, "exit_costs": costs.get("exit_costs"), "em_iters": e.em_iters,
                      "em_tol": e.em_tol, "router_hidden": e.router_hidden,
                      "router_epochs": e.router_epochs, "router_lr": e.router_lr,
                      "router_batch_size": e.router_batch_size,
                      "thresholds": list(e.thresholds)}}


LOOPBACK = "127.0.0.1"
PROBE_S = 6.0       # s an address may stay closed (a head still starting) before it is bad input
_FIX = ("start the cluster (ray start --head / ray up) or check the address; drop --address "
        "and RAY_ADDRESS to run on a local Ray")


def init_ray(address: str | None) -> None:
    """Join `address` / RAY_ADDRESS (UserError within ~PROBE_S when nothing answers there),
    else start a private local Ray that listens on 127.0.0.1 only."""
    if ray.is_initialized():
        return
    src = "address" if address else "RAY_ADDRESS"
    address = address or os.environ.get("RAY_ADDRESS")
    if address and address != "local":
        return _join(address, src)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join([_ROOT] + paths)  # local workers import us
    with _single_machine():
        # address="local": a new Ray, never the one a stale ray_current_cluster file names
        ray.init(address="local", _node_ip_address=LOOPBACK, include_dashboard=False,
                 dashboard_host=LOOPBACK, configure_logging=False, log_to_driver=True)


@contextlib.contextmanager
def _single_machine():
    """While Ray starts: its node IP stays 127.0.0.1. Ray swaps a loopback _node_ip_address for
    the machine's external IP unless clusters are "disabled" (its Windows/macOS mode, a flag read
    once at import), and its servers (GCS, raylet + object manager, workers, agents, metrics)
    bind to 0.0.0.0 unless the node IP is loopback. Restored after start-up: a later join of a
    real cluster from this process must advertise the external IP."""
    from ray._private import ray_constants as rc
    flag, rc.ENABLE_RAY_CLUSTER = rc.ENABLE_RAY_CLUSTER, False
    try:
        yield
    finally:
        rc.ENABLE_RAY_CLUSTER = flag


def gcs_target(address: str) -> tuple[str, int, str]:
    """`address` as Ray dials it -> (host, port, where it came from). 'auto' is resolved by
    Ray's own lookup (RAY_ADDRESS, then TMP/ray/ray_current_cluster, then a local gcs_server);
    ray://HOST:PORT is a Ray Client server, probed as is."""
    from ray._common.network_utils import parse_address
    from ray._common.utils import get_ray_address_file
    from ray._private import services
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


def _join(address: str, src: str) -> None:
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
        ray.init(address=address, log_to_driver=True)
    except ConnectionError as e:
        raise UserError(f"Ray address {where} (dialed {dialed}) listens but Ray cannot join it "
                        f"({str(e)[:200]}); {_FIX}") from None
    finally:
        if given is None:
            os.environ.pop(budget, None)


def trial_name(trial) -> str:
    """e.g. gater_lam0.7_tau1_s0 / em_lam2_tau0.5_s1: the grid point is readable in Tune's table."""
    p = trial.config["point"]
    kind = "gater" if p["family"] == "experts" else "em"
    return f"{kind}_lam{p['lam']:g}_tau{p['tau']:g}_s{p['seed']}_{trial.trial_id[-5:]}"


# Experiment state (which trials are finished) is saved at most this often (Tune's default,
# "auto", is >= 10 s): a driver killed right after a trial finished still knows it finished.
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")


def _final_metrics(ckpt) -> dict | None:
    """The metrics a trial reported with its final checkpoint (only the LAST one holds
    decisions.npz); None if `ckpt` is not final."""
    with ckpt.as_directory() as d:
        if not os.path.exists(os.path.join(d, "decisions.npz")):
            return None
        p = os.path.join(d, "metrics.json")
        if not os.path.exists(p):
            return {}
        with open(p) as f:
            return json.load(f)


def router_trial(config: dict, store: dict) -> None:
    """sweep.trials.router_trial, except for a trial restored from its final checkpoint (it
    finished, but its node or the driver died before Tune recorded that): it reports its final
    metrics again instead of training again (the EM state there cannot restart a round)."""
    ckpt = tune.get_checkpoint()
    final = _final_metrics(ckpt) if ckpt is not None else None
    if final is not None:
        return tune.report({**final, "status": "ok", "finished_before_restore": 1})
    return _router_trial(config, store)


def trainable(cfg, store: dict):
    """The store is put in the object store once, here; the resources come from the config."""
    sw = cfg.sweep
    return tune.with_resources(tune.with_parameters(router_trial, store=store),
                               {"cpu": sw.cpus_per_trial, "gpu": sw.gpus_per_trial})


def make_tuner(cfg, store: dict, settings: dict, *, storage_path: str, name: str = "sweep",
               callbacks=()):
    """storage_path: a directory or a URI (s3://, gs://, file://) that pyarrow can open;
    callbacks: driver-side tune.Callbacks (saved in tuner.pkl, so restored with it)."""
    sw = cfg.sweep
    return tune.Tuner(
        trainable(cfg, store),
        param_space={"point": tune.grid_search(grid_points(cfg)), "settings": settings},
        tune_config=tune.TuneConfig(max_concurrent_trials=sw.max_concurrent or None,
                                    reuse_actors=True, trial_name_creator=trial_name,
                                    trial_dirname_creator=trial_name),
        run_config=tune.RunConfig(
            name=name, storage_path=storage_path, verbose=sw.tune_verbose,
            callbacks=list(callbacks),
            failure_config=tune.FailureConfig(max_failures=sw.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2)))


def restore_tuner(cfg, store: dict, experiment: str):
    """The experiment at `experiment` (dir or URI): finished trials stay finished; unfinished
    and errored ones continue from their last checkpoint. None if Tune never saved it."""
    if not tune.Tuner.can_restore(experiment):
        return None
    return tune.Tuner.restore(experiment, trainable(cfg, store), resume_unfinished=True,
                              resume_errored=True, restart_errored=False)


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
        if row["status"] == "ok" and row["decisions"] is None:
            row.update(status="failed", error="trial ended without final decisions")
        out.append(row)
    return sorted(out, key=lambda x: x["trial_id"])     # grid order, also after a restore
