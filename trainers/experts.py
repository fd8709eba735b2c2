"""The expert zoo: a registry of frozen classifiers of very different cost (METHODS.md A).

An `ExpertSpec` names an architecture ('torchvision:squeezenet1_1', 'timm:mobilevit_s', ...), the
resolution it sees and how it is fine-tuned. Two profiles:

* `paper` -- SqueezeNet 1.1 / MobileViT-S / DeiT-S/16 at 224 px, ImageNet-pretrained, head
  replaced and fine-tuned on the clean train split (the gater paper's zoo).
* `tiny`  -- the same three families shrunk for the built-in digits (`TINY_DATA`) on a 2-core
  CPU, calibrated by `scripts/calibrate_tiny.py` so the paper's premise holds: the cheapest
  (SqueezeNet) is good on clean images and collapses under corruption; the costliest
  (MobileViT), trained on the corrupted copies too, stays robust; DeiT sits between in cost.
  All three train in under a minute on 2 CPU threads.

Every expert sees images through ONE preprocessing (`preprocess`): uint8 [N,S,S,3] -> float
[N,3,s,s], bilinear resize (antialiased when shrinking), then ImageNet mean/std normalisation.
`train_on_corrupted` is read by the caller (sweep/store/build.py), which passes the
severity-expanded train split; `train_expert` trains on whatever arrays it is given.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import socket
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from trainers.frozen import freeze

IMAGENET_MEAN = (0.485, 0.456, 0.406)   # one normalisation for every expert (timm/torchvision
IMAGENET_STD = (0.229, 0.224, 0.225)    # ImageNet defaults; MobileViT's own is [0,1] -> fine-tuned)
LIBRARIES = ("timm", "torchvision")


@dataclass(frozen=True)
class ExpertSpec:
    name: str                          # the route target's name, e.g. 'squeezenet'
    arch: str                          # 'torchvision:<name>' or 'timm:<name>'
    kwargs: dict = field(default_factory=dict)  # constructor overrides (timm img_size, depth..)
    pretrained: bool = False           # ImageNet weights (cache or download), head replaced
    checkpoint: str | None = None      # local state dict; replaces `pretrained` when given
    input_size: int = 224              # resolution the expert sees (resized from the base S)
    epochs: int = 5                    # fine-tuning epochs; 0 = use the weights as they are
    lr: float = 1e-4
    batch_size: int = 32
    weight_decay: float = 0.05         # AdamW; 0 gives plain Adam
    warmup_epochs: float = 0.0         # linear warm-up, then cosine decay to 0 (per step)
    augment: bool = False              # random translation by up to 1/8 of the input size
    train_on_corrupted: bool = False   # the caller trains it on clean + every corrupted copy

    def __hash__(self):                # frozen but holds a dict: hash its canonical JSON
        return hash(json.dumps(spec_to_dict(self), sort_keys=True, default=str))


def _paper(name, arch, **kw):
    return ExpertSpec(name=name, arch=arch, pretrained=True, input_size=224, epochs=5,
                      lr=1e-4, batch_size=32, weight_decay=0.05, **kw)


# Order = the paper's cost vector order [Sq, Mob, DeiT] (METHODS.md A: [2.14, 10.59, 7.56] ms).
PROFILES: dict[str, tuple[ExpertSpec, ...]] = {
    "paper": (
        _paper("squeezenet", "torchvision:squeezenet1_1"),
        _paper("mobilevit", "timm:mobilevit_s"),
        _paper("deit", "timm:deit_small_patch16_224"),
    ),
    # Calibrated on digits at base S = 48 with TINY_DATA's levels (scripts/calibrate_tiny.py).
    # SqueezeNet: upsampled 48 px, lr 5e-4 (1e-3 left ~1 seed in 4 with a class stuck behind
    # the head's ReLU); clean only -> fragile. MobileViT-XXS: 32 px, trained on clean + every
    # corrupted copy -> robust and the costliest. DeiT: DeiT-S's depth 12 at 1/6 width, 4x4
    # patches of a 16 px view (16 tokens), LayerScale + mean pooling to train from scratch fast.
    "tiny": (
        ExpertSpec("squeezenet", "torchvision:squeezenet1_1", input_size=48, epochs=10,
                   lr=5e-4, batch_size=32, weight_decay=0.0, warmup_epochs=2),
        ExpertSpec("mobilevit", "timm:mobilevit_xxs", kwargs={"img_size": 32}, input_size=32,
                   epochs=3, lr=2e-3, batch_size=64, weight_decay=0.01, warmup_epochs=0.5,
                   train_on_corrupted=True),
        ExpertSpec("deit", "timm:deit_small_patch16_224",
                   kwargs={"img_size": 16, "patch_size": 4, "embed_dim": 64, "depth": 12,
                           "num_heads": 2, "mlp_ratio": 2.0, "init_values": 0.1,
                           "global_pool": "avg"},
                   input_size=16, epochs=20, lr=2e-3, batch_size=64, weight_decay=0.05,
                   warmup_epochs=2),
    ),
}


# What the tiny profile was calibrated on: digits at this base resolution, these corruption
# levels (blur sigma in base px, noise std on [0,1] pixels). reference_levels(48) (severe: blur
# 1.5, noise 0.13) barely touch digits upsampled from 8x8 (36 base px per original pixel).
TINY_DATA = {"dataset": "digits", "image_size": 48,
             "levels": {"mild": {"blur": 2.25, "noise": 0.3},
                        "moderate": {"blur": 4.5, "noise": 0.6},
                        "severe": {"blur": 7.5, "noise": 1.0}}}


# ---------------------------------------------------------------- specs <-> config dicts
_FIELDS = {f.name: f for f in dataclasses.fields(ExpertSpec)}


def spec_to_dict(spec: ExpertSpec) -> dict:
    return {**dataclasses.asdict(spec), "kwargs": dict(spec.kwargs)}


def spec_from_dict(d: dict) -> ExpertSpec:
    """A config mapping -> ExpertSpec; unknown keys, missing name/arch, bad values -> ValueError."""
    if not isinstance(d, dict):
        raise ValueError(f"an expert must be a mapping of {', '.join(_FIELDS)}; got {d!r}")
    unknown = sorted(set(d) - set(_FIELDS))
    if unknown:
        raise ValueError(f"unknown expert key(s) {unknown}; known: {', '.join(_FIELDS)}")
    missing = [k for k in ("name", "arch") if not d.get(k)]
    if missing:
        raise ValueError(f"expert {d.get('name', '?')!r} needs {' and '.join(missing)}")
    spec = ExpertSpec(**{k: _coerce(k, v, d["name"]) for k, v in d.items()})
    check_arch(spec.arch)
    return spec


_FLOATS = ("lr", "weight_decay", "warmup_epochs")   # YAML 1.1 reads '1e-4' as text: float()
_RULES = {"input_size": (lambda v: type(v) is int and v >= 1, "an integer >= 1"),
          "batch_size": (lambda v: type(v) is int and v >= 1, "an integer >= 1"),
          "epochs": (lambda v: type(v) is int and v >= 0, "an integer >= 0"),
          "lr": (lambda v: type(v) in (int, float) and v > 0, "a number > 0"),
          "weight_decay": (lambda v: type(v) in (int, float) and v >= 0, "a number >= 0"),
          "warmup_epochs": (lambda v: type(v) in (int, float) and v >= 0, "a number >= 0"),
          "kwargs": (lambda v: isinstance(v, dict), "a mapping"),
          **{k: (lambda v: isinstance(v, bool), "true or false")
             for k in ("pretrained", "augment", "train_on_corrupted")}}


def _coerce(key, v, name):
    check, need = _RULES.get(key, (lambda v: True, ""))
    try:
        v = float(v) if key in _FLOATS and isinstance(v, str) else v
        ok = check(v)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"expert '{name}': {key} must be {need}, got {v!r}")
    return v


def check_arch(arch: str) -> tuple[str, str]:
    """'timm:mobilevit_s' -> ('timm', 'mobilevit_s'); unknown library or model -> ValueError."""
    import timm                  # heavy (~1 s): only where a timm name is checked or built
    lib, _, model = str(arch).partition(":")
    ours = ", ".join(sorted({s.arch for specs in PROFILES.values() for s in specs}))
    if lib not in LIBRARIES or not model:
        raise ValueError(f"expert arch '{arch}' must be 'timm:<model>' or 'torchvision:<model>'; "
                        f"the registry uses {ours}")
    known = timm.list_models() if lib == "timm" else torchvision.models.list_models(
        module=torchvision.models)
    if model not in known:
        near = difflib.get_close_matches(model, known, n=3)
        raise ValueError(f"unknown {lib} model '{model}'" + (f" (did you mean {near}?)" if near
                        else "") + f"; known: {ours} or any name in {lib}'s list_models()")
    return lib, model


# ---------------------------------------------------------------- building
def build_expert(spec: ExpertSpec, *, num_classes: int, seed: int | None = None) -> nn.Module:
    """The expert with a fresh `num_classes` head, weights from checkpoint / pretrained / random;
    `seed` makes the random initialisation reproducible without touching the global RNG."""
    lib, model_name = check_arch(spec.arch)
    pretrained = spec.pretrained and spec.checkpoint is None   # a checkpoint replaces download
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        build = _build_timm if lib == "timm" else _build_torchvision
        model = build(spec, model_name, num_classes, pretrained)
    if spec.checkpoint is not None and not load_checkpoint(model, spec.checkpoint,
                                                           name=spec.name) and spec.epochs == 0:
        raise ValueError(f"expert '{spec.name}': checkpoint '{spec.checkpoint}' has another head "
                        f"than {num_classes} classes, so it needs fine-tuning; set epochs > 0")
    return model


def _build_timm(spec, model_name, num_classes, pretrained) -> nn.Module:
    import timm
    kw = dict(spec.kwargs)
    if pretrained:   # from the local HF cache if present, else download if reachable
        cfg = timm.models.get_pretrained_cfg(model_name)
        cached = _hf_cached(cfg.hf_hub_id) if cfg is not None and cfg.hf_hub_id else None
        if cached:
            kw["pretrained_cfg_overlay"] = dict(file=cached)
        elif not _reachable("huggingface.co"):
            _offline_error(spec)
    try:
        return timm.create_model(model_name, pretrained=pretrained, num_classes=num_classes,
                                 **kw)
    except TypeError as e:       # a constructor kwarg the model does not take
        raise ValueError(f"expert '{spec.name}': bad kwargs for timm '{model_name}': {e}") from None
    except OSError as e:         # download failed half-way, hub errors
        _offline_error(spec, e)


def _build_torchvision(spec, model_name, num_classes, pretrained) -> nn.Module:
    try:
        if not pretrained:
            return torchvision.models.get_model(model_name, num_classes=num_classes,
                                                **spec.kwargs)
        weights = torchvision.models.get_model_weights(model_name).DEFAULT
        cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
        if not os.path.exists(cached) and not _reachable("download.pytorch.org"):
            _offline_error(spec)
        model = torchvision.models.get_model(model_name, weights=weights, **spec.kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"expert '{spec.name}': bad kwargs for torchvision '{model_name}': "
                        f"{e}") from None
    except OSError as e:         # URLError is an OSError
        _offline_error(spec, e)
    _replace_last_layer(model, num_classes)
    return model


def _replace_last_layer(model: nn.Module, num_classes: int) -> None:
    """torchvision heads are the last Linear or Conv2d (SqueezeNet: classifier.1, a 1x1 conv)."""
    name = head_name(model)
    parent, _, attr = name.rpartition(".")
    last = model.get_submodule(name)
    new = (nn.Linear(last.in_features, num_classes) if isinstance(last, nn.Linear) else
           nn.Conv2d(last.in_channels, num_classes, last.kernel_size, last.stride))
    setattr(model.get_submodule(parent), attr, new)


def head_name(model: nn.Module) -> str:
    """Dotted name of the classifier head (timm's pretrained_cfg, else the last Linear/Conv2d)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return cfg.get("classifier") or [n for n, m in model.named_modules()
                                     if isinstance(m, (nn.Linear, nn.Conv2d))][-1]


def _hf_cached(repo_id: str) -> str | None:
    from huggingface_hub import try_to_load_from_cache
    paths = [try_to_load_from_cache(repo_id, f) for f in ("model.safetensors", "pytorch_model.bin")]
    return next((p for p in paths if isinstance(p, str)), None)   # else None or a 'missing' mark


def _reachable(host: str, timeout: float = 3.0) -> bool:
    """Can we open a TCP connection to host:443? (Avoids the hub's minute of retries offline.)"""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _offline_error(spec: ExpertSpec, cause: Exception | None = None):
    why = f" ({cause})" if cause else ""
    raise ValueError(f"expert '{spec.name}': pretrained weights for '{spec.arch}' are not cached "
                    f"and cannot be downloaded{why}; set checkpoint: <path to a state dict> "
                    f"(or pretrained: false)")


def load_checkpoint(model: nn.Module, path: str, *, name: str = "expert") -> bool:
    """Load a state dict saved with torch.save(model.state_dict(), path); True if whole.

    Either a whole expert (head for num_classes) or a backbone whose classifier head differs
    (e.g. ImageNet's 1000 classes): then the head keeps its fresh initialisation (False).
    Anything else -- not a state dict, missing/unexpected keys, other shapes -> ValueError.
    """
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"expert '{name}': checkpoint '{path}' does not exist") from None
    except Exception as e:       # pickles of whole modules, corrupt files
        raise ValueError(f"expert '{name}': checkpoint '{path}' is not a loadable state dict "
                        f"({type(e).__name__}); save model.state_dict()") from None
    sd = _unwrap_state_dict(sd, path, name)
    own = model.state_dict()
    head = head_name(model) + "."
    bad = [k for k in own.keys() ^ sd.keys()] + [
        k for k in own.keys() & sd.keys() if own[k].shape != sd[k].shape]
    if any(not k.startswith(head) for k in bad):
        raise ValueError(f"expert '{name}': checkpoint '{path}' does not fit its arch "
                        f"(mismatched keys: {sorted(bad)[:4]}{' ...' if len(bad) > 4 else ''})")
    model.load_state_dict({k: v for k, v in sd.items() if k not in bad}, strict=False)
    return not bad


def _unwrap_state_dict(sd, path, name) -> dict:
    if isinstance(sd, dict):
        for key in ("state_dict", "model"):   # common training-script wrappers
            if isinstance(sd.get(key), dict):
                sd = sd[key]
    if not (isinstance(sd, dict) and sd and all(isinstance(v, torch.Tensor)
                                                for v in sd.values())):
        raise ValueError(f"expert '{name}': checkpoint '{path}' is not a state dict "
                        f"(a mapping of parameter names to tensors)")
    return {k.removeprefix("module."): v for k, v in sd.items()}


# ---------------------------------------------------------------- pixels
def to_unit(images: torch.Tensor, input_size: int) -> torch.Tensor:
    """uint8 [N,S,S,3] -> float [N,3,s,s] in [0,1]; bilinear, antialiased when shrinking."""
    x = images.permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-1] != input_size or x.shape[-2] != input_size:
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear",
                          align_corners=False, antialias=input_size < x.shape[-1])
    return x


def normalize(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def preprocess(images: torch.Tensor, input_size: int) -> torch.Tensor:
    """The one input pipeline of every expert: uint8 [N,S,S,3] -> normalised float [N,3,s,s]."""
    return normalize(to_unit(images, input_size))


def random_shift(x: torch.Tensor, gen: torch.Generator, frac: float = 0.125) -> torch.Tensor:
    """Translate each image of [N,3,s,s] in [0,1] by up to frac*s px; black (0) fills the edge."""
    n = x.shape[0]
    theta = torch.eye(2, 3).repeat(n, 1, 1)                                 # identity affine
    theta[:, :, 2] = (torch.rand(n, 2, generator=gen) * 2 - 1) * 2 * frac  # grid units = s/2
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


# ---------------------------------------------------------------- training and inference
def train_expert(model: nn.Module, spec: ExpertSpec, *, images: np.ndarray, labels: np.ndarray,
                 seed: int, device: str = "cpu", progress=None) -> nn.Module:
    """Fine-tune on uint8 images [N,S,S,3] / int labels [N]; return it frozen (eval, no grad).

    AdamW (weight_decay 0 = Adam), linear warm-up + per-step cosine decay, seeded shuffling,
    dropout and augmentation. `progress(epoch, epochs, mean_loss, seconds)` after every epoch.
    """
    model.to(device)
    if spec.epochs > 0:
        with torch.random.fork_rng(devices=[]):   # dropout / drop-path draw from global RNG
            torch.manual_seed(seed)
            _fit(model, spec, images, labels, seed, device, progress)
    return freeze(model)


def _fit(model, spec, images, labels, seed, device, progress) -> None:
    x_all = torch.from_numpy(np.ascontiguousarray(images))          # uint8 [N,S,S,3], CPU
    y_all = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(y_all) / spec.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _warmup_cosine(
        spec.warmup_epochs * steps_per_epoch, spec.epochs * steps_per_epoch))
    model.train()
    for epoch in range(spec.epochs):
        t0, total = time.perf_counter(), 0.0
        for idx in torch.randperm(len(y_all), generator=gen).split(spec.batch_size):
            x = to_unit(x_all[idx].to(device), spec.input_size)      # [B,3,s,s] in [0,1]
            if spec.augment:
                x = random_shift(x, gen)
            loss = F.cross_entropy(model(normalize(x)), y_all[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if progress is not None:
            progress(epoch + 1, spec.epochs, total / len(y_all), time.perf_counter() - t0)


def _warmup_cosine(warmup_steps: float, total_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = (step - warmup_steps) / max(1.0, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return factor


@torch.inference_mode()
def expert_logits(model: nn.Module, *, images: np.ndarray, input_size: int,
                  batch_size: int = 256, device: str = "cpu") -> np.ndarray:
    """uint8 [N,S,S,3] -> float32 [N,C] logits, resized to input_size on the fly, in eval mode."""
    model.eval().to(device)
    x_all = torch.from_numpy(np.ascontiguousarray(images))
    out = [model(preprocess(x_all[i:i + batch_size].to(device), input_size)).float().cpu()
           for i in range(0, len(x_all), batch_size)]
    return torch.cat(out).numpy().astype(np.float32, copy=False)
