"""`python -m sweep.run --resume RESULTS_DIR`: finish a run whose driver died (crash, Ctrl-C,
SIGKILL, a lost head node: RESULTS_DIR may then be the shared copy, STORAGE/results/<run>).

RESULTS_DIR/manifest.json holds the resolved config ("config"), the feature-store parts
("feature_store") and where the Tune experiment lives ("storage"). Resuming

1. re-reads that config (a --config / --set that disagrees with it is an error, exit 2);
2. re-puts the feature store: object refs do not survive a Ray session, so the store is read
   back from the content-addressed cache (cache_dir, else the shared mirror, else rebuilt);
3. restores the Tune experiment (`Tuner.restore`): finished trials are kept as they are and
   never re-run; unfinished and errored trials continue from their last per-epoch checkpoint;
4. writes the complete Parquet tables, manifest and report, as a fresh run would.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import time

from sweep import families, fs, pipeline
from sweep.config import Config, from_dict, to_dict
from sweep.data.datasets import load_data
from sweep.device import pick_device
from sweep.errors import UserError
from sweep.store import io as store_io
from sweep.store.build import merge_parts
from sweep.store.mirror import pull_part
from sweep.tuning import cluster, remote, storage
from sweep.tuning import tuner as T

REQUIRED = ("routesweep_version", "config", "feature_store", "storage")


def localize(results_dir: str) -> str:
    """A results URI (STORAGE/results/<run>, e.g. after losing the head) -> a local copy under
    results/<run>; a local directory as it is."""
    if not fs.is_uri(results_dir):
        return results_dir
    if not fs.exists(fs.join(results_dir, "manifest.json")):
        raise UserError(f"--resume '{results_dir}' is not a routesweep run (no manifest.json)")
    local = os.path.join("results", results_dir.rstrip("/").rsplit("/", 1)[-1])
    if not os.path.isfile(os.path.join(local, "manifest.json")):
        fs.download_dir(results_dir, local)
    print(f"[resume] {results_dir} -> {local}")
    return local


def read_manifest(results_dir: str) -> dict:
    """RESULTS_DIR/manifest.json of a routesweep run, or UserError."""
    if not os.path.isdir(results_dir):
        raise UserError(f"--resume '{results_dir}' is not a directory")
    try:
        with open(os.path.join(results_dir, "manifest.json")) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        raise UserError(f"--resume '{results_dir}' is not a routesweep run "
                        f"(no readable manifest.json)")
    missing = [k for k in REQUIRED if not isinstance(manifest, dict) or k not in manifest]
    if missing:
        raise UserError(f"--resume '{results_dir}' is not a resumable routesweep run "
                        f"(manifest.json lacks {', '.join(missing)})")
    return manifest


def _first_difference(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            d = _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else k)
            if d:
                return d
        return None
    return (path, a, b) if a != b else None


def stored_config(manifest: dict, given=None):
    """The run's Config; `given` (from --config/--set) must equal it."""
    cfg = from_dict(Config, manifest["config"])
    if given is not None:
        diff = _first_difference(to_dict(cfg), to_dict(given))
        if diff:
            key, old, new = diff
            raise UserError(f"--resume: the given config conflicts with the stored one at "
                            f"'{key}' (stored {old!r}, given {new!r}); resume without "
                            f"--config/--set, or start a new run")
    return cfg


def _part_path(cfg, plan, entry: dict) -> str | None:
    """A complete local copy of a store part: where it was, else cache_dir (pulled from the
    shared mirror if needed); None if neither has it."""
    if store_io.is_complete(entry["path"]):
        return entry["path"]
    local = os.path.join(cfg.cache_dir, os.path.basename(entry["path"]))
    pull_part(plan.cache, local)
    return local if store_io.is_complete(local) else None


def load_store(cfg, manifest: dict, plan, *, device: str):
    """The run's feature store from the cache; rebuilt (same cache keys) if it is gone."""
    paths = [_part_path(cfg, plan, e) for e in manifest["feature_store"].values()]
    if all(paths):
        print(f"[resume] feature store from cache: {paths}")
        return merge_parts([store_io.load_part(p) for p in paths])
    print("[resume] feature store not in any cache: rebuilding it")
    splits, _ = load_data(cfg)
    return remote.build_features(cfg, splits, device=device, mode="auto", mirror=plan.cache)[0]


def _settings_costs(result_grid) -> dict | None:
    """The costs the trials were given (from the restored param space)."""
    for r in result_grid:
        return r.config.get("costs") or None
    return None


def _sweep(cfg, store, costs, plan):
    """-> (trials, costs): restored experiment, or a fresh one if Tune never saved it."""
    shared = pipeline.shared_store(store, cfg)
    tuner = T.restore_tuner(cfg, shared, plan.experiment)
    if tuner is None:
        print(f"[resume] no saved Tune experiment at {plan.experiment}: starting the sweep")
        tuner = T.make_tuner(cfg, shared, T.trial_settings(cfg, costs), costs,
                             storage_path=plan.tune_storage, name=plan.name)
    grid = tuner.fit()
    return T.collect(grid), _settings_costs(grid) or costs


def resume_run(results_dir: str, *, given=None, address=None, report=True) -> dict:
    """Finish the run in RESULTS_DIR; bad input raises UserError before anything is written."""
    results_dir = localize(results_dir)
    manifest = read_manifest(results_dir)
    cfg = stored_config(manifest, given)
    plan = storage.plan_from_manifest(manifest, results_dir)
    fs.check_storage(cfg.sweep.storage_path)
    t = manifest.setdefault("timings", {})
    t["resume_ray_init_s"] = cluster.start(cfg, address)
    device = pick_device(cfg.device)
    t0 = time.perf_counter()
    store = load_store(cfg, manifest, plan, device=device)
    t["resume_features_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    trials, costs = _sweep(cfg, store, families.resolve_costs(cfg, store["meta"]), plan)
    t["resume_sweep_s"] = time.perf_counter() - t0
    manifest.setdefault("resumed", []).append(dt.datetime.now().isoformat(timespec="seconds"))
    return pipeline.finish(cfg, out=results_dir, store=store, costs=costs, trials=trials,
                           manifest=manifest, plan=plan, report=report)
