"""Benchmark 1: gater training from the feature store vs the literal Algorithm 1.

Both trainers live in trainers/gater.py and compute the same losses for one seed; here they are
timed on the same machine, in float32 and with `gater.precision: bf16`, at the paper's shape
(224 px SqueezeNet 1.1 / MobileViT-S / DeiT-S/16, random weights, 96 px gater with embed 128,
batch 32) and at the tiny profile (digits' 48 px base, 16 px gater, embed 64). In the bf16 pair
Algorithm 1's frozen experts run under the same bf16 autocast as the gater (the trainer's own
`precision` covers the gater only): every network a bf16 trainer runs, runs in bf16 (the cached
one reads the store's float32 logits, as in a sweep).

`gater.trunk: frozen` (the frozen-trunk trainer: the shared trunk's activations cached, fp16,
only the tail trains) is timed against both, with its memory per sample against the cached
store's.

The FLOP ratio (torch's flop counter, per sample: Algorithm 1's step over the cached step) is a
ratio, not a bound: speedup / FLOP ratio = cached GFLOP/s / Algorithm 1 GFLOP/s, so a row
exceeds it whenever the cached step runs nearer the machine's peak than Algorithm 1's does
(a bf16 row can). Each path's achieved GFLOP/s is reported beside its speed. The paper's
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
        # gater.trunk: frozen: the shared trunk's activations of the same rows, as the store
        # caches them (fp16 [n,h,w,128]); the frozen trainer reads them in the images' place
        self.trunk = G.frozen_trunk(seed=0).to(device)
        feats = t(G.trunk_features(self.trunk, gin, dtype=FROZEN_DTYPE, device=device))
        self.frozen_store = (feats[rows], self.logits[rows], self.labels[rows])
        self.bytes_per_sample = {"trained": gin[0].nbytes + logits[0].nbytes + 8,
                                 "frozen": feats[0].nbytes + logits[0].nbytes + 8}


FROZEN_DTYPE = "fp16"        # the frozen trunk's cache dtype timed (gater.trunk_cache_dtype)


def _frozen(sh: Shape, arr: _Arrays, costs, device: str, log):
    """The frozen-trunk trainer (`gater.trunk: frozen`): the same gater init with the shared
    trunk frozen, trained on the cached activations. Its first-batch loss (computed before any
    update) equals the cached trainer's up to the fp16 cache's rounding ->
    ((epoch fn, samples), one-batch epoch fn (FLOP count), warm-up loss)."""
    def trainer(data: G.GaterData):
        gater, _, gen = _fresh(len(costs), sh.embed_dim, device)
        gater.trunk.load_state_dict(arr.trunk.state_dict())
        opt = torch.optim.Adam([p for p in gater.freeze_trunk().parameters()
                                if p.requires_grad], lr=1e-4)
        return lambda: G.train_epoch(gater, opt, data, costs=costs, lam=0.8, tau=1.0,
                                     batch_size=sh.batch_size, generator=gen)
    first = G.GaterData(*(a[:sh.batch_size] for a in arr.frozen_store))
    warm = trainer(first)()["loss"]
    log(f"[bench] {sh.profile} frozen trunk ({FROZEN_DTYPE} cache): warm-up loss {warm:.6f}")
    return ((trainer(G.GaterData(*arr.frozen_store)), len(arr.frozen_store[2])),
            trainer(first), warm)


def _expert_input(specs):
    return lambda i, u8: zoo.preprocess(u8, specs[i].input_size)


# Warm-up check: |loss_alg1 - loss_cached| <= rtol * |loss_cached|. fp32: both trainers do
# the same arithmetic, only the order of sums can differ. bf16: Algorithm 1's experts run in
# bf16 (8-bit significand: ~4e-3 relative rounding per value) while the store holds fp32
# logits, so the losses differ by the cross-entropy's response to that rounding; 2e-2 is the
# relative tolerance bf16 training gets against fp32 in tests/test_gater.py.
WARMUP_RTOL = {"fp32": 1e-4, "bf16": 2e-2}


def _autocast_expert(expert, device_type: str):
    """expert under bf16 autocast, as `_step` runs the gater: float [B,3,s,s] -> float32 [B,C]
    (cast back, as `_step` casts the routing logits, so the loss stays float32)."""
    def forward(x):
        with torch.autocast(device_type, dtype=torch.bfloat16):
            return expert(x).float()
    return forward


def _experts_at(models, precision: str, device_type: str) -> list:
    """The experts Algorithm 1 runs at `precision`: as they are in fp32, each under bf16
    autocast in bf16 (why: the module docstring)."""
    if precision == "fp32":
        return list(models)
    return [_autocast_expert(m, device_type) for m in models]


def _trainers(sh: Shape, specs, models, arr: _Arrays, costs, precision="fp32"):
    """-> (algorithm1(gater, opt, gen, rows), cached(gater, opt, gen, data)) epoch closures."""
    kw = dict(costs=costs, lam=0.8, tau=1.0, batch_size=sh.batch_size, precision=precision)
    experts = _experts_at(models, precision, arr.images.device.type)

    def alg1(gater, opt, gen, rows=slice(None)):
        return G.train_epoch_algorithm1(
            gater, opt, experts, images=arr.images[rows], gater_input=arr.gin[rows],
            labels=arr.labels[rows], expert_input=_expert_input(specs), generator=gen, **kw)

    def cached(gater, opt, gen, data):
        return G.train_epoch(gater, opt, data, generator=gen, **kw)
    return alg1, cached


def _trunk_only(sh: Shape, arr: _Arrays, device: str):
    """Forward + backward through the paper's fixed trunk alone (SqueezeNet 1.1 features[:5];
    no head, loss or optimiser) over the cached trainer's batches: the speed bound of ANY
    gater built on that trunk, whatever its head. -> (epoch fn, step(u8 [B,g,g,3]) fn)."""
    torch.manual_seed(0)
    trunk = G.Gater(arr.logits.shape[1], embed_dim=sh.embed_dim).trunk.to(device)
    gin = arr.store[0]

    def step(u8):
        trunk(G.to_float_nchw(u8)).sum().backward()                  # [B,128,h,w] -> scalar

    def epoch():
        for i in range(0, len(gin), sh.batch_size):
            step(gin[i:i + sh.batch_size])
    return epoch, step


def _count(fn) -> int:
    """FLOPs torch's flop counter sees while fn() runs. It counts from shapes, not dtypes: a
    bf16 step has the same count as its fp32 twin."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _gater_step_flops(sh: Shape, cached, arr: _Arrays, device: str) -> int:
    """FLOPs of ONE cached training step (gater forward + backward + loss), counted by torch."""
    gater, opt, gen = _fresh(arr.logits.shape[1], sh.embed_dim, device)
    b = slice(0, sh.batch_size)
    data = G.GaterData(arr.gin[b], arr.logits[b], arr.labels[b])
    return _count(lambda: cached(gater, opt, gen, data))


def _flops_per_sample(sh: Shape, specs, models, *, gater_step: int, trunk_step: int,
                      count_flops) -> dict:
    """Per-sample FLOPs of each timed path from one batch's counts: the cached step, Algorithm
    1's (the same plus every expert's forward) and the trunk's; count_flops(model, input_shape)
    counts one expert forward (trainers/cost.py)."""
    experts = {s.name: count_flops(m, input_shape=(1, 3, s.input_size, s.input_size))
               for s, m in zip(specs, models)}
    cached = gater_step / sh.batch_size
    return {"cached_step": cached, "algorithm1_step": cached + sum(experts.values()),
            "trunk_only_step": trunk_step / sh.batch_size, "experts_forward": experts}


def _achieved_gflops(fps: float, timing: dict) -> float:
    """FLOPs per sample x median samples/s, in GFLOP/s."""
    return fps * timing["samples_per_s"] / 1e9


def _warmup_check(losses, precision: str) -> dict:
    """The two trainers' first-batch losses from the same state, their gap, and whether it is
    within WARMUP_RTOL[precision]."""
    a1, c = losses
    return {"algorithm1": a1, "cached": c, "abs_diff": abs(a1 - c),
            "rtol": WARMUP_RTOL[precision],
            "match": bool(np.isclose(a1, c, rtol=WARMUP_RTOL[precision], atol=0))}


def _pair(sh: Shape, specs, models, arr: _Arrays, costs, device: str, precision: str, log):
    """Both trainers at one precision, warmed up on the first batch from the same init and
    generator (their losses must agree within WARMUP_RTOL) -> ({name: (epoch fn, samples)},
    warm-up check, cached)."""
    alg1, cached = _trainers(sh, specs, models, arr, costs, precision)
    b = slice(0, sh.batch_size)
    g1, o1, r1 = _fresh(len(specs), sh.embed_dim, device)
    loss_a1 = alg1(g1, o1, r1, b)["loss"]
    g2, o2, r2 = _fresh(len(specs), sh.embed_dim, device)
    loss_c = cached(g2, o2, r2, G.GaterData(arr.gin[b], arr.logits[b], arr.labels[b]))["loss"]
    check = _warmup_check((loss_a1, loss_c), precision)
    log(f"[bench] {sh.profile} {precision}: warm-up losses alg1 {loss_a1:.6f} "
        f"cached {loss_c:.6f} (abs diff {check['abs_diff']:.2e}, rtol {check['rtol']:g})")
    sfx = "" if precision == "fp32" else f"_{precision}"
    return ({f"algorithm1{sfx}": (lambda: alg1(g1, o1, r1), len(arr.labels)),
             f"cached{sfx}": (lambda: cached(g2, o2, r2, G.GaterData(*arr.store)),
                              len(arr.store[2]))}, check, cached)


def bench_shape(sh: Shape, *, device: str, log=print) -> dict:
    """Cached vs Algorithm 1 at one shape: samples/s (median of repeats), ratio, FLOP ratio,
    GFLOP/s, the trunk-only bound, and the same pair with `gater.precision: bf16`."""
    specs, models = build_zoo(sh.profile, classes=sh.classes, device=device)
    arr = _Arrays(sh, specs, models, device)
    costs = torch.tensor([1.0, 3.0, 2.0], device=device)[:len(specs)]
    fp32, warm, cached = _pair(sh, specs, models, arr, costs, device, "fp32", log)
    bf16, warm16, _ = _pair(sh, specs, models, arr, costs, device, "bf16", log)
    trunk_epoch, trunk_step = _trunk_only(sh, arr, device)
    frozen_epoch, frozen_step, frozen_warm = _frozen(sh, arr, costs, device, log)
    t = _interleaved({**fp32, "trunk_only": (trunk_epoch, len(arr.store[2])), **bf16,
                      "frozen": frozen_epoch}, sh.repeats, device)
    fps = _flops_per_sample(
        sh, specs, models, gater_step=_gater_step_flops(sh, cached, arr, device),
        trunk_step=_count(lambda: trunk_step(arr.store[0][:sh.batch_size])),
        count_flops=count_flops)
    fps["frozen_step"] = _count(frozen_step) / sh.batch_size
    out = _summarise(sh, specs, t, fps, {"fp32": warm, "bf16": warm16})
    out["frozen"] = _frozen_summary(t, fps, arr, warm=frozen_warm, cached_warm=warm["cached"])
    return out


def _frozen_summary(t: dict, fps: dict, arr: _Arrays, *, warm: float, cached_warm: float):
    """The frozen-trunk row: speed, vs Algorithm 1 and vs the cached (trained-trunk) trainer,
    FLOP ratio against Algorithm 1, GFLOP/s, memory per sample against the cached store's."""
    f, a, c = t["frozen"], t["algorithm1"], t["cached"]
    return {**f, "speedup": f["samples_per_s"] / a["samples_per_s"],
            "vs_cached": f["samples_per_s"] / c["samples_per_s"],
            "flop_ratio": fps["algorithm1_step"] / fps["frozen_step"],
            "achieved_gflops": _achieved_gflops(fps["frozen_step"], f),
            "cache_dtype": FROZEN_DTYPE, "bytes_per_sample": arr.bytes_per_sample,
            "memory_vs_cached": arr.bytes_per_sample["frozen"] / arr.bytes_per_sample["trained"],
            "warmup_loss": {"frozen": warm, "cached": cached_warm, "abs_diff": abs(warm -
                                                                                  cached_warm)}}


def _summarise(sh: Shape, specs, t: dict, fps: dict, warmup: dict) -> dict:
    """One shape's result. t: `_interleaved`'s timings (algorithm1, cached, trunk_only,
    algorithm1_bf16, cached_bf16); fps: `_flops_per_sample`; warmup {precision: _warmup_check}."""
    a, c, trunk = t["algorithm1"], t["cached"], t["trunk_only"]
    a16, c16 = t["algorithm1_bf16"], t["cached_bf16"]
    speedup = c["samples_per_s"] / a["samples_per_s"]                # ratio of medians
    per_round = [x / y for x, y in zip(c["runs"], a["runs"])]
    flop_ratio = fps["algorithm1_step"] / fps["cached_step"]
    return {"shape": dataclasses.asdict(sh), "experts": [s.name for s in specs],
            "expert_input_sizes": [s.input_size for s in specs],
            "algorithm1": a, "cached": c, "speedup": speedup,
            "speedup_median_of_rounds": statistics.median(per_round),
            "flops_per_sample": fps,
            # share = cached GFLOP/s / Algorithm 1 GFLOP/s (module docstring): not capped at 1
            "flop_ratio": flop_ratio, "share_of_flop_ratio": speedup / flop_ratio,
            "achieved_gflops": {"cached": _achieved_gflops(fps["cached_step"], c),
                                "algorithm1": _achieved_gflops(fps["algorithm1_step"], a),
                                "trunk_only": _achieved_gflops(fps["trunk_only_step"], trunk)},
            "warmup_loss": warmup["fp32"],
            "trunk_only": trunk,
            "trunk_only_bound": trunk["samples_per_s"] / a["samples_per_s"],
            "bf16": {"algorithm1": a16, "cached": c16,
                     "speedup": c16["samples_per_s"] / a16["samples_per_s"],
                     "cached_vs_fp32_cached": c16["samples_per_s"] / c["samples_per_s"],
                     # the fp32 FLOP counts: bf16 changes the dtype, not the work (`_count`)
                     "achieved_gflops": {
                         "cached": _achieved_gflops(fps["cached_step"], c16),
                         "algorithm1": _achieved_gflops(fps["algorithm1_step"], a16)},
                     "warmup_loss": warmup["bf16"]}}


def run(*, smoke: bool, device: str, log=print) -> dict:
    out = {}
    for name, sh in shapes(smoke=smoke, cuda=device.startswith("cuda")).items():
        t0 = time.perf_counter()
        out[name] = bench_shape(sh, device=device, log=log)
        r = out[name]
        log(f"[bench] cached vs Algorithm 1 at {name}: {r['speedup']:.1f}x (FLOP ratio "
            f"{r['flop_ratio']:.1f}x; the trunk alone {r['trunk_only_bound']:.1f}x; "
            f"gater.precision bf16 {r['bf16']['speedup']:.1f}x; frozen trunk "
            f"{r['frozen']['speedup']:.1f}x), "
            f"{time.perf_counter() - t0:.0f} s")
    return out
