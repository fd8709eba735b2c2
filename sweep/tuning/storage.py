"""Where one run keeps what must outlive one machine or one Ray session (`sweep.storage_path`):

    STORAGE/tune/<run>/        Tune's experiment state and per-epoch trial checkpoints
    STORAGE/cache/<part-key>/  the feature store's content-addressed parts (a mirror of cache_dir)
    STORAGE/results/<run>/     manifest.json, points/routes/decisions.parquet, report.html

Without `storage_path` everything stays local: Tune under OUT/tune, the cache in cache_dir.
The results copy writes manifest.json last, so a reader never takes a half-copied directory for
a complete one. Directories and URIs alike go through `sweep.fs`.
"""
from __future__ import annotations

import dataclasses
import os
import uuid

from sweep.fs import is_uri, join, upload_dir


@dataclasses.dataclass(frozen=True)
class Plan:
    """Where one run keeps its Tune experiment, cache mirror and results copy."""
    tune_storage: str                     # Tune's RunConfig.storage_path
    name: str                             # Tune experiment name
    cache: str | None                     # mirror of the feature cache (None: no mirror)
    results: str | None                   # copy of OUT (None: OUT is the only copy)

    @property
    def experiment(self) -> str:
        return join(self.tune_storage, self.name)


def plan_for(storage_path: str | None, out: str) -> Plan:
    if not storage_path:
        return Plan(os.path.abspath(os.path.join(out, "tune")), "sweep", None, None)
    run = f"{os.path.basename(os.path.abspath(out))}-{uuid.uuid4().hex[:8]}"
    root = storage_path if is_uri(storage_path) else os.path.abspath(storage_path)
    return Plan(join(root, "tune"), run, join(root, "cache"), join(root, "results", run))


def relocated(plan: Plan, out: str) -> Plan:
    """The plan once the run's directory is `out`: without shared storage the Tune experiment
    lives in OUT/tune and moves with it (a run built beside OUT, or a copied run)."""
    if plan.results is not None:
        return plan
    return Plan(os.path.abspath(os.path.join(out, "tune")), plan.name, plan.cache, None)


def describe(plan: Plan) -> dict:
    """The manifest's "storage" entry."""
    return {**dataclasses.asdict(plan), "experiment": plan.experiment}


def plan_from_manifest(manifest: dict, results_dir: str) -> Plan:
    """The stored plan; a local default experiment is found beside RESULTS_DIR (it may move)."""
    p = manifest["storage"]
    return relocated(Plan(p["tune_storage"], p["name"], p.get("cache"), p.get("results")),
                     results_dir)


def publish_results(out: str, plan: Plan) -> None:
    """Copy the run's files (not OUT/tune) to the shared results location; manifest last."""
    if plan.results:
        upload_dir(out, plan.results, last="manifest.json", skip=("tune",))
