"""manifest.json: what a run was (config, versions, hardware, costs, data, trials, timings).

`SCHEMA_VERSION` versions the results contract (manifest + the three tables); `analysis.load`
reads this version and the ones before it (analysis/io.py).

    1  (no `schema_version` key) the tables of README.md; manifest without `families`
    2  + `schema_version`, + `families`: per family in the tables, its config section, methods,
       cost unit and what its λ and τ weigh (`lam`, `tau`: the words figures and tables show).
       The three tables are unchanged.
"""
from __future__ import annotations

import importlib.metadata as md
import os
import platform
import subprocess

import psutil
import torch

from sweep import families
from sweep.config import to_dict
from sweep.data.corruptions import corruption_levels
from sweep.tuning import storage

SCHEMA_VERSION = 2
VERSION = "0.1.0"


NOT_GIT = "not a git checkout"


def code_version(root=None) -> dict:
    """The code this run ran: {"git_commit": sha or NOT_GIT, "git_dirty": uncommitted changes
    to tracked files (None outside git)}; `root`: the checkout (default: routesweep's own)."""
    root = root or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    git = ["git", "-C", str(root)]
    try:
        sha = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
        if sha.returncode != 0:
            return {"git_commit": NOT_GIT, "git_dirty": None}
        dirty = subprocess.run(git + ["status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": NOT_GIT, "git_dirty": None}
    return {"git_commit": sha.stdout.strip(), "git_dirty": bool(dirty.stdout.strip())}


def versions() -> dict:
    out = {"python": platform.python_version()}
    for p in ("routesweep", "torch", "torchvision", "timm", "ray", "numpy", "pandas", "pyarrow",
              "plotly", "scipy", "scikit-learn"):
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = None
    return out


def cpu_model(cpuinfo="/proc/cpuinfo") -> str:
    """The CPU's model name ('AMD EPYC 7B13'), from /proc/cpuinfo on Linux; else what
    `platform` knows ('x86_64' at worst)."""
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(device: str) -> dict:
    hw = {"device": device, "cpu": cpu_model(),
          "cores": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
          "platform": platform.platform(), "gpu": None}
    if device.startswith("cuda"):
        hw["gpu"] = torch.cuda.get_device_name(0)
    return hw


def family_block(fams) -> dict:
    """{family name: Family.describe()}: what analysis/ needs to label a family's rows."""
    return {f.name: f.describe() for f in fams}


def cost_manifest(cfg, meta: dict, costs: dict) -> dict:
    """Every enabled family's cost entries (measured and used costs, how they were measured)."""
    out = {}
    for f in families.enabled(cfg):
        if f.cost_manifest is not None:
            out.update(f.cost_manifest(cfg, meta, costs[f.name]))
    return out


def new_manifest(cfg, *, created: str, device: str, store: dict, costs: dict, data_info: dict,
                 cache_info: dict, timings: dict, plan) -> dict:
    """The manifest written when the sweep starts (status running)."""
    return {"routesweep_version": VERSION, "schema_version": SCHEMA_VERSION,
            "status": "running", "created": created, "config_name": cfg.name,
            "config": to_dict(cfg), "families": family_block(families.enabled(cfg)),
            "versions": versions(), "code": code_version(), "hardware": hardware(device),
            "costs": cost_manifest(cfg, store["meta"], costs),
            "dataset": {**data_info, "severities": list(cfg.data.severities),
                        "corruption_levels": corruption_levels(cfg),
                        "samples": {k: int(len(store[k]["label"])) for k in
                                    ("train", "val", "test")}},
            "feature_store": cache_info, "timings": timings,
            "storage": storage.describe(plan)}


def trial_rows(trials: list[dict]) -> list[dict]:
    """The manifest's `trials`: one entry per trial (grid point, method, status, time, epochs
    run, and `stopped_early`: the plateau rule ended it before its last epoch)."""
    return [{k: x[k] for k in ("trial_id", "family", "lam", "tau", "seed", "status", "error",
                               "restored")} |
            {"method": families.get(x["family"]).method, "variant": x.get("variant"),
             "train_time_s": x["metrics"].get("train_time_s"),
             "epochs": x["metrics"].get("epoch"),
             "stopped_early": bool(x.get("stopped_early", False))} for x in trials]


def finished(manifest: dict, trials: list[dict], *, when: str, plan=None) -> dict:
    """The manifest once the tables are written: status "complete" when every grid point's
    trial succeeded, else "partial" (its failed rows say why); every trial; where the run's
    state now lives (`plan`, when given: relocated to the run's final directory)."""
    failed = [x for x in trials if x["status"] != "ok"]
    manifest.pop("replaces", None)
    manifest.update(status="complete" if not failed else "partial", finished=when,
                    trials=trial_rows(trials))
    if plan is not None:
        manifest["storage"] = storage.describe(plan)
    return manifest
