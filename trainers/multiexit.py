"""Multi-exit ResNet-18 (the exit family's frozen backbone), its exit heads, and per-exit FLOPs.

Paper (seeds/003, METHODS.md B): a ResNet-18 retrained on the dataset (crop + flip, channel
normalisation), then frozen; an exit after each of the 4 residual stages, global-average-pooled
(64/128/256/512 channels at width 64); a 2-layer MLP classifier per exit trained on those cached
pooled features. Exit cost = cumulative FLOPs up to the exit / full forward (or the paper's
uniform 0.25, 0.5, 0.75, 1.0).

Choices recorded here (also in `model.train_record` after training):
* the model takes float images in [0, 1], [B, 3, S, S], and normalises them itself with per-channel
  mean/std buffers measured on the training images, so the normalisation travels in state_dict;
* memory format: the model converts its input to `model.memory_format` (trainers/layout.py):
  channels-last (+20 % training speed at width 16 on a 1-thread AVX2 CPU), but NCHW below width
  16, where the first downsampling shortcut (1x1 conv, stride 2, `width` input channels) would
  hit oneDNN's channels-last heap overflow (trainers/layout.py);
* backbone optimiser: SGD, momentum 0.9, Nesterov, weight decay 5e-4, per-step cosine decay
  (`optimizer='adam'` is the alternative); cross-entropy without label smoothing;
* exit heads: standardise the pooled features (train mean/std) -> Linear -> ReLU -> Linear,
  Adam; all K heads step on the same minibatches (their parameters are disjoint, so this equals K
  separate trainings).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.resnet import BasicBlock

from trainers.frozen import freeze
from trainers.layout import format_name, memory_format_for

STEMS = ("cifar", "imagenet")
AUGMENTATIONS = ("crop", "flip")


# ----------------------------------------------------------------------------- backbone

def _stage(c_in: int, c_out: int, n_blocks: int, stride: int) -> nn.Sequential:
    """n_blocks BasicBlocks; the first one downsamples (1x1 conv + BN shortcut) if needed."""
    down = None
    if stride != 1 or c_in != c_out:
        down = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
    blocks = [BasicBlock(c_in, c_out, stride, down)]
    blocks += [BasicBlock(c_out, c_out) for _ in range(n_blocks - 1)]
    return nn.Sequential(*blocks)


def _stem(kind: str, width: int) -> nn.Sequential:
    """cifar: 3x3/1 conv, no max-pool (32 px stays 32). imagenet: 7x7/2 conv + 3x3/2 max-pool."""
    if kind == "cifar":
        conv = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        return nn.Sequential(conv, nn.BatchNorm2d(width), nn.ReLU(inplace=True))
    conv = nn.Conv2d(3, width, 7, 2, 3, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                         nn.MaxPool2d(3, 2, 1))


class MultiExitResNet(nn.Module):
    """ResNet-18 (blocks=(2,2,2,2)) whose 4 stages each feed an exit. Channels w, 2w, 4w, 8w.

    Input: float [B, 3, S, S] in [0, 1], any strides; normalised inside with the `mean`/`std`
    buffers [3] and run in `self.memory_format` (channels-last, or NCHW where unsafe).
    """

    def __init__(self, num_classes: int, *, stem: str = "cifar", width: int = 64,
                 blocks: tuple = (2, 2, 2, 2), seed: int = 0):
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"unknown backbone stem '{stem}'; choose one of {', '.join(STEMS)}")
        if int(width) < 1 or int(num_classes) < 2 or len(blocks) < 1 or min(blocks) < 1:
            raise ValueError(f"invalid backbone: width={width}, num_classes={num_classes}, "
                            f"blocks={tuple(blocks)} (need width>=1, >=2 classes, blocks>=1)")
        self.stem_kind, self.width, self.blocks = stem, int(width), tuple(int(b) for b in blocks)
        self.dims = [self.width * 2 ** k for k in range(len(self.blocks))]      # d_k per exit
        with torch.random.fork_rng(devices=[]):                                  # seeded init
            torch.manual_seed(seed)
            self.stem = _stem(stem, self.width)
            c_in, stages = self.width, []
            for k, (d, n) in enumerate(zip(self.dims, self.blocks)):
                stages.append(_stage(c_in, d, n, 1 if k == 0 else 2))
                c_in = d
            self.stages = nn.ModuleList(stages)
            self.fc = nn.Linear(self.dims[-1], num_classes)
        self.register_buffer("mean", torch.full((3,), 0.5))
        self.register_buffer("std", torch.full((3,), 0.25))
        self.memory_format = memory_format_for(self)       # from the architecture, not saved

    @property
    def num_exits(self) -> int:
        return len(self.stages)

    def _maps(self, x: torch.Tensor):
        """Yields the feature map after each stage, [B, d_k, H_k, W_k]."""
        x = x.contiguous(memory_format=self.memory_format)  # a no-op if already in it
        h = self.stem((x - self.mean[:, None, None]) / self.std[:, None, None])
        for stage in self.stages:
            h = stage(h)
            yield h

    def stage_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """4 global-average-pooled features, [B, d_k] each (what the exits and routers see)."""
        return [h.mean(dim=(2, 3)) for h in self._maps(x)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the backbone's own final fc, [B, C]."""
        return self.fc(self.stage_features(x)[-1])


def to_float_images(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, S, S, 3] (numpy) -> float32 [N, 3, S, S] in [0, 1], channels-last strides (the
    permuted copy keeps them); MultiExitResNet converts to its own memory_format."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)


# ----------------------------------------------------------------------------- backbone training

def _parse_augment(augment) -> tuple[str, ...]:
    """True -> ('crop','flip'); False/None -> (); else a subset of AUGMENTATIONS (digits: no flip)."""
    if augment is True:
        return AUGMENTATIONS
    if augment is False or augment is None:
        return ()
    names = (augment,) if isinstance(augment, str) else tuple(augment)
    bad = [a for a in names if a not in AUGMENTATIONS]
    if bad:
        raise ValueError(f"unknown augmentation(s) {bad}; choose from {', '.join(AUGMENTATIONS)}")
    return tuple(a for a in AUGMENTATIONS if a in names)


def augment_batch(x: torch.Tensor, *, ops: Iterable[str], gen: torch.Generator) -> torch.Tensor:
    """x float [B, 3, S, S] -> same shape: random crop from a zero-padded image (pad S/8, i.e. the
    CIFAR recipe's 4 px at 32) and/or horizontal flip with p = 0.5, drawn from `gen`."""
    b, _, s, _ = x.shape
    if "crop" in ops:
        pad = max(1, s // 8)
        xp = F.pad(x, (pad, pad, pad, pad))                                  # [B, 3, S+2p, S+2p]
        oy, ox = (torch.randint(0, 2 * pad + 1, (b,), generator=gen) for _ in range(2))
        ar = torch.arange(s)
        rows, cols = oy[:, None] + ar, ox[:, None] + ar                         # [B, S] each
        x = xp[torch.arange(b)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
        x = x.permute(0, 3, 1, 2)                                             # [B,S,S,3]->[B,3,S,S]
    if "flip" in ops:
        flip = torch.rand(b, generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


def channel_stats(images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [N, S, S, 3] -> per-channel mean, std on [0, 1] pixels, float32 [3] each."""
    x = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
    return (torch.tensor(x.mean(0), dtype=torch.float32),
            torch.tensor(np.maximum(x.std(0), 1e-3), dtype=torch.float32))


def _optimizer(name: str, params, lr: float, weight_decay: float):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True,
                               weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown backbone optimizer '{name}'; choose sgd or adam")


def _check_training_args(n: int, n_labels: int, epochs: int, lr: float, batch_size: int):
    if n == 0 or n != n_labels:
        raise ValueError(f"need as many labels as images (got {n} images, {n_labels} labels)")
    if int(epochs) < 1 or not lr > 0 or int(batch_size) < 1:
        raise ValueError(f"invalid training args: epochs={epochs}, lr={lr}, "
                        f"batch_size={batch_size} (need epochs>=1, lr>0, batch_size>=1)")


def _backbone_epoch(model, opt, sched, x_all, y_all, *, ops, gen, batch_size, device) -> dict:
    """One shuffled pass; returns the epoch's mean train loss and accuracy (augmented inputs)."""
    loss_sum, correct = 0.0, 0
    for idx in torch.randperm(len(x_all), generator=gen).split(batch_size):
        x = augment_batch(x_all[idx], ops=ops, gen=gen).to(device)                # [B, 3, S, S]
        y = y_all[idx].to(device)
        logits = model(x)                                                         # [B, C]
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); sched.step()
        loss_sum += loss.item() * len(idx); correct += (logits.argmax(1) == y).sum().item()
    return {"loss": loss_sum / len(x_all), "acc": correct / len(x_all)}


def _prepare_for_training(model: MultiExitResNet, images: np.ndarray, device: str):
    """Measure the normalisation on the training images, unfreeze, move to device."""
    mean, std = channel_stats(images)
    model.mean.copy_(mean); model.std.copy_(std)
    model.to(device).train()
    for p in model.parameters():
        p.requires_grad_(True)


def train_backbone(model: MultiExitResNet, *, images: np.ndarray, labels: np.ndarray,
                   epochs: int, lr: float, batch_size: int, seed: int, augment=True,
                   optimizer: str = "sgd", weight_decay: float = 5e-4, device: str = "cpu",
                   progress: Callable[[int, dict], None] | None = None) -> MultiExitResNet:
    """Train the backbone (through its own fc) on uint8 images [N, S, S, 3]; return it frozen.

    Shuffling and augmentation draw from one torch.Generator seeded with `seed`; the lr follows a
    per-step cosine from `lr` to 0. `progress(epoch, {"loss", "acc", "seconds"})` after each epoch.
    The recipe is recorded in `model.train_record` (for the manifest).
    """
    _check_training_args(len(images), len(labels), epochs, lr, batch_size)
    ops, gen = _parse_augment(augment), torch.Generator().manual_seed(int(seed))
    _prepare_for_training(model, images, device)
    x_all, y_all = to_float_images(images), torch.as_tensor(labels, dtype=torch.long)
    opt = _optimizer(optimizer, model.parameters(), lr, weight_decay)
    steps = epochs * -(-len(x_all) // batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + np.cos(np.pi * t / steps)))
    t0 = time.perf_counter()
    for epoch in range(epochs):
        metrics = _backbone_epoch(model, opt, sched, x_all, y_all, ops=ops, gen=gen,
                                  batch_size=batch_size, device=device)
        metrics["seconds"] = time.perf_counter() - t0
        if progress is not None:
            progress(epoch, metrics)
    model.train_record = dict(optimizer=optimizer, momentum=0.9 if optimizer == "sgd" else None,
                              nesterov=optimizer == "sgd", lr=lr, schedule="cosine-per-step",
                              weight_decay=weight_decay, epochs=epochs, batch_size=batch_size,
                              augment=list(ops), seed=seed,
                              memory_format=format_name(model.memory_format), final=metrics)
    return freeze(model)


@torch.no_grad()
def extract_exit_features(model: MultiExitResNet, *, images: np.ndarray, batch_size: int = 256,
                          device: str = "cpu") -> list[np.ndarray]:
    """uint8 [N, S, S, 3] -> K arrays float32 [N, d_k] of pooled stage features (eval mode)."""
    model.eval().to(device)
    parts: list[list[np.ndarray]] = [[] for _ in range(model.num_exits)]
    for i in range(0, len(images), batch_size):
        x = to_float_images(images[i:i + batch_size]).to(device)
        for k, f in enumerate(model.stage_features(x)):
            parts[k].append(f.float().cpu().numpy())
    return [np.concatenate(p) if p else np.zeros((0, d), np.float32)
            for p, d in zip(parts, model.dims)]


# ----------------------------------------------------------------------------- cost

@contextmanager
def _eval_mode(model: nn.Module):
    """Count FLOPs in eval mode: a train-mode BN would update its running stats on the dummy."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@torch.no_grad()
def exit_flops(model: MultiExitResNet, *, image_size: int, heads: "ExitHeads | None" = None
               ) -> list[int]:
    """Cumulative FLOPs of one image up to and including stage k's pooled features, k = 0..K-1.

    Counted by torch.utils.flop_counter: 2 FLOPs per multiply-accumulate of convs and matmuls;
    BN, ReLU, adds and pooling are not counted (same convention as trainers/cost.count_flops). Backbone only by default, as in the paper; with `heads`, exit k's own classifier is
    added (only the chosen exit's head runs at inference). The backbone's fc is not an exit.
    """
    x = torch.zeros(1, 3, image_size, image_size, device=model.mean.device)
    out = []
    with _eval_mode(model), FlopCounterMode(display=False) as counter:
        for _ in model._maps(x):                                   # snapshot after each stage
            out.append(int(counter.get_total_flops()))
    if heads is not None:
        out = [f + g for f, g in zip(out, head_flops(heads))]
    return out


@torch.no_grad()
def head_flops(heads: "ExitHeads") -> list[int]:
    """FLOPs of each exit head on one pooled feature vector."""
    out = []
    for mlp in heads.mlps:
        with FlopCounterMode(display=False) as counter:
            mlp(torch.zeros(1, mlp.d_in, device=mlp.mean.device))
        out.append(int(counter.get_total_flops()))
    return out


@torch.no_grad()
def forward_flops(model: MultiExitResNet, *, image_size: int) -> int:
    """FLOPs of the plain backbone forward (stages + fc) on one image: the 'full' reference."""
    x = torch.zeros(1, 3, image_size, image_size, device=model.mean.device)
    with _eval_mode(model), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


def exit_costs(flops, mode: str = "flops") -> np.ndarray:
    """Relative exit costs [K] in (0, 1]: 'flops' -> cumulative FLOPs / last exit's FLOPs;
    'uniform' -> (k+1)/K, the paper's 0.25, 0.5, 0.75, 1.0 for K = 4."""
    f = np.asarray(flops, dtype=np.float64)
    if mode == "uniform":
        return np.arange(1, len(f) + 1, dtype=np.float64) / len(f)
    if mode == "flops":
        if len(f) == 0 or not np.all(f > 0):
            raise ValueError(f"exit FLOPs must be positive, got {f.tolist()}")
        return f / f[-1]
    raise ValueError(f"unknown exit_cost mode '{mode}'; choose flops or uniform")


# ----------------------------------------------------------------------------- exit heads

class FeatureMLP(nn.Module):
    """Standardise (buffers) -> Linear(d_in, hidden) -> ReLU -> Linear(hidden, d_out).

    Used for the exit heads (d_out = C) and the routers (d_out = 1)."""

    def __init__(self, d_in: int, hidden: int, d_out: int):
        super().__init__()
        self.d_in = int(d_in)
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))
        self.register_buffer("mean", torch.zeros(d_in))
        self.register_buffer("std", torch.ones(d_in))

    def set_standardization(self, x: torch.Tensor) -> None:
        """x [N, d_in]: the training features; constant dims get std 1 (left unscaled)."""
        std = x.std(0, unbiased=False)
        self.mean.copy_(x.mean(0)); self.std.copy_(torch.where(std > 1e-6, std, 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def seeded(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    """Build a module with its parameter init drawn from torch.manual_seed(seed), isolated."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build()


class ExitHeads(nn.Module):
    """One 2-layer MLP classifier per exit. forward(list of K [B, d_k]) -> logits [B, K, C]."""

    def __init__(self, dims: list[int], num_classes: int, *, hidden: int = 128, seed: int = 0):
        super().__init__()
        self.mlps = seeded(seed, lambda: nn.ModuleList(
            FeatureMLP(d, hidden, num_classes) for d in dims))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([m(f) for m, f in zip(self.mlps, features)], dim=1)


def as_tensors(features, device: str = "cpu") -> list[torch.Tensor]:
    """K arrays/tensors [N, d_k] -> float32 tensors on `device` (zero-copy for float32 numpy)."""
    return [torch.as_tensor(np.asarray(f, dtype=np.float32) if not torch.is_tensor(f) else f,
                            dtype=torch.float32).to(device) for f in features]


def train_exit_heads(features: list, labels, *, hidden: int = 128, epochs: int, lr: float,
                     batch_size: int, seed: int, weight_decay: float = 0.0,
                     num_classes: int | None = None, device: str = "cpu") -> ExitHeads:
    """Cross-entropy on cached pooled features (K arrays [N, d_k]); Adam; returned frozen."""
    feats = as_tensors(features, device)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long, device=device)
    _check_training_args(len(feats[0]), len(y), epochs, lr, batch_size)
    c = int(num_classes or int(y.max()) + 1)
    heads = ExitHeads([f.shape[1] for f in feats], c, hidden=hidden, seed=seed).to(device)
    for m, f in zip(heads.mlps, feats):
        m.set_standardization(f)
    opt = torch.optim.Adam(heads.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(int(seed))
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(batch_size):
            logits = heads([f[idx] for f in feats])                               # [B, K, C]
            # sum over exits of each head's mean CE: the heads share no parameters
            loss = F.cross_entropy(logits.flatten(0, 1), y[idx].repeat_interleave(len(feats)),
                                   reduction="sum") / len(idx)
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    return freeze(heads)


@torch.no_grad()
def exit_logits(heads: ExitHeads, features: list, *, batch_size: int = 8192,
                device: str = "cpu") -> np.ndarray:
    """K arrays [N, d_k] -> float32 [N, K, C], every exit head's logits."""
    heads.eval().to(device)
    feats = as_tensors(features, device)
    out = [heads([f[i:i + batch_size] for f in feats]).cpu()
           for i in range(0, len(feats[0]), batch_size)]
    return torch.cat(out).numpy().astype(np.float32)
