"""Benchmarks 2 and 3: how busy Ray Tune keeps the trial slots, and how trials share the store.

2. Orchestration. The production Tuner (`sweep.tuning.tuner.make_tuner`) runs the grid with the
   trainable wrapped by `timed_trial`, which reports the WHOLE function time of
   `sweep.tuning.tuner.router_trial` (store views, model build, every epoch, decisions,
   checkpoints) as its last metrics. Busy fraction = sum of those times / (slots x Tuner.fit
   wall time). The same grid of no-op trials gives Ray's own per-trial overhead.
3. Store sharing. N Ray actors on one node read the store from the object store as trials do
   (`sweep.tuning.probe`); psutil's USS/PSS say what each one added.

Ray is reached only through the Ray layer (sweep/tuning/), which this module imports: the
benchmark imports it only when sections 2-3 run (Ray may be missing on a GPU box).
"""
from __future__ import annotations

import statistics
import tempfile
import time

import numpy as np

from sweep import families
from sweep.config import load_config
from sweep.data.datasets import load_data
from sweep.run import SMOKE
from sweep.store.build import build_store
from sweep.tuning import cluster, probe
from sweep.tuning import tuner as T
from sweep.tuning.trials import Session


# ---------------------------------------------------------------- stores
def synthetic_store(n_train: int, *, n_eval: int | None = None, experts: int = 3,
                    classes: int = 10, gater_size: int = 16, widths=(16, 32, 64, 128),
                    seed: int = 0) -> tuple[dict, dict]:
    """A store with the default run's layout (docs/architecture.md) and random contents,
    plus the costs trials need (per family). Sizes: ~2 KB per sample at the default shapes."""
    rng = np.random.default_rng(seed)
    n_eval = n_eval or max(1, n_train // 3)
    store = {"meta": {}}
    for split, n in (("train", n_train), ("val", n_eval), ("test", n_eval)):
        s = {"label": rng.integers(0, classes, n).astype(np.int64),
             "severity": rng.integers(0, 4, n).astype(np.int8),
             "corruption": rng.integers(0, 3, n).astype(np.int8),
             "sample_id": np.arange(n, dtype=np.int64),
             "expert_logits": rng.standard_normal((n, experts, classes), np.float32),
             "gater_input": rng.integers(0, 256, (n, gater_size, gater_size, 3), np.uint8),
             "exit_logits": rng.standard_normal((n, len(widths), classes), np.float32)}
        s.update({f"exit_features_{k}": rng.standard_normal((n, d), np.float32)
                  for k, d in enumerate(widths)})
        store[split] = s
    costs = {"experts": {"expert_ms": [0.5, 2.0, 1.2][:experts], "gater_ms": 0.2},
             "exits": {"exit_costs": [0.25, 0.5, 0.75, 1.0][:len(widths)]}}
    return store, costs


def store_bytes(store: dict) -> int:
    return sum(a.nbytes for k, s in store.items() if k != "meta" for a in s.values())


def default_store(cfg, log=print) -> tuple[dict, dict, dict]:
    """The default run's real store (built and cached by sweep.store as the run does)."""
    splits, _ = load_data(cfg)
    store, info = build_store(cfg, splits, device="cpu", log=log)
    return store, families.resolve_costs(cfg, store["meta"]), info


# ---------------------------------------------------------------- 2. orchestration
def timed_trial(config: dict, store: dict, trials: dict) -> None:
    """router_trial, then one more report with its whole function time (wall clock)."""
    t0 = time.time()
    T.router_trial(config, store, trials)
    t1 = time.time()
    Session(config["settings"]).report({"fn_start": t0, "fn_end": t1, "fn_time_s": t1 - t0,
                                        "bench": 1})


def noop_trial(config: dict, store: dict, trials: dict) -> None:
    """Reads nothing, trains nothing: what is left of a trial's time is Ray's."""
    t = time.time()
    Session(config["settings"]).report({"fn_start": t, "fn_end": t, "fn_time_s": 0.0,
                                        "bench": 1})


def fit_grid(cfg, store, settings, fn, *, name: str) -> tuple[float, list[dict]]:
    """-> (Tuner.fit wall s, one metrics dict per trial) for the grid of `cfg`, run by the
    production Tuner around `fn` (same resources, concurrency, actor reuse, checkpoints,
    failure policy)."""
    shared = {"meta": {}, **{k: v for k, v in store.items() if k != "meta"}}  # as pipeline
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp:
        tuner = T.make_tuner(cfg, shared, settings, storage_path=tmp, name=name, fn=fn)
        t0 = time.perf_counter()
        grid = tuner.fit()
        wall = time.perf_counter() - t0
        rows = [{**dict(r.metrics or {}), "family": r.config["point"]["family"],
                 "train_time_s": _max_reported(r, "train_time_s"),
                 "error": None if r.error is None else str(r.error)[-300:]} for r in grid]
    return wall, rows


def _max_reported(result, key: str):
    """The trial's own `key` (its last report is ours, so look through all of them)."""
    df = result.metrics_dataframe
    return float(df[key].max()) if df is not None and key in df and df[key].notna().any() else None


def _busy(rows, wall: float, n_slots: int) -> dict:
    fn = [r.get("fn_time_s", 0.0) or 0.0 for r in rows]
    starts = [r["fn_start"] for r in rows if "fn_start" in r]
    ends = [r["fn_end"] for r in rows if "fn_end" in r]
    span = (max(ends) - min(starts)) if starts else float("nan")
    own = [r.get("train_time_s") or 0.0 for r in rows]
    return {"trials": len(rows), "failed": sum(r["error"] is not None or r.get("status") ==
                                               "failed" for r in rows),
            "slots": n_slots, "wall_s": wall, "first_start_to_last_end_s": span,
            "sum_fn_time_s": sum(fn), "median_fn_time_s": statistics.median(fn) if fn else 0,
            "slot_busy_fraction": sum(fn) / (n_slots * wall),
            "slot_busy_fraction_in_span": sum(fn) / (n_slots * span) if starts else None,
            "sum_train_time_s": sum(own),
            "train_time_busy_fraction": sum(own) / (n_slots * wall),
            "overhead_s_per_trial": (n_slots * wall - sum(fn)) / max(1, len(rows))}


def orchestration(grid: str, *, log=print) -> dict:
    """Run the grid (`default`: the default config and its real store; `smoke`: sweep.run's
    smoke grid on a small synthetic store) for real, then the same grid of no-op trials."""
    cfg = load_config(None, SMOKE if grid == "smoke" else [])
    if grid == "smoke":
        (store, costs), info = synthetic_store(512), {"synthetic": True}
    else:
        store, costs, info = default_store(cfg, log=log)
    cluster.init_ray(None)
    n_slots, settings = cluster.trial_slots(cfg), T.trial_settings(cfg, costs)
    log(f"[bench] orchestration: {len(T.grid_points(cfg))} trials on {n_slots} slots")
    wall, rows = fit_grid(cfg, store, settings, timed_trial, name="bench-grid")
    out = {"grid": grid, "store": info, "store_mb": store_bytes(store) / 2**20,
           "cpus_per_trial": cfg.sweep.cpus_per_trial, **_busy(rows, wall, n_slots)}
    for fam in (f.name for f in families.enabled(cfg)):
        fn = [r.get("fn_time_s", 0.0) for r in rows if r["family"] == fam]
        out[f"median_fn_time_s_{fam}"] = statistics.median(fn) if fn else None
    noop_wall, noop_rows = fit_grid(cfg, store, settings, noop_trial, name="bench-noop")
    out["noop"] = {"wall_s": noop_wall, "trials": len(noop_rows),
                   "overhead_s_per_trial": n_slots * noop_wall / max(1, len(noop_rows))}
    log(f"[bench] orchestration: busy {out['slot_busy_fraction']:.1%}, overhead "
        f"{out['overhead_s_per_trial']:.2f} s/trial (no-op trials: "
        f"{out['noop']['overhead_s_per_trial']:.2f} s)")
    return out


# ---------------------------------------------------------------- 3. store sharing
def store_sharing(*, store_mb: float, ns=(1, 2, 4), log=print) -> dict:
    """USS each trial adds by reading the store (zero-copy) vs a control that copies it."""
    cluster.init_ray(None)
    per_sample = store_bytes(synthetic_store(30)[0]) / 30          # bytes per train sample
    store, _ = synthetic_store(max(64, int(store_mb * 2**20 / per_sample)))
    size = store_bytes(store)
    rounds, control = probe.reader_rounds(store, ns)
    worst = max(max(r["uss_added_mb"]) for r in rounds) * 2**20 / size
    n_max = rounds[-1]
    sum_pss = sum(n_max["pss_added_mb"]) * 2**20 / size
    out = {"store_mb": size / 2**20, "rounds": rounds, "copy_control": control,
           "max_uss_added_fraction": worst,
           "sum_pss_added_fraction_at_max_n": sum_pss,
           "copy_control_uss_added_fraction": max(control["uss_added_mb"]) * 2**20 / size,
           "process_uss_mb_median": statistics.median(
               x for r in rounds for x in r["process_uss_mb"])}
    log(f"[bench] store sharing: {out['store_mb']:.0f} MB store; each trial adds at most "
        f"{worst:.1%} of it (USS), a copying trial {out['copy_control_uss_added_fraction']:.0%}")
    return out


def shutdown() -> None:
    cluster.shutdown()
