"""Benchmark 5: routed inference at batch 1 and gater trials packed on one GPU.

* Batch-1 overhead: the gater's latency as a share of the cheapest expert's (the paper: 0.82 ms
  vs 2.14 ms = 38 %), measured like the run's costs (trainers/cost.py), eager and -- on CUDA --
  replayed from CUDA graphs (one launch instead of one per layer; batch-1 work is launch-bound).
* Routed inference for real: per sample the gater runs, its argmax is read on the host, and
  ONLY the chosen expert runs; its wall time vs the accounting T_gater + C_i the run reports.
* Packing (CUDA only): k gater trials (cached trainer, paper shape) at once on one GPU, k = 1, 2,
  4, 8, as plain processes (what Ray's fractional `gpus_per_trial: 1/k` places; Ray is not
  needed on the device) -> trials/hour and its ratio to k = 1.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import time

import numpy as np
import torch
import torch.nn as nn

from sweep.bench.features import PROFILE_DATA
from sweep.bench.gater import build_zoo, sync, synthetic_images
from sweep.data.images import resize_uint8
from trainers import experts as zoo
from trainers import gater as G
from trainers.cost import measure_latency_ms


class Graphed(nn.Module):
    """A batch-1 module replayed from a CUDA graph: copy into a static input, replay, return
    the static output (valid until the next call)."""

    def __init__(self, model: nn.Module, example: torch.Tensor):
        super().__init__()
        self.model, self.x = model.eval(), example.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(3):                       # warm-up outside the graph (cuDNN, alloc)
                model(self.x)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(self.graph):
            self.y = model(self.x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.x.copy_(x)
        self.graph.replay()
        return self.y


def _models(profile: str, device: str):
    size, gsize, classes = PROFILE_DATA[profile]
    specs, experts = build_zoo(profile, classes=classes, device=device)
    torch.manual_seed(0)
    gater = G.Gater(len(specs), embed_dim=128 if profile == "paper" else 64).to(device).eval()
    return specs, experts, gater, (size, gsize, classes)


def _inputs(specs, n: int, size: int, gsize: int, classes: int, device: str):
    """Batch-1 inputs of n samples: gater [n,1,3,g,g] and per expert [n,1,3,s,s], on device."""
    imgs, _ = synthetic_images(n, size, classes, seed=1)
    g = G.to_float_nchw(torch.from_numpy(resize_uint8(imgs, gsize))).to(device)
    ex = [zoo.preprocess(torch.from_numpy(imgs), s.input_size).to(device) for s in specs]
    return g.unsqueeze(1), [x.unsqueeze(1) for x in ex]


def _latencies(gater, experts, specs, gsize, device, repeats) -> dict:
    lat = lambda m, s: measure_latency_ms(m, input_shape=(1, 3, s, s), device=device,
                                          repeats=repeats)["median_ms"]
    return {"gater_ms": lat(gater, gsize),
            "expert_ms": [lat(m, s.input_size) for m, s in zip(experts, specs)]}


@torch.no_grad()
def _routed(gater, experts, gx, ex, device) -> tuple[list[float], list[int]]:
    """Per sample: gater -> argmax on the host -> only that expert. ms per sample, choices."""
    times, picks = [], []
    for i in range(len(gx)):
        sync(device)
        t0 = time.perf_counter()
        k = int(gater(gx[i]).argmax(-1))             # .item(): the host waits for the gater
        experts[k](ex[k][i])
        sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
        picks.append(k)
    return times, picks


def routed_inference(profile: str, *, device: str, n: int, repeats: int, graphs: bool,
                     log=print) -> dict:
    specs, experts, gater, (size, gsize, classes) = _models(profile, device)
    gx, ex = _inputs(specs, n, size, gsize, classes, device)
    if graphs:
        gater = Graphed(gater, gx[0])
        experts = [Graphed(m, x[0]) for m, x in zip(experts, ex)]
    lat = _latencies(gater, experts, specs, gsize, device, repeats)
    _routed(gater, experts, gx[:3], [x[:3] for x in ex], device)               # warm-up
    times, picks = _routed(gater, experts, gx, ex, device)
    accounted = [lat["gater_ms"] + lat["expert_ms"][k] for k in picks]
    cheapest = min(lat["expert_ms"])
    out = {"mode": "cuda_graphs" if graphs else "eager", **lat,
           "gater_share_of_cheapest_expert": lat["gater_ms"] / cheapest,
           "route_counts": np.bincount(picks, minlength=len(specs)).tolist(),
           "real_ms_median": statistics.median(times), "real_ms_mean": float(np.mean(times)),
           "accounted_ms_median": statistics.median(accounted),
           "accounted_ms_mean": float(np.mean(accounted)),
           "real_over_accounted": float(np.mean(times) / np.mean(accounted))}
    log(f"[bench] routed ({profile}, {out['mode']}, {device}): gater {lat['gater_ms']:.3f} ms "
        f"= {out['gater_share_of_cheapest_expert']:.0%} of the cheapest expert; real "
        f"{out['real_ms_mean']:.3f} ms vs accounted {out['accounted_ms_mean']:.3f} ms/sample")
    return out


# ---------------------------------------------------------------- packing (CUDA)
def _pack_worker(k: int, barrier, queue, n: int, epochs: int, dev: str) -> None:
    """One gater trial at the paper shape: data moved to `dev` once, then `epochs` epochs."""
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // k))
    imgs, labels = synthetic_images(n, 96, 6, seed=2)
    data = G.GaterData(torch.as_tensor(imgs).to(dev), torch.randn(n, 3, 6, device=dev),
                       torch.as_tensor(labels).to(dev))
    torch.manual_seed(0)
    gater = G.Gater(3, embed_dim=128).to(dev)
    opt = torch.optim.Adam(gater.parameters(), lr=1e-4)
    gen = torch.Generator(device=dev).manual_seed(0)
    costs = torch.tensor([2.14, 10.59, 7.56], device=dev)
    step = lambda d: G.train_epoch(gater, opt, d, costs=costs, lam=0.8, tau=1.0, generator=gen)
    step(G.GaterData(data.gater_input[:64], data.expert_logits[:64], data.labels[:64]))
    sync(dev)
    barrier.wait(timeout=120)                        # all k start together
    t0 = time.time()
    for _ in range(epochs):
        step(data)
    sync(dev)
    queue.put((t0, time.time()))


def _pack(k: int, n: int, epochs: int, device: str) -> dict:
    ctx = mp.get_context("spawn")                    # CUDA cannot be forked
    barrier, queue = ctx.Barrier(k), ctx.Queue()
    procs = [ctx.Process(target=_pack_worker, args=(k, barrier, queue, n, epochs, device))
             for _ in range(k)]
    for p in procs:
        p.start()
    spans = [queue.get(timeout=300) for _ in procs]  # a crashed worker: Empty, not a hang
    for p in procs:
        p.join()
    wall = max(e for _, e in spans) - min(s for s, _ in spans)
    return {"k": k, "wall_s": wall, "trials_per_hour": k * 3600 / wall,
            "samples_per_s": k * n * epochs / wall}


def packing(*, smoke: bool, device: str = "cuda", log=print) -> dict:
    ks, n, epochs = ((1, 2), 256, 1) if smoke else ((1, 2, 4, 8), 4096, 3)
    rows = [_pack(k, n, epochs, device) for k in ks]
    base = rows[0]["trials_per_hour"]
    for r in rows:
        r["vs_one"] = r["trials_per_hour"] / base
        log(f"[bench] packing {r['k']} trials/GPU: {r['trials_per_hour']:.0f} trials/h "
            f"({r['vs_one']:.2f}x of one)")
    return {"trial": {"samples": n, "epochs": epochs, "shape": "paper (96 px, embed 128, "
                      "batch 32)"}, "rows": rows}


def run(profile: str, *, device: str, smoke: bool, log=print) -> dict:
    cuda = device.startswith("cuda")
    n, repeats = (8, 5) if smoke else (200, 50)
    out = {"available": cuda, "profile": profile,
           "eager": routed_inference(profile, device=device, n=n, repeats=repeats,
                                     graphs=False, log=log)}
    if not cuda:
        out["note"] = ("no CUDA device here: GPU packing and CUDA graphs not measured; the "
                       "batch-1 and routed numbers above are this CPU's")
        return out
    for key, fn in (("cuda_graphs", lambda: routed_inference(
            profile, device=device, n=n, repeats=repeats, graphs=True, log=log)),
                    ("packing", lambda: packing(smoke=smoke, device=device, log=log))):
        try:                      # one failing part (e.g. a graph capture) keeps the other
            out[key] = fn()
        except Exception as e:    # noqa: BLE001 -- recorded in the JSON, the bench goes on
            out[f"{key}_error"] = f"{type(e).__name__}: {e}"
            log(f"[bench] {key} failed: {out[f'{key}_error']}")
    return out
