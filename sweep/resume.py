"""`python -m sweep.run --resume RESULTS_DIR`: finish a run whose driver died (crash, Ctrl-C,
SIGKILL, a lost head node: RESULTS_DIR may then be the shared copy, STORAGE/results/<run>).

RESULTS_DIR/manifest.json holds the resolved config ("config"), the feature-store parts
("feature_store") and where the Tune experiment lives ("storage"). Resuming

1. re-reads that config (a --config / --set that disagrees with it is an error, exit 2);
2. checks the Tune experiment against RESULTS_DIR/tune-sha256.json (below; exit 2 if a file
   differs), before Ray starts;
3. re-puts the feature store: object refs do not survive a Ray session, so the store is read
   back from the content-addressed cache (cache_dir, else the shared mirror, else rebuilt);
4. restores the Tune experiment (`Tuner.restore`): finished trials are kept as they are and
   never re-run; unfinished and errored trials continue from their last per-epoch checkpoint;
5. writes the complete Parquet tables, manifest and report, as a fresh run would (and, for a
   run started with --overwrite, then replaces the run it was started to replace).

Trust. `Tuner.restore` unpickles files of the experiment, i.e. runs code from RESULTS_DIR (or
from the storage its manifest points to): tuner.pkl, the newest experiment_state-*.json (each
trial's state is cloudpickled inside it), the search algorithm's and callbacks' state
(basic-variant-state-*.json, callback-states-*.pkl) and, for errored trials, error.pkl. A
results folder copied from shared storage is therefore trusted completely. What routesweep
checks is that these files are the ones the run itself wrote (sweep/tuning/trust.py):

* while the sweep runs, a driver-side tune.Callback (`trust.Recorder`, passed in RunConfig)
  keeps RESULTS_DIR/tune-sha256.json current. Tune saves its state inside `step()`: it writes
  experiment_state-<session>.json and the search state to a local staging directory, then
  collects the callbacks' state (`Callback.get_state`), then starts uploading the staging
  directory to the experiment's storage in a background thread. The Recorder hashes the
  staging files in `get_state` and writes the list (atomically, and to the shared results
  copy) there: a state file reaches storage only after its hash is in the list, so a driver
  SIGKILLed at any moment leaves a list that names what is stored. tuner.pkl (written once by
  `Tuner()`) is hashed right after the Tuner is made; trial checkpoints (state.pt,
  decisions.npz, metrics.json: safe formats, read with weights_only / allow_pickle=False /
  json) are hashed when Tune reports them (`on_checkpoint`), on a local filesystem only;
* because the upload lags, each file keeps the versions recorded in the last 120 s;
* `--resume` refuses (exit 2, naming the file) an experiment with a top-level file the list
  does not name or whose sha256 is not among its recorded versions, or a recorded file that
  changed; a run without the list (one that Tune saved) is refused too.

Limits: this detects files changed after the run wrote them, not a forged list (it sits beside
the files); anyone who can write RESULTS_DIR and the list can still run code through
`--resume`. If an earlier upload is still running when Tune rewrites its state (slow storage),
the old upload may copy the new file before the Recorder hashes it (milliseconds); a kill in
that window makes `--resume` refuse a legitimate run.
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
from sweep.results import outdir
from sweep.store import io as store_io
from sweep.store.build import merge_parts
from sweep.store.mirror import pull_part
from sweep.tuning import cluster, remote, storage, trust
from sweep.tuning.tracking import tracking_callbacks
from sweep.tuning import tuner as T


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
    missing = [k for k in outdir.RUN_KEYS if not isinstance(manifest, dict) or k not in manifest]
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


def _sweep(cfg, store, costs, plan, *, saved: bool, results_dir: str):
    """-> (trials, costs): the verified experiment restored, or a fresh one if Tune never
    saved it (then nothing of the old experiment is read)."""
    shared = pipeline.shared_store(store, cfg)
    if saved:
        ledger = trust.Ledger.load(results_dir, mirror=plan.results)
        tuner = T.restore_tuner(cfg, shared, plan.experiment)
    else:
        print(f"[resume] no saved Tune experiment at {plan.experiment}: starting the sweep")
        ledger = trust.Ledger(results_dir, mirror=plan.results)
        tuner = T.make_tuner(cfg, shared, T.trial_settings(cfg, costs), costs,
                             storage_path=plan.tune_storage, name=plan.name,
                             callbacks=[trust.Recorder(), *tracking_callbacks(cfg, results_dir)])
        ledger.record_stored(plan.experiment, names=(trust.TUNER,))
    grid = pipeline.fit(tuner, ledger)
    return T.collect(grid), _settings_costs(grid) or costs


def resume_run(results_dir: str, *, given=None, address=None, report=True) -> dict:
    """Finish the run in RESULTS_DIR; bad input raises UserError before anything is written."""
    shared_copy = fs.is_uri(results_dir)
    results_dir = localize(results_dir)
    manifest = read_manifest(results_dir)
    cfg = stored_config(manifest, given)
    plan = storage.plan_from_manifest(manifest, results_dir)
    fs.check_storage(cfg.sweep.storage_path)
    dest = _destination(manifest, results_dir, shared_copy)
    saved = trust.verify(results_dir, plan.experiment)      # before Ray starts, exit 2 if not
    t = manifest.setdefault("timings", {})
    with outdir.unfinished(results_dir, dest, created=False):
        t["resume_ray_init_s"] = cluster.start(cfg, address)
        device = pick_device(cfg.device)
        t0 = time.perf_counter()
        store = load_store(cfg, manifest, plan, device=device)
        t["resume_features_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        trials, costs = _sweep(cfg, store, families.resolve_costs(cfg, store["meta"]), plan,
                               saved=saved, results_dir=results_dir)
        t["resume_sweep_s"] = time.perf_counter() - t0
        manifest.setdefault("resumed", []).append(dt.datetime.now().isoformat(timespec="seconds"))
        return pipeline.finish(cfg, out=results_dir, store=store, costs=costs, trials=trials,
                               manifest=manifest, plan=plan, report=report, dest=dest)


def _destination(manifest: dict, results_dir: str, shared_copy: bool) -> str:
    """Where the finished run goes: the run it was started to replace (`--overwrite`, see
    sweep/results/outdir.py), if that is still replaceable; else RESULTS_DIR itself. A run
    fetched from the shared copy stays where it was fetched to (its "replaces" names the old
    head)."""
    dest = manifest.get("replaces")
    if not dest or shared_copy:
        return results_dir
    if not outdir.replaceable(dest):
        raise UserError(f"--resume: this run was started to replace '{dest}', which is no "
                        f"longer a routesweep run; move it away first")
    return dest
