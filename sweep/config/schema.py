"""Run configuration: frozen dataclasses whose defaults run as is (the embedded digits default).

    cfg = load_config("configs/paper_gater_intel.yaml", overrides=["gater.lams=[0.7,1.0]"])

YAML files and `--set key=value` overrides (values parsed as YAML) are merged onto the defaults;
unknown keys and wrong types raise `UserError`; `validate(cfg)` checks ranges before any compute.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field

import yaml

from sweep.data.corruptions import SEVERITIES
from sweep.errors import UserError


@dataclass(frozen=True)
class DataConfig:
    name: str = "digits"                 # digits | imagefolder | cifar10 | synthetic
    root: str | None = None              # folder for imagefolder / cifar10
    image_size: int = 48                 # base resolution every image is stored at
    download: bool = False               # cifar10 only: allowed to download
    seed: int = 0                        # splits, corruptions, expert and backbone training
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    synthetic_n: int = 512
    synthetic_classes: int = 6
    skip_corrupt: bool = False           # imagefolder: skip unreadable files (else exit 2)
    severities: tuple[str, ...] = SEVERITIES
    # {severity: {blur: sigma_px, noise: std}}; None = the ImageNet-C / CIFAR-10-C reference
    # scaled to image_size. The default digits run uses stronger levels: 8x8 digits upsampled
    # to 48 px barely notice the reference ones (calibration: scripts/calibrate_tiny.py).
    levels: dict | None = field(default_factory=lambda: {
        "mild": {"blur": 2.25, "noise": 0.3}, "moderate": {"blur": 4.5, "noise": 0.6},
        "severe": {"blur": 7.5, "noise": 1.0}})


@dataclass(frozen=True)
class ExpertsConfig:
    profile: str = "tiny"                # registry profile in trainers/experts.py
    specs: tuple[dict, ...] = ()         # full spec dicts; replace the profile when given
    cost_source: str = "measured"        # measured | given
    given_latency_ms: tuple[float, ...] | None = None   # one per expert, in spec order
    given_gater_ms: float | None = None
    latency_repeats: int = 50
    max_epochs: int | None = None        # caps every expert's epochs (--smoke-test uses 1)


@dataclass(frozen=True)
class GaterConfig:
    enabled: bool = True
    gater_size: int = 16                 # the gater's downsampled input (paper: 96)
    embed_dim: int = 64                  # channels of the conv-downsampling layer
    trunk_pretrained: bool = False       # SqueezeNet 1.1 features[:5] pretrained weights
    lr: float = 1e-3
    batch_size: int = 32
    epochs: int = 3                      # converged by epoch 2-3 on digits (val acc/cost flat)
    ce_scale: float = 3.0                # L_class = CE / ce_scale (paper: 3.0)
    eval_route: str = "argmax"           # argmax | sampled
    precision: str = "fp32"              # fp32 | bf16: autocast for the gater in training
                                         # (GPU tensor cores, CPU AMX); decisions in fp32
    lams: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
    taus: tuple[float, ...] = (0.5, 1.0, 2.0)
    seeds: tuple[int, ...] = (0, 1, 2)


@dataclass(frozen=True)
class ExitsConfig:
    enabled: bool = True
    width: int = 16                      # ResNet-18 base width (paper: 64)
    input_size: int | None = 32          # backbone resolution (None = data.image_size)
    stem: str = "auto"                   # auto (cifar at <= 64 px) | cifar | imagenet
    epochs: int = 5
    lr: float = 0.05                     # SGD, momentum 0.9, cosine schedule
    batch_size: int = 128
    augment: tuple[str, ...] = ("crop",)
    train_on_corrupted: bool = True
    head_hidden: int = 128
    head_epochs: int = 30
    exit_cost: str = "flops"             # flops | uniform
    lams: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
    taus: tuple[float, ...] = (0.5, 1.0, 2.0)
    seeds: tuple[int, ...] = (0, 1, 2)
    em_iters: int = 5
    em_tol: float = 1e-3
    router_hidden: int = 64
    router_epochs: int = 5
    router_lr: float = 1e-3
    router_batch_size: int = 256
    thresholds: tuple[float, ...] = tuple(round(0.02 * i, 2) for i in range(0, 51))
    branchynet_thresholds: tuple[float, ...] = tuple(round(0.1 * i, 2) for i in range(0, 24))


@dataclass(frozen=True)
class SweepConfig:
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_failures: int = 1
    max_concurrent: int = 0              # 0 = as many as resources allow
    address: str | None = None           # Ray cluster; else RAY_ADDRESS; else a local one
    storage_path: str | None = None      # Tune state; default OUT/tune
    cascade_thresholds: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(10, 21))
    tune_verbose: int = 1                # Tune's console: 0 silent; 1 (Tune's default) status
                                         # table + each trial's config and final result;
                                         # 2 also every epoch's result


@dataclass(frozen=True)
class Config:
    name: str = "default"
    device: str = "auto"                 # auto | cpu | cuda
    cache_dir: str = ".cache/routesweep"
    data: DataConfig = field(default_factory=DataConfig)
    experts: ExpertsConfig = field(default_factory=ExpertsConfig)
    gater: GaterConfig = field(default_factory=GaterConfig)
    exits: ExitsConfig = field(default_factory=ExitsConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)


def _coerce(value, tp, path: str):
    """value (from YAML) -> an instance of annotation tp, or UserError naming the key."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _coerce(value, next(a for a in args if a is not type(None)), path)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserError(f"config key '{path}' must be a mapping, got {value!r}")
        return from_dict(tp, value, path)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config key '{path}' must be a list, got {value!r}")
        return tuple(_coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is dict and isinstance(value, dict):
        return value
    if tp in (int, float, str, bool) and type(value) is tp:
        return value
    raise UserError(f"config key '{path}' must be {getattr(tp, '__name__', tp)}, got {value!r}")


def from_dict(cls, d: dict, path: str = ""):
    hints = typing.get_type_hints(cls)
    unknown = set(d) - set(hints)
    if unknown:
        where = f" in '{path}'" if path else ""
        raise UserError(f"unknown config key{where}: {sorted(unknown)[0]!r}; known: "
                        f"{', '.join(sorted(hints))}")
    kw = {k: _coerce(v, hints[k], f"{path}.{k}" if path else k) for k, v in d.items()}
    return cls(**kw)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def _set_path(d: dict, key: str, value) -> None:
    parts = key.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
        if not isinstance(d, dict):
            raise UserError(f"--set {key}: '{p}' is not a section")
    d[parts[-1]] = value


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | None = None, overrides=()) -> Config:
    """Defaults <- YAML file <- `key=value` overrides; returns a validated Config."""
    raw: dict = {}
    if path:
        if not os.path.isfile(path):
            raise UserError(f"config file '{path}' does not exist")
        try:
            with open(path) as f:
                raw = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise UserError(f"config file '{path}' is not valid YAML: {str(e).splitlines()[0]}")
        if not isinstance(raw, dict):
            raise UserError(f"config file '{path}' must be a mapping at the top level")
    for item in overrides:
        if "=" not in item:
            raise UserError(f"--set expects key=value, got {item!r}")
        key, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise UserError(f"--set {key}: cannot parse value {text!r}")
        _set_path(raw, key.strip(), value)
    from sweep.config.validate import validate
    cfg = from_dict(Config, _merge(to_dict(Config()), raw))
    validate(cfg)
    return cfg
