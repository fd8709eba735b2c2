"""`python -m sweep.run` in-process in about a second: the compute (data, feature store, Ray,
Tune) replaced by a small random store and fake trial results, the rest real (outdir, tables,
manifest, the swap). `patch(monkeypatch)` installs it; `main(argv)` then runs a whole run.

The fake sweep also writes what Tune would leave in OUT/tune (a tuner.pkl and an experiment
state) so tests can follow the experiment through a replacement.
"""
from __future__ import annotations

import json
import os
import tempfile
import time

import numpy as np
from ray import tune

from sweep import pipeline, resume
from sweep.config import load_config
from sweep.run import SMOKE
from sweep.tuning import cluster, remote, trust
from sweep.tuning.tuner import grid_points

N, C = 24, 3                      # samples per split and severity, classes
EXPERTS, EXITS = ["fast", "mid", "slow"], ["exit1", "exit2", "exit3", "exit4"]


def config(tmp_path, *sets):
    return load_config(None, SMOKE + [f"cache_dir={tmp_path / 'cache'}", *sets])


def store(cfg, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    S = len(cfg.data.severities)
    split = lambda: {"label": np.tile(rng.integers(0, C, N), S),
                     "severity": np.repeat(np.arange(S), N).astype(np.int8),
                     "sample_id": np.tile(np.arange(N), S),
                     "expert_logits": rng.normal(size=(N * S, len(EXPERTS), C)).astype(np.float32),
                     "exit_logits": rng.normal(size=(N * S, len(EXITS), C)).astype(np.float32)}
    per_sev = lambda: {s: 0.5 for s in ("clean", "mild", "moderate", "severe")}
    meta = {"experts": EXPERTS, "exits": EXITS, "latency_method": "fake",
            "expert_costs": {n: {"latency_ms": 1.0 + i, "latency": {}, "flops": 10 ** (6 + i)}
                             for i, n in enumerate(EXPERTS)},
            "gater_cost": {"latency_ms": 0.1, "flops": 1000},
            "expert_accuracy": {n: per_sev() for n in EXPERTS},
            "exit_costs": {"flops": [0.25, 0.5, 0.75, 1.0], "uniform": [0.25, 0.5, 0.75, 1.0]},
            "exit_flops": [1, 2, 3, 4], "exit_accuracy": {n: per_sev() for n in EXITS}}
    return {"meta": meta, **{k: split() for k in ("train", "val", "test")}}


def trials(cfg, st, *, fail=()) -> list[dict]:
    """One collected trial per grid point (sweep.tuning.tuner.collect's shape); the points whose
    (family, lam) are in FAIL failed with an error, as Tune reports a crashed trial."""
    rng = np.random.default_rng(1)
    out = []
    for i, p in enumerate(grid_points(cfg)):
        t = {**p, "trial_id": f"t{i:03d}", "status": "ok", "error": None, "restored": False,
             "metrics": {"train_time_s": 0.5}}
        n = {s: len(st[s]["label"]) for s in ("val", "test")}
        if (p["family"], p["lam"]) in fail:
            t.update(status="failed", decisions=None,
                     error=f"RuntimeError: {p['family']} trial crashed (planted)")
        elif p["family"] == "experts":
            t["decisions"] = {f"{s}_target": rng.integers(0, len(EXPERTS), n[s]).astype(np.int8)
                              for s in n}
        else:
            T = len(cfg.exits.thresholds)
            t["decisions"] = {f"{s}_target": rng.integers(0, len(EXITS), (T, n[s])).astype(np.int8)
                              for s in n}
        out.append(t)
    return out


def patch(monkeypatch, *, fail=(), sweep=None):
    """Replace the compute of sweep.pipeline.run_pipeline. SWEEP(plan, out) runs in place of
    the Tune sweep (default: write OUT/tune like Tune, return `trials(fail=FAIL)`)."""
    holder = {}

    def build_features(cfg, splits, **kw):
        holder["store"] = store(cfg)
        return holder["store"], {"experts": {"path": "fake", "cache_hit": True}}

    def fake_sweep(cfg, st, costs, *, plan, timings, out):
        if sweep is not None:
            return sweep(plan, out)
        write_experiment(plan, out)
        return trials(cfg, st, fail=fail)

    monkeypatch.setattr(cluster, "check_local_capacity", lambda cfg, address=None: None)
    monkeypatch.setattr(pipeline, "load_data", lambda cfg: (None, {"name": "fake"}))
    monkeypatch.setattr(cluster, "start", lambda cfg, address=None: 0.0)
    monkeypatch.setattr(remote, "build_features", build_features)
    monkeypatch.setattr(pipeline, "_sweep", fake_sweep)
    monkeypatch.setattr("sweep.run.preflight", lambda cfg: None)
    return holder


def write_experiment(plan, out):
    """What Tune leaves in the experiment (two state files, a checkpoint) and its sha256 list."""
    exp = plan.experiment
    os.makedirs(os.path.join(exp, "trial_a", "checkpoint_000000"), exist_ok=True)
    for name in ("tuner.pkl", "experiment_state-x.json", "trial_a/checkpoint_000000/state.pt"):
        with open(os.path.join(exp, name), "w") as f:
            f.write(f"{name} written for {out}")
    ledger = trust.Ledger(out)
    ledger.record_stored(exp)
    ledger.record_checkpoint(exp, os.path.join(exp, "trial_a", "checkpoint_000000"))


def patch_resume(monkeypatch, *, fail=()):
    """Replace the compute of sweep.resume.resume_run (Ray, store, restored sweep)."""
    monkeypatch.setattr(cluster, "start", lambda cfg, address=None: 0.0)
    monkeypatch.setattr(resume, "load_store", lambda cfg, manifest, plan, device: store(cfg))

    def fake_sweep(cfg, st, costs, plan, *, saved, results_dir):
        assert saved, "the experiment the fake run wrote should be found and verified"
        return trials(cfg, st, fail=fail), costs
    monkeypatch.setattr(resume, "_sweep", fake_sweep)


def args(out, tmp_path, *extra):
    return ["--smoke-test", "--no-report", "--out", str(out),
            "--set", f"cache_dir={tmp_path / 'cache'}", *extra]


def listing(path) -> dict:
    """{relative path: bytes} of every file under PATH."""
    out = {}
    for d, _, files in os.walk(path):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, path)] = fh.read()
    return out


def fake_tune(monkeypatch, restore_from=None):
    """Tune's report / get_checkpoint faked for a trial run in-process: -> (metrics reported,
    checkpoints kept: a copy of each, since Session.report removes its directory)."""
    reports, ckpts = [], []

    def report(m, checkpoint=None):
        reports.append(m)
        if checkpoint is not None:
            ckpts.append(tune.Checkpoint.from_directory(checkpoint.to_directory()))
    monkeypatch.setattr(tune, "report", report)
    monkeypatch.setattr(tune, "get_checkpoint", lambda: restore_from)
    return reports, ckpts


def tiny_trainable(config):
    """A Tune function trainable: three results, each with a checkpoint (metrics.json)."""
    for i in range(3):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "metrics.json"), "w") as f:
                json.dump({"i": i}, f)
            tune.report({"i": i}, checkpoint=tune.Checkpoint.from_directory(d))
        time.sleep(0.2)
