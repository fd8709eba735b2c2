"""Range and consistency checks on a Config, run before any compute (UserError -> exit 2).

Every field of every dataclass in sweep/config.py has one rule in RULES (a test holds the table
complete); each message names the key and the allowed range. Checks that span fields follow
(fractions, corruption levels, experts, resources, the grid's size), then `check_sizes` on the
loaded data (every class in the training split) before any training.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass

import numpy as np

from sweep.corruptions import SEVERITIES
from sweep.data import DATASETS
from sweep.errors import UserError

SEED_LIMIT = 2 ** 32          # numpy's SeedSequence and torch.manual_seed both take [0, 2**32)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ------------------------------------------------------------------ one rule per config field
@dataclass(frozen=True)
class Num:
    """A finite number in [lo, hi] ('(' / ')' where lo_open / hi_open); None when optional.
    int vs float is already enforced by the config's types."""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    optional: bool = False

    def ok(self, v) -> bool:
        if v is None:
            return self.optional
        if not _is_number(v) or not math.isfinite(v):
            return False
        return ((self.lo is None or (v > self.lo if self.lo_open else v >= self.lo)) and
                (self.hi is None or (v < self.hi if self.hi_open else v <= self.hi)))

    def allowed(self, v=None) -> str:
        """e.g. 'a finite number in (0, 1)'; 'an integer >= 1' when v is an int."""
        f = lambda x: str(int(x)) if float(x).is_integer() else f"{x:g}"
        if self.lo is not None and self.hi is not None:
            rng = (f" in {'(' if self.lo_open else '['}{f(self.lo)}, {f(self.hi)}"
                   f"{')' if self.hi_open else ']'}")
        elif self.lo is not None:
            rng = f" {'>' if self.lo_open else '>='} {f(self.lo)}"
        else:
            rng = ""
        what = "an integer" if _is_number(v) and isinstance(v, int) else "a finite number"
        return what + rng + (" or null" if self.optional else "")

    def check(self, key: str, v) -> None:
        _check(self.ok(v), f"{key} must be {self.allowed(v)}, got {v!r}")


@dataclass(frozen=True)
class Choice:
    options: tuple

    def ok(self, v) -> bool:
        return not isinstance(v, bool) and v in self.options

    def allowed(self, v=None) -> str:
        return "one of " + ", ".join(map(str, self.options))

    def check(self, key: str, v) -> None:
        _check(self.ok(v), f"{key} must be {self.allowed()}, got {v!r}")


@dataclass(frozen=True)
class Text:
    """A non-empty string (a name, path or address); None when optional."""
    optional: bool = False

    def check(self, key: str, v) -> None:
        ok = (v is None and self.optional) or (isinstance(v, str) and v.strip() != "")
        _check(ok, f"{key} must be a non-empty string{' or null' if self.optional else ''}, "
                   f"got {v!r}")


@dataclass(frozen=True)
class Flag:
    def check(self, key: str, v) -> None:
        _check(isinstance(v, bool), f"{key} must be true or false, got {v!r}")


@dataclass(frozen=True)
class Grid:
    """A list of values each passing `item`: non-empty unless `empty_ok`, no value twice (a
    repeated grid value repeats trials); None when optional."""
    item: Num | Choice
    empty_ok: bool = False
    optional: bool = False

    def check(self, key: str, values) -> None:
        if values is None and self.optional:
            return
        _check(isinstance(values, (list, tuple)), f"{key} must be a list, got {values!r}")
        _check(self.empty_ok or len(values) > 0, f"{key} is empty: give at least one value")
        for v in values:
            _check(self.item.ok(v), f"{key} has {v!r}: each value must be {self.item.allowed(v)}")
        for i, v in enumerate(values):
            _check(v not in values[:i], f"{key} has {v!r} twice: give each value once")


@dataclass(frozen=True)
class Later:
    """Checked by the named function below (the rule spans several fields or needs imports)."""
    where: str

    def check(self, key: str, v) -> None:
        pass


POS = Num(0, lo_open=True)                  # a finite number > 0 (rates, scales, times)
NONNEG = Num(0)
COUNT = Num(1)                              # integers >= 1 (epochs, sizes, repeats)
SEED = Num(0, SEED_LIMIT, hi_open=True)
FRACTION = Num(0, 1)                        # lam of the gater, thresholds on probabilities
SIZE = Num(8, 1024)                         # px: the store holds every image at it, x4 severities

RULES = {
    "name": Text(), "device": Choice(("auto", "cpu", "cuda")), "cache_dir": Text(),
    "data.name": Choice(DATASETS), "data.root": Later("validate_data"),
    "data.image_size": SIZE, "data.download": Flag(), "data.seed": SEED,
    "data.val_fraction": Num(0, 1, lo_open=True, hi_open=True),
    "data.test_fraction": Num(0, 1, hi_open=True),
    "data.synthetic_n": COUNT, "data.synthetic_classes": Num(2), "data.skip_corrupt": Flag(),
    "data.severities": Later("validate_data"), "data.levels": Later("validate_levels"),
    "experts.profile": Later("validate_experts"), "experts.specs": Later("validate_experts"),
    "experts.cost_source": Choice(("measured", "given")),
    "experts.given_latency_ms": Grid(POS, optional=True),   # repeats allowed: see below
    "experts.given_gater_ms": Num(0, lo_open=True, optional=True),
    "experts.latency_repeats": COUNT, "experts.max_epochs": Num(1, optional=True),
    "gater.enabled": Flag(), "gater.gater_size": SIZE, "gater.embed_dim": COUNT,
    "gater.trunk_pretrained": Flag(), "gater.lr": POS, "gater.batch_size": COUNT,
    "gater.epochs": COUNT, "gater.ce_scale": POS,
    "gater.eval_route": Choice(("argmax", "sampled")),
    "gater.precision": Choice(("fp32", "bf16")),
    "gater.lams": Grid(FRACTION), "gater.taus": Grid(POS), "gater.seeds": Grid(SEED),
    "exits.enabled": Flag(), "exits.width": COUNT, "exits.input_size": Num(8, 1024, optional=True),
    "exits.stem": Choice(("auto", "cifar", "imagenet")), "exits.epochs": COUNT,
    "exits.lr": POS, "exits.batch_size": COUNT, "exits.augment": Later("validate_exits"),
    "exits.train_on_corrupted": Flag(), "exits.head_hidden": COUNT, "exits.head_epochs": COUNT,
    "exits.exit_cost": Choice(("flops", "uniform")),
    "exits.lams": Grid(NONNEG), "exits.taus": Grid(POS), "exits.seeds": Grid(SEED),
    "exits.em_iters": COUNT, "exits.em_tol": NONNEG, "exits.router_hidden": COUNT,
    "exits.router_epochs": COUNT, "exits.router_lr": POS, "exits.router_batch_size": COUNT,
    "exits.thresholds": Grid(FRACTION), "exits.branchynet_thresholds": Grid(NONNEG),
    "sweep.cpus_per_trial": POS, "sweep.gpus_per_trial": Later("validate_sweep"),
    "sweep.max_failures": Num(-1), "sweep.max_concurrent": NONNEG,
    "sweep.address": Text(optional=True), "sweep.storage_path": Text(optional=True),
    "sweep.cascade_thresholds": Grid(FRACTION), "sweep.tune_verbose": Choice((0, 1, 2)),
    "sweep.max_grid_trials": COUNT,
}


def config_fields(cfg, prefix: str = ""):
    """-> [(dotted key, value)] of every leaf field of the Config (sections flattened)."""
    out = []
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        out += config_fields(v, key + ".") if dataclasses.is_dataclass(v) else [(key, v)]
    return out


def check_fields(cfg) -> None:
    for key, v in config_fields(cfg):
        RULES[key].check(key, v)          # KeyError: a new field needs its rule in RULES


# ------------------------------------------------------------------ checks across fields
def validate_levels(d) -> None:
    """data.levels: null, or {severity: {blur: sigma_px >= 0, noise: std >= 0}} for every
    corrupted severity in data.severities."""
    if d.levels is None:
        return
    _check(isinstance(d.levels, dict), f"data.levels must be a mapping or null, got {d.levels!r}")
    extra = sorted(set(d.levels) - set(SEVERITIES[1:]), key=str)
    _check(not extra, f"data.levels has an unknown severity {extra[:1]}; use "
                      f"{', '.join(SEVERITIES[1:])}")
    for s in d.severities[1:]:
        lv = d.levels.get(s)
        _check(isinstance(lv, dict) and set(lv) == {"blur", "noise"},
               f"data.levels.{s} must be {{blur: sigma_px, noise: std}}, got {lv!r}")
        for k in ("blur", "noise"):
            NONNEG.check(f"data.levels.{s}.{k}", lv[k])


def validate_data(d) -> None:
    _check(d.val_fraction + d.test_fraction < 1,
           f"data.val_fraction + data.test_fraction must be < 1 (the rest trains), got "
           f"{d.val_fraction:g} + {d.test_fraction:g}")
    _check(len(d.severities) > 0 and d.severities[0] == "clean" and
           all(s in SEVERITIES for s in d.severities) and len(set(d.severities)) == len(d.severities),
           f"data.severities must start with 'clean' and use {', '.join(SEVERITIES)} once each")
    validate_levels(d)
    if d.name in ("imagefolder", "cifar10") and not (d.name == "cifar10" and d.download):
        _check(bool(d.root) and os.path.isdir(d.root),
               f"data path '{d.root}' does not exist; set data.root to the {d.name} folder")


def validate_experts(cfg) -> None:
    from trainers.experts import PROFILES, check_arch, spec_from_dict
    ex = cfg.experts
    _check(bool(ex.specs) or ex.profile in PROFILES,
           f"unknown expert profile '{ex.profile}'; choose one of {', '.join(PROFILES)}")
    from sweep.features import resolved_expert_dicts
    dicts = resolved_expert_dicts(cfg)
    specs = [spec_from_dict(d) for d in dicts]
    _check(len(specs) >= 2, "the gater needs at least two experts")
    for d, s in zip(dicts, specs):
        check_arch(s.arch)
        for k, v in d.items():            # spec_from_dict checks ranges; NaN / inf slip past it
            _check(not (_is_number(v) and not math.isfinite(v)),
                   f"expert '{s.name}': {k} must be a finite number, got {v!r}")
    names = [s.name for s in specs]
    dup = next((n for i, n in enumerate(names) if n in names[:i]), None)
    _check(dup is None, f"experts.specs has the name '{dup}' twice: each expert needs its own "
                        f"name (costs and accuracies are keyed by it)")
    if ex.cost_source == "given":
        lat = ex.given_latency_ms
        _check(lat is not None and len(lat) == len(specs),
               f"experts.given_latency_ms needs {len(specs)} values (one per expert), got "
               f"{0 if lat is None else len(lat)}")


def validate_exits(e) -> None:
    from trainers.multiexit import AUGMENTATIONS
    Grid(Choice(AUGMENTATIONS), empty_ok=True).check("exits.augment", e.augment)


def validate_sweep(sw) -> None:
    # Ray: a fraction of a GPU is up to 1; more than one GPU must be a whole number
    g = sw.gpus_per_trial
    _check(NONNEG.ok(g) and (g <= 1 or float(g).is_integer()),
           f"sweep.gpus_per_trial must be a finite number in [0, 1] or a whole number, got {g!r}")


def grid_trials(cfg) -> dict[str, int]:
    """Trials per enabled family: the product of its grid (lams x taus x seeds)."""
    return {name: len(sec.lams) * len(sec.taus) * len(sec.seeds)
            for name, sec in (("gater", cfg.gater), ("exits", cfg.exits)) if sec.enabled}


def validate_grid(cfg) -> None:
    per, cap = grid_trials(cfg), cfg.sweep.max_grid_trials
    n = sum(per.values())
    parts = " + ".join(f"{k} {v}" for k, v in per.items())
    _check(n <= cap, f"the grid has {n} trials ({parts}; lams x taus x seeds), more than "
                     f"sweep.max_grid_trials={cap}; shrink the grid or raise "
                     f"sweep.max_grid_trials")


def validate(cfg) -> None:
    check_fields(cfg)
    _check(cfg.gater.enabled or cfg.exits.enabled, "both families are disabled: nothing to sweep")
    validate_data(cfg.data)
    if cfg.gater.enabled:
        validate_experts(cfg)
    if cfg.exits.enabled:
        validate_exits(cfg.exits)
    validate_sweep(cfg.sweep)
    validate_grid(cfg)


def preflight(cfg) -> None:
    """Checks that need more than the config's own values but no compute: expert checkpoints
    load as state dicts that fit their architecture, pretrained weights are reachable.
    Run by `python -m sweep.run` before anything is written."""
    if not cfg.gater.enabled:
        return
    if cfg.gater.trunk_pretrained:
        from trainers.gater import pretrained_trunk_state
        pretrained_trunk_state()                # cached or downloadable; raises UserError
    from sweep.features import resolved_expert_dicts
    from trainers.experts import build_expert, spec_from_dict
    for d in resolved_expert_dicts(cfg):
        spec = spec_from_dict(d)
        if spec.checkpoint or spec.pretrained:
            build_expert(spec, num_classes=2)   # head is replaced anyway; raises UserError


# ------------------------------------------------------------------ after the data loads
def check_classes(splits) -> None:
    """Every class of the dataset's class list must be in the training split: a class no
    training image shows can never be predicted (and its labels index past a smaller head)."""
    names, ncls = splits["train"].class_names, splits["train"].num_classes
    _check(ncls >= 2, f"the dataset has {ncls} class(es) {list(names)}; "
                            f"routing needs at least 2")
    for split, s in splits.items():
        bad = s.labels[(s.labels < 0) | (s.labels >= ncls)]
        _check(len(bad) == 0, f"the {split} split has label {bad[:1].tolist()} outside the "
                              f"{ncls} classes {list(names)}")
    counts = {k: np.bincount(s.labels, minlength=ncls) for k, s in splits.items()}
    missing = [c for c in range(ncls) if counts["train"][c] == 0]
    if missing:
        c = missing[0]
        where = ", ".join(f"{k} {int(v[c])}" for k, v in counts.items())
        raise UserError(f"class '{names[c]}' has no image in the training split ({where}"
                        f"{f'; {len(missing)} such classes' if len(missing) > 1 else ''}); "
                        f"add images of it, change data.seed or data.val_fraction, or drop it")


def check_sizes(cfg, splits) -> None:
    """After loading, before any training: the training split holds at least one batch and
    every class; val and test are not empty."""
    batch = max(cfg.gater.batch_size if cfg.gater.enabled else 1,
                cfg.exits.batch_size if cfg.exits.enabled else 1)
    n = len(splits["train"].labels)
    _check(n >= batch, f"the training split has {n} images, fewer than one batch ({batch}); "
                       f"use more data or a smaller batch_size")
    check_classes(splits)
    for name in ("val", "test"):
        _check(len(splits[name].labels) > 0, f"the {name} split is empty; use more data or "
                                             f"change data.{name}_fraction")
