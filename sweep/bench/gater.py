"""Benchmark 1: gater training from the feature store vs the literal Algorithm 1.

Both trainers live in trainers/gater.py and compute the same losses for one seed; here they are
timed on the same machine, in float32 and with `gater.precision: bf16` (autocast on the gater),
at the paper's shape (224 px SqueezeNet 1.1 / MobileViT-S / DeiT-S/16, random weights, 96 px
gater with embed 128, batch 32) and at the tiny profile (digits' 48 px base, 16 px gater,
embed 64). The FLOP ratio from torch's flop counter is the ceiling: a cached step still runs
the gater forward + backward, Algorithm 1 runs that plus every expert's forward. The paper's
fixed trunk alone (forward + backward, no head) bounds what any head could reach.
"""
from __future__ import annotations

import dataclasses
import statistics
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from sweep.data.images import resize_uint8
from trainers import experts as zoo
from trainers import gater as G
from trainers.cost import count_flops
from trainers.frozen import freeze


@dataclasses.dataclass(frozen=True)
class Shape:
    profile: str        # expert registry profile (trainers/experts.py PROFILES)
    image_size: int     # base resolution S the images are stored at
    gater_size: int     # the gater's downsampled input g
    embed_dim: int
    classes: int
    batch_size: int
    alg1_steps: int     # Algorithm 1 batches per timed epoch
    cached_steps: int   # cached-trainer batches per timed epoch
    repeats: int        # timed epochs per trainer; the median is reported


def shapes(*, smoke: bool, cuda: bool) -> dict[str, Shape]:
    """Paper shape (configs/paper_gater_intel.yaml) and the tiny default; smoke: seconds."""
    paper = Shape("paper", 224, 96, 128, 6, 32, 1, 20, 3)
    tiny = Shape("tiny", 48, 16, 64, 10, 32, 8, 40, 3)
    if cuda:
        paper = dataclasses.replace(paper, alg1_steps=10, cached_steps=100, repeats=5)
        tiny = dataclasses.replace(tiny, alg1_steps=40, cached_steps=200, repeats=5)
    if smoke:   # paper shape at batch 4: same models and resolutions, a tenth of the work
        paper = dataclasses.replace(paper, batch_size=4, cached_steps=4, repeats=1)
        tiny = dataclasses.replace(tiny, alg1_steps=2, cached_steps=4, repeats=1)
    return {"paper": paper, "tiny": tiny}


def build_zoo(profile: str, *, classes: int, device: str):
    """(specs, frozen experts) of a profile with RANDOM weights (no download, same cost)."""
    specs = [dataclasses.replace(s, pretrained=False, checkpoint=None)
             for s in zoo.PROFILES[profile]]
    models = [freeze(zoo.build_expert(s, num_classes=classes, seed=i)).to(device)
              for i, s in enumerate(specs)]
    return specs, models


def synthetic_images(n: int, size: int, classes: int, seed: int = 0):
    """uint8 [n,size,size,3] whose mean colour depends on the label, and int64 labels [n]."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n).astype(np.int64)
    base = rng.integers(0, 256, (classes, 1, 1, 3))
    x = base[labels] * 0.5 + rng.integers(0, 128, (n, size, size, 3))
    return x.astype(np.uint8), labels


def sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _fresh(num_experts: int, embed_dim: int, device: str):
    """Same gater init, optimiser and Gumbel generator for both trainers (seed 0)."""
    torch.manual_seed(0)
    gater = G.Gater(num_experts, embed_dim=embed_dim).to(device)
    opt = torch.optim.Adam(gater.parameters(), lr=1e-4)
    return gater, opt, torch.Generator(device=device).manual_seed(0)


def _interleaved(epochs: dict, repeats: int, device: str) -> dict:
    """epochs {name: (fn, n_samples)}: run them in turn `repeats` times (ABAB..., so a noisy
    neighbour hits both alike); samples/s per run, their median, and per-round ratios."""
    rates = {k: [] for k in epochs}
    for _ in range(repeats):
        for k, (fn, n) in epochs.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            rates[k].append(n / (time.perf_counter() - t0))
    return {k: {"samples_per_s": statistics.median(r), "runs": r, "samples": epochs[k][1]}
            for k, r in rates.items()}


class _Arrays:
    """One shape's data on the device: a warm-up batch shared by both trainers (the
    equivalence check), Algorithm 1's images, and the store-like arrays of the cached one."""

    def __init__(self, sh: Shape, specs, models, device: str):
        n1 = sh.batch_size * sh.alg1_steps
        imgs, labels = synthetic_images(n1, sh.image_size, sh.classes)
        gin = resize_uint8(imgs, sh.gater_size)                           # as features.py does
        logits = np.stack([zoo.expert_logits(m, images=imgs, input_size=s.input_size,
                                             device=device) for s, m in zip(specs, models)], 1)
        t = lambda a: torch.as_tensor(a).to(device)
        self.images, self.gin, self.labels, self.logits = t(imgs), t(gin), t(labels), t(logits)
        # the cached trainer's store: the same rows tiled to cached_steps batches (its speed
        # does not depend on the values; computing real logits for them would cost hours)
        rows = t(np.resize(np.arange(n1), sh.batch_size * sh.cached_steps))
        self.store = (self.gin[rows], self.logits[rows], self.labels[rows])


def _expert_input(specs):
    return lambda i, u8: zoo.preprocess(u8, specs[i].input_size)


def _trainers(sh: Shape, specs, models, arr: _Arrays, costs, precision="fp32"):
    """-> (algorithm1(gater, opt, gen, rows), cached(gater, opt, gen, data)) epoch closures."""
    kw = dict(costs=costs, lam=0.8, tau=1.0, batch_size=sh.batch_size, precision=precision)

    def alg1(gater, opt, gen, rows=slice(None)):
        return G.train_epoch_algorithm1(
            gater, opt, models, images=arr.images[rows], gater_input=arr.gin[rows],
            labels=arr.labels[rows], expert_input=_expert_input(specs), generator=gen, **kw)

    def cached(gater, opt, gen, data):
        return G.train_epoch(gater, opt, data, generator=gen, **kw)
    return alg1, cached


def _trunk_only(sh: Shape, arr: _Arrays, device: str):
    """An epoch of forward + backward through the paper's fixed trunk alone (SqueezeNet 1.1
    features[:5]; no head, loss or optimiser) over the cached trainer's batches: the speed
    bound of ANY gater built on that trunk, whatever its head."""
    torch.manual_seed(0)
    trunk = G.Gater(arr.logits.shape[1], embed_dim=sh.embed_dim).trunk.to(device)
    gin = arr.store[0]

    def epoch():
        for i in range(0, len(gin), sh.batch_size):
            trunk(G.to_float_nchw(gin[i:i + sh.batch_size])).sum().backward()
    return epoch


def _gater_step_flops(sh: Shape, cached, arr: _Arrays, device: str) -> int:
    """FLOPs of ONE cached training step (gater forward + backward + loss), counted by torch."""
    gater, opt, gen = _fresh(arr.logits.shape[1], sh.embed_dim, device)
    b = slice(0, sh.batch_size)
    data = G.GaterData(arr.gin[b], arr.logits[b], arr.labels[b])
    with FlopCounterMode(display=False) as counter:
        cached(gater, opt, gen, data)
    return int(counter.get_total_flops())


def _pair(sh: Shape, specs, models, arr: _Arrays, costs, device: str, precision: str, log):
    """Both trainers at one precision, warmed up on the first batch from the same init and
    generator (their losses must agree) -> ({name: (epoch fn, samples)}, losses, cached)."""
    alg1, cached = _trainers(sh, specs, models, arr, costs, precision)
    b = slice(0, sh.batch_size)
    g1, o1, r1 = _fresh(len(specs), sh.embed_dim, device)
    loss_a1 = alg1(g1, o1, r1, b)["loss"]
    g2, o2, r2 = _fresh(len(specs), sh.embed_dim, device)
    loss_c = cached(g2, o2, r2, G.GaterData(arr.gin[b], arr.logits[b], arr.labels[b]))["loss"]
    log(f"[bench] {sh.profile} {precision}: warm-up losses alg1 {loss_a1:.6f} "
        f"cached {loss_c:.6f}")
    sfx = "" if precision == "fp32" else f"_{precision}"
    return ({f"algorithm1{sfx}": (lambda: alg1(g1, o1, r1), len(arr.labels)),
             f"cached{sfx}": (lambda: cached(g2, o2, r2, G.GaterData(*arr.store)),
                              len(arr.store[2]))}, (loss_a1, loss_c), cached)


def bench_shape(sh: Shape, *, device: str, log=print) -> dict:
    """Cached vs Algorithm 1 at one shape: samples/s (median of repeats), ratio, FLOP ceiling,
    the trunk-only bound, and the same pair with `gater.precision: bf16`."""
    specs, models = build_zoo(sh.profile, classes=sh.classes, device=device)
    arr = _Arrays(sh, specs, models, device)
    costs = torch.tensor([1.0, 3.0, 2.0], device=device)[:len(specs)]
    fp32, losses, cached = _pair(sh, specs, models, arr, costs, device, "fp32", log)
    bf16, losses16, _ = _pair(sh, specs, models, arr, costs, device, "bf16", log)
    t = _interleaved({**fp32, "trunk_only": (_trunk_only(sh, arr, device), len(arr.store[2])),
                      **bf16}, sh.repeats, device)
    a, c = t["algorithm1"], t["cached"]
    out = _summarise(sh, specs, models, a, c, _gater_step_flops(sh, cached, arr, device),
                     count_flops, losses)
    out["trunk_only"] = t["trunk_only"]
    out["trunk_only_bound"] = t["trunk_only"]["samples_per_s"] / a["samples_per_s"]
    a16, c16 = t["algorithm1_bf16"], t["cached_bf16"]
    out["bf16"] = {"algorithm1": a16, "cached": c16,
                   "speedup": c16["samples_per_s"] / a16["samples_per_s"],
                   "cached_vs_fp32_cached": c16["samples_per_s"] / c["samples_per_s"],
                   "warmup_loss": {"algorithm1": losses16[0], "cached": losses16[1],
                                   "match": bool(np.isclose(*losses16, rtol=1e-4))}}
    return out


def _summarise(sh, specs, models, a, c, step_flops, count_flops, losses) -> dict:
    expert_flops = {s.name: count_flops(m, input_shape=(1, 3, s.input_size, s.input_size))
                    for s, m in zip(specs, models)}
    cached_fps = step_flops / sh.batch_size                       # per sample
    alg1_fps = cached_fps + sum(expert_flops.values())
    speedup = c["samples_per_s"] / a["samples_per_s"]                # ratio of medians
    per_round = [x / y for x, y in zip(c["runs"], a["runs"])]
    flop_ratio = alg1_fps / cached_fps
    return {"shape": dataclasses.asdict(sh), "experts": [s.name for s in specs],
            "expert_input_sizes": [s.input_size for s in specs],
            "algorithm1": a, "cached": c, "speedup": speedup,
            "speedup_median_of_rounds": statistics.median(per_round),
            "flops_per_sample": {"cached_step": cached_fps, "algorithm1_step": alg1_fps,
                                 "experts_forward": expert_flops},
            "flop_ratio": flop_ratio, "share_of_flop_ceiling": speedup / flop_ratio,
            "achieved_gflops": {"cached": cached_fps * c["samples_per_s"] / 1e9,
                                "algorithm1": alg1_fps * a["samples_per_s"] / 1e9},
            "warmup_loss": {"algorithm1": losses[0], "cached": losses[1],
                            "match": bool(np.isclose(losses[0], losses[1], rtol=1e-4))}}


def run(*, smoke: bool, device: str, log=print) -> dict:
    out = {}
    for name, sh in shapes(smoke=smoke, cuda=device.startswith("cuda")).items():
        t0 = time.perf_counter()
        out[name] = bench_shape(sh, device=device, log=log)
        r = out[name]
        log(f"[bench] cached vs Algorithm 1 at {name}: {r['speedup']:.1f}x (FLOP ceiling "
            f"{r['flop_ratio']:.1f}x; the trunk alone {r['trunk_only_bound']:.1f}x; "
            f"gater.precision bf16 {r['bf16']['speedup']:.1f}x), "
            f"{time.perf_counter() - t0:.0f} s")
    return out
