"""The latency-aware Gumbel-Softmax gater (METHODS.md A) and its two trainers.

* `train_epoch` / `evaluate` work from CACHED expert logits (the feature store): the maths of
  "train dense" (every expert's logits on every sample) without running a single expert.
* `train_epoch_algorithm1` is the paper's literal Algorithm 1: the frozen experts run on every
  batch. Same loss, same generator consumption, so for one seed both give the same losses
  (tests/test_gater.py); `python -m sweep.bench` times one against the other.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import squeezenet1_1

from trainers.experts import ExpertSpec, build_expert, normalize
from trainers.layout import memory_format_for

# L = lam * L_class + (1 - lam) * L_lat: lam weighs the classification term, so it lies in
# [0, 1] (1 ignores cost). tau, the Gumbel-Softmax temperature, is > 0.
LAM_RANGE = (0.0, 1.0)


def to_float_nchw(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [B,H,W,3] -> float [B,3,H,W] with the ImageNet normalisation of the experts (the
    trunk is SqueezeNet 1.1's) and channels-last strides (the permuted view keeps them): the
    Gater's memory_format, so its forward converts nothing."""
    return normalize(images_u8.permute(0, 3, 1, 2).float().div_(255.0))


class Gater(nn.Module):
    """SqueezeNet 1.1 features[:5] -> conv stride 2 + ReLU -> global avg pool -> Linear(d, E).

    features[:5] = conv3x3/2 (64) -> ReLU -> maxpool -> Fire(64->128) -> Fire(128->128).
    trunk_state: that trunk's weights (e.g. `pretrained_trunk_state()`), else random init.
    Runs channels-last (`self.memory_format`, trainers/layout.py): on a 1-thread AVX2 CPU its
    training is 1.3x (tiny) to 1.5x (paper shape) faster than in NCHW, and it has no strided
    1x1 conv, so oneDNN's channels-last heap overflow cannot occur.
    """

    def __init__(self, num_experts: int, *, embed_dim: int = 128, trunk_state: dict | None = None):
        super().__init__()
        self.trunk = squeezenet1_1(weights=None).features[:5]                # [B,128,h,w]
        self.down = nn.Sequential(nn.Conv2d(128, embed_dim, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(embed_dim, num_experts)
        if trunk_state is not None:
            self.trunk.load_state_dict({k: torch.as_tensor(np.asarray(v))
                                        for k, v in trunk_state.items()})
        self.memory_format = memory_format_for(self)       # channels_last; not saved

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x float [B,3,g,g] -> routing logits l [B,E]."""
        x = x.contiguous(memory_format=self.memory_format)  # a no-op for to_float_nchw's output
        return self.tail(self.trunk(x))

    def tail(self, h: torch.Tensor) -> torch.Tensor:
        """The layers after the trunk: trunk activations h [B,128,h,w] -> routing logits [B,E]."""
        h = h.contiguous(memory_format=self.memory_format)
        return self.head(self.down(h).mean(dim=(2, 3)))                       # [B,d] -> [B,E]

    def route_logits(self, batch: torch.Tensor) -> torch.Tensor:
        """What a trainer feeds: uint8 images [B,g,g,3] run the whole gater; cached activations
        of a FROZEN trunk [B,h,w,128] (float16 / float32, `trunk_features`; channels last like
        the images, so the permuted view is already the tail's layout and `.float()`, which
        keeps strides, is the one copy) only its tail."""
        if batch.dtype == torch.uint8:
            return self(to_float_nchw(batch))
        return self.tail(batch.permute(0, 3, 1, 2).float())

    def freeze_trunk(self) -> "Gater":
        """gater.trunk: frozen: the trunk keeps its weights (no gradient, no optimiser state)."""
        self.trunk.requires_grad_(False)
        return self


def trunk_state_sha256(trunk: nn.Module) -> str:
    """Hash of a trunk's weights (names, shapes, float32 bytes): the frozen trunk's cache key."""
    h = hashlib.sha256()
    for k, v in sorted(trunk.state_dict().items()):
        h.update(f"{k}{tuple(v.shape)}".encode())
        h.update(v.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def frozen_trunk(*, seed: int, state: dict | None = None) -> nn.Module:
    """The ONE trunk every frozen-trunk trial shares: `state` (e.g. the ImageNet weights), else
    the init of torch.manual_seed(seed) (the data seed: trials differ in their tail only)."""
    torch.manual_seed(seed)
    return Gater(1, embed_dim=1, trunk_state=state).trunk.eval().requires_grad_(False)


TRUNK_DTYPES = {"fp16": np.float16, "fp32": np.float32}


@torch.no_grad()
def trunk_features(trunk: nn.Module, gater_input, *, dtype="fp16", device="cpu",
                   batch_size=256) -> np.ndarray:
    """Activations of a frozen trunk, [N,h,w,128] in `dtype` (channels last, as numpy: the
    store's copy), from uint8 gater input [N,g,g,3]. ValueError if fp16 would overflow
    (post-ReLU: never in practice; checked rather than silently infinite)."""
    trunk = trunk.to(device).eval()
    out = [trunk(to_float_nchw(torch.as_tensor(np.asarray(gater_input[i:i + batch_size]))
                               .to(device))).permute(0, 2, 3, 1).float().contiguous().cpu()
           .numpy() for i in range(0, len(gater_input), batch_size)]          # [b,h,w,128]
    feats = np.concatenate(out) if out else np.zeros((0, 1, 1, 128), np.float32)
    if dtype == "fp16" and feats.size and np.abs(feats).max() > np.finfo(np.float16).max:
        raise ValueError("gater.trunk_cache_dtype: fp16 overflows on these trunk activations "
                         f"(max {np.abs(feats).max():.3g}); use fp32")
    return feats.astype(TRUNK_DTYPES[dtype])


@functools.lru_cache(maxsize=1)
def pretrained_trunk_state() -> dict[str, np.ndarray]:
    """ImageNet SqueezeNet 1.1 features[:5] weights (torch hub cache, else a download) as
    numpy arrays: loaded once by the driver (preflight checks, the store ships the same
    arrays to every trial). ValueError when they can be neither read nor downloaded."""
    spec = ExpertSpec(name="gater trunk", arch="torchvision:squeezenet1_1", pretrained=True)
    try:
        model = build_expert(spec, num_classes=2)
    except ValueError:
        raise ValueError("gater.trunk_pretrained: the SqueezeNet 1.1 ImageNet weights are not "
                         "in torch's hub cache and cannot be downloaded; put "
                         "squeezenet1_1-b8a52dc0.pth in $TORCH_HOME/hub/checkpoints or set "
                         "gater.trunk_pretrained: false") from None
    return {k: v.numpy() for k, v in model.features[:5].state_dict().items()}


def gumbel_softmax_st(logits: torch.Tensor, *, tau: float, generator: torch.Generator):
    """Straight-through Gumbel-Softmax. Returns (z, y_soft), both [B,E].

    z = y_hard - y_soft.detach() + y_soft: one-hot forward, gradient of the soft sample.
    Noise comes from `generator` so a seed fixes every route.
    """
    u = torch.rand(logits.shape, generator=generator, device=logits.device)
    gumbel = -torch.log((-torch.log(u.clamp_min(1e-10))).clamp_min(1e-10))
    y_soft = F.softmax((logits + gumbel) / tau, dim=-1)
    # one-hot by scatter: F.one_hot validates its indices on the host (a GPU sync per step)
    y_hard = torch.zeros_like(y_soft).scatter_(-1, y_soft.argmax(-1, keepdim=True), 1.0)
    return y_hard - y_soft.detach() + y_soft, y_soft


def latency_term(*, y_soft: torch.Tensor, costs: torch.Tensor) -> torch.Tensor:
    """L_lat = mean_batch((sum_i y_soft_i C_i - min C) / (max C - min C)); y_soft [B,E], C [E]."""
    span = (costs.max() - costs.min()).clamp_min(1e-12)
    return ((y_soft @ costs - costs.min()) / span).mean()


def composite_loss(*, z, y_soft, expert_logits, labels, costs, lam: float, ce_scale: float = 3.0):
    """L = lam * CE(sum_i z_i yhat_i, y) / ce_scale + (1 - lam) * L_lat.

    z, y_soft [B,E]; expert_logits [B,E,C]; labels [B]; costs [E]. Returns (L, L_class, L_lat).
    """
    mixed = torch.einsum("be,bec->bc", z, expert_logits)                     # [B,C]
    l_class = F.cross_entropy(mixed, labels) / ce_scale
    l_lat = latency_term(y_soft=y_soft, costs=costs)
    return lam * l_class + (1 - lam) * l_lat, l_class, l_lat


@dataclass
class GaterData:
    """Tensors of one split as the trainers read them (views on the store, no copies)."""
    gater_input: torch.Tensor      # uint8 [N,g,g,3], or a frozen trunk's float [N,h,w,128]
    expert_logits: torch.Tensor    # float32 [N,E,C]
    labels: torch.Tensor           # int64 [N]

    @classmethod
    def from_store(cls, split: dict, device="cpu", *, inputs="gater_input") -> "GaterData":
        """inputs: the array the gater reads, "gater_input" (images) or "trunk_features" (a
        frozen trunk's cached activations)."""
        t = lambda a: torch.as_tensor(np.asarray(a)).to(device)
        return cls(t(split[inputs]), t(split["expert_logits"]), t(split["label"]))


def _batches(n: int, batch_size: int, generator: torch.Generator):
    perm = torch.randperm(n, generator=generator, device=generator.device)
    return [perm[i:i + batch_size] for i in range(0, n, batch_size)]


PRECISIONS = ("fp32", "bf16")


def _step(gater, opt, x, logits_fn, labels, *, costs, lam, tau, ce_scale, generator,
          precision="fp32"):
    """One optimiser step. Returns the detached (L, L_class, L_lat) as a device tensor [3]:
    no .item() here, so a GPU step never waits for the host (checked once per epoch).

    precision "bf16": the gater's forward (and so its backward) runs under bfloat16 autocast
    (tensor cores on GPU, AMX on recent Xeons); weights, Adam and the loss stay float32."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        routing_logits = gater.route_logits(x)                                # [B,E]
    z, y_soft = gumbel_softmax_st(routing_logits.float(), tau=tau, generator=generator)
    loss, l_class, l_lat = composite_loss(z=z, y_soft=y_soft, expert_logits=logits_fn(),
                                          labels=labels, costs=costs, lam=lam, ce_scale=ce_scale)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return torch.stack([loss, l_class, l_lat]).detach()


def _mean_metrics(rows: list[torch.Tensor], *, lam, tau) -> dict:
    """rows: one [3] tensor a step -> epoch means, after ONE host sync. A non-finite loss in
    any step raises FloatingPointError (the trial then ends as failed, with this reason)."""
    a = torch.stack(rows).double().cpu().numpy()                              # [steps,3]
    bad = np.flatnonzero(~np.isfinite(a[:, 0]))
    if len(bad):
        raise FloatingPointError(f"non-finite gater loss {a[bad[0], 0]} at step {bad[0]} "
                                 f"(lam={lam}, tau={tau})")
    return {"loss": float(a[:, 0].mean()), "loss_class": float(a[:, 1].mean()),
            "loss_latency": float(a[:, 2].mean())}


def train_epoch(gater, opt, data: GaterData, *, costs, lam, tau, batch_size=32, ce_scale=3.0,
                generator: torch.Generator, precision: str = "fp32") -> dict:
    """One epoch on cached expert logits. Returns mean loss terms."""
    gater.train()
    rows = []
    for idx in _batches(len(data.labels), batch_size, generator):
        idx_d = idx.to(data.labels.device)
        x = data.gater_input[idx_d]               # uint8 images, or a frozen trunk's activations
        rows.append(_step(gater, opt, x, lambda: data.expert_logits[idx_d], data.labels[idx_d],
                          costs=costs, lam=lam, tau=tau, ce_scale=ce_scale, generator=generator,
                          precision=precision))
    return _mean_metrics(rows, lam=lam, tau=tau)


def train_epoch_algorithm1(gater, opt, experts, *, images, gater_input, labels, costs, lam, tau,
                           expert_input, batch_size=32, ce_scale=3.0,
                           generator: torch.Generator, precision: str = "fp32") -> dict:
    """Algorithm 1 verbatim: each batch runs every frozen expert (eval, no grad) on its images.

    images uint8 [N,S,S,3] (expert resolution source), gater_input uint8 [N,g,g,3];
    expert_input(i, images_u8_batch) -> the float batch expert i expects.
    """
    gater.train()
    rows = []
    for idx in _batches(len(labels), batch_size, generator):
        def logits_fn():
            with torch.no_grad():
                return torch.stack([e(expert_input(i, images[idx]))
                                    for i, e in enumerate(experts)], dim=1)  # [B,E,C]
        rows.append(_step(gater, opt, gater_input[idx], logits_fn, labels[idx], costs=costs,
                          lam=lam, tau=tau, ce_scale=ce_scale, generator=generator,
                          precision=precision))
    return _mean_metrics(rows, lam=lam, tau=tau)


@torch.no_grad()
def route(gater, gater_input: torch.Tensor, *, mode="argmax", tau=1.0, generator=None,
          batch_size=1024) -> np.ndarray:
    """Chosen expert per sample, int64 [N]: argmax of l (default) or a Gumbel sample."""
    gater.eval()
    out = []
    for i in range(0, len(gater_input), batch_size):
        logits = gater.route_logits(gater_input[i:i + batch_size])
        if mode == "sampled":
            logits = gumbel_softmax_st(logits, tau=tau, generator=generator)[0]
        out.append(logits.argmax(-1).cpu())
    return torch.cat(out).numpy()


def route_cost_ms(target, *, costs_ms, gater_ms: float) -> np.ndarray:
    """Latency of routed inference per sample, float64 [N]: T_gater + C_i for the chosen expert
    i = target [N] (METHODS.md A, evaluation)."""
    return gater_ms + np.asarray(costs_ms, np.float64)[np.asarray(target, np.int64)]


def evaluate(gater, data: GaterData, *, costs_ms: np.ndarray, gater_ms: float,
             mode="argmax", tau=1.0, generator=None) -> dict:
    """Per-sample decisions: target int [N], correct bool [N], cost ms [N] (gater + expert)."""
    target = route(gater, data.gater_input, mode=mode, tau=tau, generator=generator)
    pred = data.expert_logits.argmax(-1).cpu().numpy()                       # [N,E]
    correct = pred[np.arange(len(target)), target] == data.labels.cpu().numpy()
    return {"target": target, "correct": correct,
            "cost": route_cost_ms(target, costs_ms=costs_ms, gater_ms=gater_ms)}
