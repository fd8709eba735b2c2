"""Benchmark 4: the caching pass that builds the feature store, and where a run's time goes.

* Caching pass: exactly what sweep/store/build.py runs per split -- `trainers.experts.expert_logits`
  for every expert (uint8 host images -> device, resize, normalise, forward, logits back to host)
  plus the gater input's `resize_uint8` -- in images/s through the whole zoo, against the raw
  expert inference on the same device: forward passes alone on inputs already preprocessed and
  on the device, same batch size. Their ratio is the caching pass's efficiency (target >= 80 %).
* Phases of a whole run (data, experts, features, sweep, analysis) from a results directory's
  manifest.json `timings` and its feature store's meta.json, else what can be measured here.
"""
from __future__ import annotations

import json
import os
import statistics
import time

import torch

from sweep.bench.gater import build_zoo, sync, synthetic_images
from sweep.data.images import resize_uint8
from sweep.config import load_config
from sweep.data.corruptions import expand_all
from sweep.data.datasets import load_data
from sweep.store import io as store_io
from sweep.store.build import needed_parts, part_key
from trainers import experts as zoo

# base resolution, gater input, classes per profile (as bench_gater's shapes)
PROFILE_DATA = {"paper": (224, 96, 6), "tiny": (48, 16, 10)}
BATCH = 256                      # expert_logits' default batch: the features pass uses it


def _timed(fn, device: str) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def _raw_forward(model, x: torch.Tensor) -> None:
    """Forward passes alone: x float [N,3,s,s] already preprocessed and on the device."""
    with torch.inference_mode():
        for i in range(0, len(x), BATCH):
            model(x[i:i + BATCH])


def caching_pass(profile: str, *, device: str, n: int, repeats: int, log=print) -> dict:
    """images/s of the caching pass vs raw inference, per expert and for the zoo (medians)."""
    size, gsize, classes = PROFILE_DATA[profile]
    specs, models = build_zoo(profile, classes=classes, device=device)
    imgs, _ = synthetic_images(n, size, classes)
    per, cache_s, raw_s = {}, 0.0, 0.0
    for s, m in zip(specs, models):
        x = zoo.preprocess(torch.from_numpy(imgs), s.input_size).to(device)   # [N,3,s,s]
        cache = lambda: zoo.expert_logits(m, images=imgs, input_size=s.input_size, device=device)
        raw = lambda: _raw_forward(m, x)
        _raw_forward(m, x[:BATCH])                                            # warm-up
        times = [(_timed(cache, device), _timed(raw, device)) for _ in range(repeats)]
        c, r = (statistics.median(t[i] for t in times) for i in (0, 1))
        per[s.name] = {"caching_images_per_s": n / c, "raw_images_per_s": n / r,
                       "efficiency": r / c, "runs_s": times}
        cache_s, raw_s = cache_s + c, raw_s + r
        del x
    gater_s = statistics.median(_timed(lambda: resize_uint8(imgs, gsize), "cpu")
                                for _ in range(repeats))
    out = {"profile": profile, "images": n, "batch_size": BATCH, "device": device,
           "experts": per, "gater_input_s": gater_s,
           "caching_images_per_s": n / (cache_s + gater_s), "raw_images_per_s": n / raw_s,
           "efficiency": raw_s / (cache_s + gater_s)}
    log(f"[bench] caching pass ({profile}): {out['caching_images_per_s']:.3g} img/s through "
        f"the zoo vs raw {out['raw_images_per_s']:.3g} img/s = {out['efficiency']:.0%}")
    return out


def _store_meta(path: str) -> dict:
    try:
        with open(os.path.join(path, "meta.json")) as f:
            return json.load(f)
    except OSError:
        return {}


def phases_from_run(run_dir: str) -> dict:
    """Phase seconds of a finished run: manifest timings, experts split out of features
    (only for store parts built by that run; a cache hit costs its load only)."""
    with open(os.path.join(run_dir, "manifest.json")) as f:
        m = json.load(f)
    t, experts_s = m.get("timings", {}), 0.0
    for part, info in (m.get("feature_store") or {}).items():
        if info.get("cache_hit"):
            continue
        meta = _store_meta(info.get("path", ""))
        experts_s += sum((meta.get("timings") or {}).values())
        experts_s += (meta.get("exit_timings") or {}).get("backbone_and_heads_s", 0.0)
    features = t.get("features_s", 0.0)
    ph = {"data": t.get("data_s", 0.0), "experts": min(experts_s, features),
          "features": max(0.0, features - experts_s),
          "sweep": t.get("ray_init_s", 0.0) + t.get("sweep_s", 0.0),
          "analysis": t.get("tables_s", 0.0) + t.get("report_s", 0.0)}
    return {"source": os.path.join(run_dir, "manifest.json"), "phases_s": ph,
            "total_s": sum(ph.values()), "raw_timings": t,
            "note": "experts = training + logits + latency of every expert and the exit "
                    "backbone/heads (store meta.json); features = the rest of the store build"}


def _cached_experts_s(cfg) -> dict:
    """Seconds the default store's parts took to build (their meta.json), if they are cached."""
    out = {}
    for part in needed_parts(cfg):
        path = os.path.join(cfg.cache_dir, part_key(part, cfg, "cpu"))
        if store_io.is_complete(path, verify_hashes=False):
            meta = _store_meta(path)
            out[part] = sum((meta.get("timings") or {}).values()) + \
                (meta.get("exit_timings") or {}).get("backbone_and_heads_s", 0.0)
    return out


def phases_measured(log=print) -> dict:
    """Without a run dir: time the default run's data phase (load + corrupted copies) and read
    what its cached store's parts took to build (expert training + logits, backbone + heads)."""
    cfg = load_config(None)
    t0 = time.perf_counter()
    splits, _ = load_data(cfg)
    t1 = time.perf_counter()
    expand_all(cfg, splits)
    t2 = time.perf_counter()
    built = _cached_experts_s(cfg)
    log(f"[bench] default run data phase: load {t1 - t0:.2f} s, corrupted copies {t2 - t1:.2f} s"
        f"; cached store parts took {', '.join(f'{k} {v:.0f} s' for k, v in built.items())}")
    ph = {"data": t1 - t0, "corruptions": t2 - t1}
    ph.update({f"{k}_build (cached)": v for k, v in built.items()})
    return {"source": "measured here + the cached store's meta.json (pass --run-dir DIR for "
                      "a whole run's phases)", "phases_s": ph}


def run(profile: str, *, device: str, smoke: bool, run_dir: str | None, log=print) -> dict:
    cuda = device.startswith("cuda")
    n = {("paper", False): 96, ("paper", True): 1024, ("tiny", False): 1024,
         ("tiny", True): 8192}[(profile, cuda)]
    n, repeats = (min(n, 64), 1) if smoke else (n, 3)
    out = {"caching_pass": caching_pass(profile, device=device, n=n, repeats=repeats, log=log)}
    out["run_phases"] = phases_from_run(run_dir) if run_dir else phases_measured(log=log)
    return out
