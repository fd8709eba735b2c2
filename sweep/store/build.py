"""The shared feature store: frozen models' outputs on every split x severity, computed once.

Parts, each cached under its own content hash so toggling a family rebuilds nothing else:

* `experts`: expert logits [N,E,C], the gater's downsampled input [N,g,g,3] uint8, measured
  latency (batch 1) and FLOPs of every expert and of the gater.
* `exits`:   pooled features after each ResNet stage [N,d_k], exit-head logits [N,K,C], the
  cumulative FLOPs of each exit.
* `gater_trunk` (only with `gater.trunk: frozen | both`): the frozen trunk's activations
  [N,h,w,128] (fp16 or fp32) of the gater's input; keyed by the trunk weights' sha256.

Both carry label / severity / corruption / sample_id. `build_store` returns the merged in-memory
store `{"meta": {...}, "train"|"val"|"test": {name: ndarray}}` (layout: docs/architecture.md).
A run builds the parts its enabled families read (`Family.store_part`, `Family.parts`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from sweep import families
from sweep.config.experts import resolved_expert_dicts
from sweep.data.corruptions import SEVERITIES, expand_all
from sweep.data.images import resize_uint8
from sweep.errors import user_errors
from sweep.store import io as store_io
from sweep.store.same_build import SAME_BUILD_AS
from trainers import experts as zoo
from trainers import multiexit as mx
from trainers import gater as G
from trainers.cost import count_flops, measure_latency_ms

# The source files whose change may change what a part holds (its key hashes them) ...
CODE_FILES = ("sweep/data/datasets.py", "sweep/data/imagefolder.py", "sweep/data/images.py",
              "sweep/data/corruptions.py", "sweep/store/build.py", "trainers/experts.py",
              "trainers/multiexit.py", "trainers/frozen.py", "trainers/gater.py",
              "trainers/cost.py", "trainers/layout.py")
# ... (and sweep/store/same_build.py: versions checked to build the same parts as an earlier one)
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def source_hash() -> str:
    """Hash of CODE_FILES as they are now."""
    h = hashlib.sha256()
    for rel in CODE_FILES:
        with open(os.path.join(_ROOT, rel), "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


def code_version() -> str:
    """What the store keys on: the source hash, or the earlier one it builds the same as."""
    h = source_hash()
    return SAME_BUILD_AS.get(h, h)


def part_key(part: str, cfg, device: str) -> str:
    """Content hash of everything that determines a store part."""
    # float results depend on the device and, on CPU, on the thread count (reduction order)
    what = {"data": dataclasses.asdict(cfg.data), "device": device.split(":")[0],
            "threads": torch.get_num_threads() if device == "cpu" else None,
            "code": code_version(), "part": part}
    if part == "experts":
        what["experts"] = [dict(s) for s in resolved_expert_dicts(cfg)]
        what["gater"] = {k: getattr(cfg.gater, k) for k in ("gater_size", "embed_dim")}
        what["latency_repeats"] = cfg.experts.latency_repeats
    elif part == "gater_trunk":
        what["gater_trunk"] = {"gater_size": cfg.gater.gater_size,
                               "dtype": cfg.gater.trunk_cache_dtype,
                               "sha256": G.trunk_state_sha256(frozen_trunk(cfg))}
    else:
        what["exits"] = {k: v for k, v in dataclasses.asdict(cfg.exits).items()
                         if k in ("width", "stem", "epochs", "lr", "batch_size", "augment",
                                  "train_on_corrupted", "head_hidden", "head_epochs",
                                  "input_size")}
    blob = json.dumps(what, sort_keys=True, default=str).encode()
    return f"{part}-{hashlib.sha256(blob).hexdigest()[:20]}"


def _bar(desc: str, total: int):
    """A tqdm progress bar on stderr, one tick per training epoch."""
    return tqdm(total=total, desc=desc, unit="epoch", leave=True)


def _columns(x: dict) -> dict:
    return {k: x[k] for k in ("label", "severity", "corruption", "sample_id")}


def needed_parts(cfg) -> list[str]:
    """The parts the enabled families read, in PARTS order."""
    wanted = {p for f in families.enabled(cfg) for p in (f.store_part, *f.parts(cfg))}
    return [p for p in PARTS if p in wanted]


def build_store(cfg, splits, *, device: str, parts=None, log=print) -> tuple[dict, dict]:
    """-> (store, info) where info says per part whether it came from the cache.
    parts: the part names to build (default: those the enabled families read). Runs sharing
    cache_dir build a part once: the second waits for the first (store_io.part_lock)."""
    expanded, loaded, info = None, [], {}
    ncls = splits["train"].num_classes        # every model's head: the dataset's class list
    for part in needed_parts(cfg) if parts is None else parts:
        path = os.path.join(cfg.cache_dir, part_key(part, cfg, device))
        wait = lambda: log(f"[features] another run is building '{part}'; waiting for {path}")
        with store_io.part_lock(path, on_wait=wait):
            hit = store_io.is_complete(path)
            if not hit:
                expanded = expanded if expanded is not None else expand_all(cfg, splits)
                log(f"[features] building '{part}' part -> {path}")
                arrays, meta = PARTS[part](cfg, expanded, ncls=ncls, device=device)
                store_io.save_part(path, arrays, meta)
            else:
                log(f"[features] cache hit for '{part}': {path}")
        loaded.append(store_io.load_part(path))         # complete parts never change: no lock
        info[part] = {"path": os.path.abspath(path), "cache_hit": hit,
                      "bytes_per_sample": bytes_per_sample(loaded[-1][0])}
    return merge_parts(loaded), info


def bytes_per_sample(arrays: dict) -> int:
    """What one sample costs a part in memory: its train arrays' bytes / N (N: their common
    first dimension; the first split without a train one)."""
    split = arrays.get("train") or next(iter(arrays.values()), {})
    n = max((len(a) for a in split.values()), default=0)
    return int(sum(np.asarray(a).nbytes for a in split.values()) // max(1, n))


def merge_parts(parts) -> dict:
    store: dict = {"meta": {}}
    for arrays, meta in parts:
        store["meta"].update(meta)
        for split, named in arrays.items():
            store.setdefault(split, {}).update(named)
    return store


def _per_severity_accuracy(correct: np.ndarray, severity: np.ndarray) -> dict:
    out = {"all": float(correct.mean())}
    for i, s in enumerate(SEVERITIES):
        if (severity == i).any():
            out[s] = float(correct[severity == i].mean())
    return out


def _build_experts(cfg, expanded, *, ncls: int, device):
    specs = [zoo.spec_from_dict(d) for d in resolved_expert_dicts(cfg)]
    arrays = {s: {**_columns(x), "expert_logits": [],
                  "gater_input": resize_uint8(x["images"], cfg.gater.gater_size)}
              for s, x in expanded.items()}
    meta = {"experts": [], "expert_costs": {}, "expert_accuracy": {}, "timings": {}}
    for spec in specs:
        t0 = time.perf_counter()
        with user_errors():         # e.g. a checkpoint whose head needs fine-tuning
            model = zoo.build_expert(spec, num_classes=ncls, seed=cfg.data.seed).to(device)
        tr = expanded["train"]
        keep = np.ones(len(tr["label"]), bool) if spec.train_on_corrupted else tr["severity"] == 0
        with _bar(f"[features] train {spec.name}", spec.epochs) as bar:
            tick = lambda epoch, epochs, loss, secs: bar.set_postfix(loss=f"{loss:.3f}") or bar.update()
            model = zoo.train_expert(model, spec, images=tr["images"][keep],
                                     labels=tr["label"][keep], seed=cfg.data.seed, device=device,
                                     progress=tick)
        for s, x in expanded.items():
            arrays[s]["expert_logits"].append(zoo.expert_logits(
                model, images=x["images"], input_size=spec.input_size, device=device))
        shape = (1, 3, spec.input_size, spec.input_size)
        lat = measure_latency_ms(model, input_shape=shape, device=device,
                                 repeats=cfg.experts.latency_repeats)
        meta["experts"].append(spec.name)
        meta["expert_costs"][spec.name] = {"latency_ms": lat["median_ms"], "latency": lat,
                                           "flops": int(count_flops(model, input_shape=shape))}
        correct = arrays["test"]["expert_logits"][-1].argmax(1) == expanded["test"]["label"]
        meta["expert_accuracy"][spec.name] = _per_severity_accuracy(correct,
                                                                    expanded["test"]["severity"])
        meta["timings"][spec.name] = time.perf_counter() - t0
        print(f"[features] expert {spec.name}: test acc {meta['expert_accuracy'][spec.name]}, "
              f"{lat['median_ms']:.3f} ms, {meta['timings'][spec.name]:.1f} s")
    for s in arrays:
        arrays[s]["expert_logits"] = np.stack(arrays[s]["expert_logits"], 1).astype(np.float32)
    gater = G.Gater(len(specs), embed_dim=cfg.gater.embed_dim).to(device).eval()
    gshape = (1, 3, cfg.gater.gater_size, cfg.gater.gater_size)
    glat = measure_latency_ms(gater, input_shape=gshape, device=device,
                              repeats=cfg.experts.latency_repeats)
    meta["gater_cost"] = {"latency_ms": glat["median_ms"], "latency": glat,
                          "flops": int(count_flops(gater, input_shape=gshape))}
    meta["latency_method"] = glat.get("method", "")
    meta["classes"] = ncls
    return arrays, meta


def _build_exits(cfg, expanded, *, ncls: int, device):
    e, tr = cfg.exits, expanded["train"]
    size = e.input_size or cfg.data.image_size
    stem = e.stem if e.stem != "auto" else ("cifar" if size <= 64 else "imagenet")
    expanded = {s: {**x, "images": resize_uint8(x["images"], size)} for s, x in expanded.items()}
    t0 = time.perf_counter()
    keep = np.ones(len(tr["label"]), bool) if e.train_on_corrupted else tr["severity"] == 0
    model = mx.MultiExitResNet(ncls, stem=stem, width=e.width).to(device)
    with _bar("[features] train multi-exit backbone", e.epochs) as bar:
        tick = lambda epoch, m: bar.set_postfix(loss=f"{m['loss']:.3f}") or bar.update()
        model = mx.train_backbone(model, images=tr["images"][keep], labels=tr["label"][keep],
                                  epochs=e.epochs, lr=e.lr, batch_size=e.batch_size,
                                  seed=cfg.data.seed, augment=e.augment, device=device,
                                  progress=tick)
    feats = {s: mx.extract_exit_features(model, images=x["images"], batch_size=256, device=device)
             for s, x in expanded.items()}
    heads = mx.train_exit_heads(feats["train"], tr["label"], hidden=e.head_hidden,
                                epochs=e.head_epochs, lr=1e-3, batch_size=128, seed=cfg.data.seed,
                                num_classes=ncls, device=device)
    arrays = {}
    for s, x in expanded.items():
        arrays[s] = {**_columns(x), "exit_logits": mx.exit_logits(heads, feats[s], device=device)}
        arrays[s].update({f"exit_features_{k}": f for k, f in enumerate(feats[s])})
    flops = [int(f) for f in mx.exit_flops(model, image_size=size)]
    names = [f"exit{k + 1}" for k in range(len(flops))]
    pred = arrays["test"]["exit_logits"].argmax(-1)                          # [N,K]
    acc = {n: _per_severity_accuracy(pred[:, k] == expanded["test"]["label"],
                                     expanded["test"]["severity"]) for k, n in enumerate(names)}
    meta = {"exits": names, "exit_flops": flops, "exit_stem": stem, "exit_accuracy": acc,
            "exit_costs": {m: [float(c) for c in mx.exit_costs(flops, mode=m)]
                           for m in ("flops", "uniform")},
            "exit_timings": {"backbone_and_heads_s": time.perf_counter() - t0}}
    print(f"[features] exits: test acc {[round(acc[n]['all'], 4) for n in names]}, "
          f"cost {[round(c, 3) for c in meta['exit_costs']['flops']]}")
    return arrays, meta


def frozen_trunk(cfg):
    """THE frozen trunk of `gater.trunk: frozen` (trainers.gater.frozen_trunk): ImageNet
    weights with `gater.trunk_pretrained`, else the data seed's init."""
    with user_errors():
        state = G.pretrained_trunk_state() if cfg.gater.trunk_pretrained else None
    return G.frozen_trunk(seed=cfg.data.seed, state=state)


def _build_gater_trunk(cfg, expanded, *, ncls: int, device):
    """The frozen trunk's activations of every split's gater input: [N,h,w,128]."""
    trunk, dtype, t0 = frozen_trunk(cfg), cfg.gater.trunk_cache_dtype, time.perf_counter()
    with user_errors():
        arrays = {s: {**_columns(x), "trunk_features": G.trunk_features(
            trunk, resize_uint8(x["images"], cfg.gater.gater_size), dtype=dtype, device=device)}
            for s, x in expanded.items()}
    f = arrays["train"]["trunk_features"]
    meta = {"gater_trunk": {"sha256": G.trunk_state_sha256(trunk), "dtype": dtype,
                            "shape": list(f.shape[1:]), "bytes_per_sample": int(f[0].nbytes),
                            "pretrained": bool(cfg.gater.trunk_pretrained),
                            "build_s": time.perf_counter() - t0}}
    print(f"[features] frozen gater trunk: activations {'x'.join(map(str, f.shape[1:]))} "
          f"{dtype}, {f[0].nbytes} bytes per sample ({time.perf_counter() - t0:.1f} s)")
    return arrays, meta


# part name -> builder (cfg, expanded splits, *, ncls: the class count, device)
#   -> (arrays {split: {name: array}}, meta)
PARTS = {"experts": _build_experts, "exits": _build_exits, "gater_trunk": _build_gater_trunk}
