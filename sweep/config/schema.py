"""Run configuration: frozen dataclasses whose defaults run as is (the embedded digits default).

    cfg = read_config("configs/paper_gater_intel.yaml", overrides=["gater.lams=[0.7,1.0]"])

YAML files and `--set key=value` overrides (values parsed as YAML) are merged onto the defaults;
unknown keys, wrong types, repeated keys, files that are empty, not UTF-8 or not a mapping raise
`UserError` (`sweep.config.load_config` also checks every value's range, sweep/config/validate.py).

Sections: `data`, `experts`, `sweep` (below) and one per registered router family (`gater`,
`exits`, ...: each family brings its own dataclass, sweep/families/). `cfg.gater` is the
`gater` section, whichever module defines it.
"""
from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field

import yaml

from sweep import families
from sweep.errors import UserError

# The values a config may name (the data stage implements one loader / level per value).
DATASETS = ("digits", "imagefolder", "cifar10", "synthetic")
SEVERITIES = ("clean", "mild", "moderate", "severe")


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


# sweep.callbacks: tracker -> the package it needs (checked before any compute; exit 2 if it is
# not installed). MLflow logs to RESULTS/mlruns and W&B offline to RESULTS/wandb: no server.
TRACKERS = {"tensorboard": "tensorboardX", "mlflow": "mlflow", "wandb": "wandb"}


@dataclass(frozen=True)
class SweepConfig:
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_failures: int = 1
    max_concurrent: int = 0              # 0 = as many as resources allow
    address: str | None = None           # Ray cluster; else RAY_ADDRESS; else a local one
    storage_path: str | None = None      # Tune state; default OUT/tune
    cascade_thresholds: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(10, 21))
    max_grid_trials: int = 5000          # refuse a grid with more trials (a typo guard)
    search: str = "grid"                 # grid | frontier: adaptive λ placement
                                         # (sweep/tuning/frontier_plan.py) | optuna: Tune's
                                         # OptunaSearch, multi-objective (one family)
    search_seed: int = 0                 # frontier: the first exploring seed; optuna: sampler
    early_stop_patience: int = 0         # stop a trial after this many reports without its
                                         # val objective improving (0: off;
                                         # sweep/tuning/stopping.py)
    early_stop_delta: float = 1e-3       # ... improving by more than this
    max_trials: int = 0                  # frontier: trials per family (0: its grid's size)
    coarse_lams: int = 4                 # frontier: λ values of the first, coarse pass
    replicate: bool = True               # frontier: the frontier's configurations on every seed
                                         # (false: each configuration on one seed, in turn)
    hv_tol: float = 1e-3                 # frontier: stop refining when the widest gap is <= this
                                         # share of the val frontier's hypervolume
    axes: dict = field(default_factory=dict)   # {"<section>.<field>": [values]}: more grid
                                         # axes (sweep/families/axes.py)
    callbacks: tuple[str, ...] = ()      # experiment trackers (TRACKERS) fed by Tune's own
                                         # logger callbacks: tensorboard, mlflow, wandb
    tune_verbose: int = 0                # Tune's console: 0 (default) off, routesweep's one
                                         # live line instead (sweep/console.py); 1 status
                                         # table + each trial's config and final result (what
                                         # --verbose turns on); 2 also every epoch's result


def section_types() -> dict[str, type]:
    """Every section of the config, in order: data, experts, the families', sweep."""
    return {"data": DataConfig, "experts": ExpertsConfig,
            **{f.section: f.config for f in families.families()}, "sweep": SweepConfig}


def _default_sections() -> dict:
    return {name: tp() for name, tp in section_types().items()}


@dataclass(frozen=True)
class Config:
    name: str = "default"
    device: str = "auto"                 # auto | cpu | cuda
    cache_dir: str = ".cache/routesweep"
    sections: dict = field(default_factory=_default_sections)   # name -> section dataclass

    def __getattr__(self, name: str):
        """cfg.data, cfg.gater, ...: the section of that name."""
        if name.startswith("__") or name == "sections":
            raise AttributeError(name)
        try:
            return self.sections[name]
        except KeyError:
            raise AttributeError(f"config has no section {name!r}") from None

    def with_sections(self, **changed) -> "Config":
        """A copy with some sections replaced, e.g. cfg.with_sections(gater=...)."""
        return dataclasses.replace(self, sections={**self.sections, **changed})


SCALARS = ("name", "device", "cache_dir")          # the top-level keys that are not sections


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
    """A section (or the whole Config) from a mapping; unknown keys / wrong types: UserError."""
    if cls is Config:
        return _config_from_dict(d)
    hints = typing.get_type_hints(cls)
    unknown = set(d) - set(hints)
    if unknown:
        where = f" in '{path}'" if path else ""
        raise UserError(f"unknown config key{where}: {sorted(unknown, key=str)[0]!r}; known: "
                        f"{', '.join(sorted(hints))}")
    kw = {k: _coerce(v, hints[k], f"{path}.{k}" if path else k) for k, v in d.items()}
    return cls(**kw)


def _config_from_dict(d: dict) -> Config:
    types_ = section_types()
    hints = {**{k: typing.get_type_hints(Config)[k] for k in SCALARS}, **types_}
    unknown = set(d) - set(hints)
    if unknown:
        raise UserError(f"unknown config key: {sorted(unknown, key=str)[0]!r}; known: "
                        f"{', '.join(sorted(hints))}")
    scalars = {k: _coerce(d[k], hints[k], k) for k in SCALARS if k in d}
    sections = {k: _coerce(d.get(k, {}), tp, k) for k, tp in types_.items()}
    return Config(**scalars, sections=sections)


def to_dict(cfg) -> dict:
    """name, device, cache_dir, then every section as a dict (the YAML / manifest shape)."""
    return {**{k: getattr(cfg, k) for k in SCALARS},
            **{k: dataclasses.asdict(v) for k, v in cfg.sections.items()}}


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


class RepeatedKey(yaml.constructor.ConstructorError):
    pass


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key repeated in one mapping (PyYAML keeps the last one) and
    reads `1e-4` as a float (YAML 1.1 needs `1.0e-4`; PyYAML would return the string)."""

    def construct_mapping(self, node, deep=False):
        first_line: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":      # `<<: *base` may be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:                   # unhashable key: SafeLoader reports it
                continue
            if key in first_line:
                raise RepeatedKey(None, None, f"key {key!r} on line {key_node.start_mark.line + 1}"
                                  f" repeats line {first_line[key]}", key_node.start_mark)
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def _yaml(text: str, where: str):
    """YAML text -> value; a syntax error or repeated key -> UserError naming `where`."""
    try:
        return yaml.load(text, Loader=StrictLoader)
    except RepeatedKey as e:
        raise UserError(f"{where}: {e.problem} (one value per key; the last one would silently "
                        f"win)") from None
    except yaml.MarkedYAMLError as e:
        mark = f" (line {e.problem_mark.line + 1})" if e.problem_mark else ""
        raise UserError(f"{where} is not valid YAML: {e.problem or e.context}{mark}") from None
    except yaml.YAMLError as e:
        raise UserError(f"{where} is not valid YAML: {str(e).splitlines()[0]}") from None


def read_config_file(path: str) -> dict:
    """A YAML config file -> its top-level mapping; anything else -> UserError naming it."""
    if not os.path.exists(path):
        raise UserError(f"config file '{path}' does not exist")
    if not os.path.isfile(path):
        raise UserError(f"config file '{path}' is not a file")
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"config file '{path}' is not valid UTF-8 text (byte {e.start}); "
                        f"save it as UTF-8") from None
    except OSError as e:
        raise UserError(f"config file '{path}' cannot be read: {e.strerror}") from None
    raw = _yaml(text, f"config file '{path}'")
    if raw is None or raw == {}:
        raise UserError(f"config file '{path}' is empty; give at least one key (or no --config)")
    if not isinstance(raw, dict):
        raise UserError(f"config file '{path}' must be a mapping of keys at the top level, "
                        f"got a {type(raw).__name__}")
    return raw


def read_config(path: str | None = None, overrides=()) -> Config:
    """Defaults <- YAML file <- `key=value` overrides (types checked, ranges not)."""
    raw: dict = read_config_file(path) if path else {}
    for item in overrides:
        if "=" not in item:
            raise UserError(f"--set expects key=value, got {item!r}")
        key, text = item.split("=", 1)
        _set_path(raw, key.strip(), _yaml(text, f"--set {key.strip()} value {text!r}"))
    return from_dict(Config, _merge(to_dict(Config()), raw))
