"""Range and consistency checks on a Config, run before any compute (UserError -> exit 2).

Every field of the config has one rule (sweep/rules.py; a test holds the table complete): the
fixed sections' rules are `RULES` below, each family's section brings its own
(`Family.section_rules`: the λ / τ / seed grids -- the one validator of λ and τ -- and its other
keys). Each message names the key and the allowed range. Checks that span fields follow
(fractions, corruption levels, experts, resources, the grid's size), then `check_sizes` on the
loaded data (every class in the training split) before any training.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import os

import numpy as np

from sweep import families
from sweep.families import axes as AX
from sweep.config.experts import resolved_expert_dicts
from sweep.config.schema import DATASETS, SCALARS, SEVERITIES, TRACKERS
from sweep.errors import UserError, user_errors
from sweep.errors import require as _check
from sweep.rules import (COUNT, FRACTION, NONNEG, POS, SEED, SIZE, Choice, Flag, Grid, Later,
                         Num, Text, is_number)
from trainers.experts import PROFILES, build_expert, check_arch, spec_from_dict

# ------------------------------------------------------------------ one rule per config field
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
    "sweep.cpus_per_trial": POS, "sweep.gpus_per_trial": Later("validate_sweep"),
    "sweep.max_failures": Num(-1), "sweep.max_concurrent": NONNEG,
    "sweep.address": Text(optional=True), "sweep.storage_path": Text(optional=True),
    "sweep.cascade_thresholds": Grid(FRACTION), "sweep.tune_verbose": Choice((0, 1, 2)),
    "sweep.max_grid_trials": COUNT, "sweep.axes": Later("validate_axes"),
    "sweep.search": Choice(("grid", "frontier", "optuna")), "sweep.max_trials": NONNEG,
    "sweep.search_seed": SEED,
    "sweep.early_stop_patience": NONNEG, "sweep.early_stop_delta": NONNEG,
    "sweep.coarse_lams": Num(2), "sweep.hv_tol": FRACTION, "sweep.replicate": Flag(),
    "sweep.callbacks": Grid(Choice(tuple(TRACKERS)), empty_ok=True),
}


def rules() -> dict:
    """{dotted key: rule} of every config field: RULES and every registered family's section."""
    return {**RULES, **{f"{f.section}.{k}": r for f in families.families()
                        for k, r in f.section_rules().items()}}


def config_fields(cfg) -> list[tuple[str, object]]:
    """-> [(dotted key, value)] of every leaf field of the Config (sections flattened)."""
    out = [(k, getattr(cfg, k)) for k in SCALARS]
    for name, sec in cfg.sections.items():
        out += [(f"{name}.{f.name}", getattr(sec, f.name)) for f in dataclasses.fields(sec)]
    return out


def check_fields(cfg) -> None:
    table = rules()
    for key, v in config_fields(cfg):
        table[key].check(key, v)          # KeyError: a new field needs its rule


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
    """The `experts` section (checked when an enabled family reads the store's experts part)."""
    ex = cfg.experts
    _check(bool(ex.specs) or ex.profile in PROFILES,
           f"unknown expert profile '{ex.profile}'; choose one of {', '.join(PROFILES)}")
    dicts = resolved_expert_dicts(cfg)
    with user_errors():
        specs = [spec_from_dict(d) for d in dicts]
        for s in specs:
            check_arch(s.arch)
    _check(len(specs) >= 2, "routing needs at least two experts")
    for d, s in zip(dicts, specs):
        for k, v in d.items():            # spec_from_dict checks ranges; NaN / inf slip past it
            _check(not (is_number(v) and not math.isfinite(v)),
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


def validate_axes(cfg) -> None:
    """sweep.axes: each key an axis field (Family.axes) of an enabled family's section, each
    value list non-empty, without repeats, every value passing that field's rule."""
    by_section = {f.section: f for f in families.enabled(cfg)}
    for key, values in AX.flat(cfg.sweep.axes).items():
        section, _, name = key.partition(".")
        fam = by_section.get(section)
        _check(fam is not None and name in fam.axes,
               f"sweep.axes has {key!r}: an axis must be one of " + ", ".join(
                   f"{f.section}.{a}" for f in by_section.values() for a in f.axes))
        Grid(fam.rules[name]).check(f"sweep.axes.{key}", values)


def validate_trackers(sw) -> None:
    """Each tracker in sweep.callbacks needs its package (TRACKERS), found without importing."""
    for name in sw.callbacks:
        _check(importlib.util.find_spec(TRACKERS[name]) is not None,
               f"sweep.callbacks has {name!r} but its package {TRACKERS[name]!r} is not "
               f"installed (pip install {TRACKERS[name]})")


def validate_search(cfg) -> None:
    """sweep.search: optuna needs optuna installed and exactly one enabled family (its two
    objectives, val accuracy and val cost, are in that family's unit)."""
    if cfg.sweep.search != "optuna":
        return
    _check(importlib.util.find_spec("optuna") is not None,
           "sweep.search is 'optuna' but optuna is not installed (pip install optuna)")
    on = [f.section for f in families.enabled(cfg)]
    _check(len(on) == 1, f"sweep.search 'optuna' searches one family at a time; enabled: "
                         f"{', '.join(on)} (disable all but one, e.g. --set {on[-1]}.enabled=false)")


def validate_sweep(sw) -> None:
    # Ray: a fraction of a GPU is up to 1; more than one GPU must be a whole number
    g = sw.gpus_per_trial
    _check(NONNEG.ok(g) and (g <= 1 or float(g).is_integer()),
           f"sweep.gpus_per_trial must be a finite number in [0, 1] or a whole number, got {g!r}")


def grid_trials(cfg) -> dict[str, int]:
    """Trials per enabled family's section: the size of its grid (lams x taus x seeds)."""
    return {f.section: len(f.grid(cfg)) for f in families.enabled(cfg)}


def validate_grid(cfg) -> None:
    per, cap = grid_trials(cfg), cfg.sweep.max_grid_trials
    n = sum(per.values())
    parts = " + ".join(f"{k} {v}" for k, v in per.items())
    _check(n <= cap, f"the grid has {n} trials ({parts}; lams x taus x seeds), more than "
                     f"sweep.max_grid_trials={cap}; shrink the grid or raise "
                     f"sweep.max_grid_trials")


def _reads_experts(cfg) -> bool:
    return any(f.store_part == "experts" for f in families.enabled(cfg))


def validate(cfg) -> None:
    check_fields(cfg)
    _check(bool(families.enabled(cfg)), "every family is disabled (" + ", ".join(
        f"{f.section}.enabled" for f in families.families()) + "): nothing to sweep")
    validate_data(cfg.data)
    if _reads_experts(cfg):
        validate_experts(cfg)
    for f in families.enabled(cfg):
        f.check(f.section_of(cfg))
    validate_sweep(cfg.sweep)
    validate_axes(cfg)
    validate_search(cfg)
    validate_trackers(cfg.sweep)
    validate_grid(cfg)


def preflight(cfg) -> None:
    """Checks that need more than the config's own values but no compute: expert checkpoints
    load as state dicts that fit their architecture, pretrained weights are reachable.
    Run by `python -m sweep.run` before anything is written."""
    for f in families.enabled(cfg):
        f.preflight(cfg)
    if not _reads_experts(cfg):
        return
    for d in resolved_expert_dicts(cfg):
        with user_errors():
            spec = spec_from_dict(d)
            if spec.checkpoint or spec.pretrained:
                build_expert(spec, num_classes=2)   # head is replaced anyway


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
    """After loading, before any training: the training split holds one batch of every family
    that trains on it (its section's `batch_size`) and every class; val and test are not
    empty."""
    batch = max([getattr(f.section_of(cfg), "batch_size", 1) for f in families.enabled(cfg)]
                + [1])
    n = len(splits["train"].labels)
    _check(n >= batch, f"the training split has {n} images, fewer than one batch ({batch}); "
                       f"use more data or a smaller batch_size")
    check_classes(splits)
    for name in ("val", "test"):
        _check(len(splits[name].labels) > 0, f"the {name} split is empty; use more data or "
                                             f"change data.{name}_fraction")
