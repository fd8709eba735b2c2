"""Range and consistency checks on a Config, run before any compute (UserError -> exit 2).

Each family's own section is checked by its registry entry: `Family.check_grid` (λ, τ, seeds:
the one grid validator) and `Family.check` (its other keys).
"""
from __future__ import annotations

import os

from sweep import families
from sweep.config.experts import resolved_expert_dicts
from sweep.config.schema import DATASETS, SEVERITIES
from sweep.errors import check_values as _grid
from sweep.errors import require as _check
from sweep.errors import user_errors
from trainers.experts import PROFILES, build_expert, check_arch, spec_from_dict


def validate_data(d) -> None:
    _check(d.name in DATASETS, f"unknown dataset '{d.name}'; choose one of {', '.join(DATASETS)}")
    _check(d.image_size >= 8, f"data.image_size must be >= 8, got {d.image_size}")
    _check(0 < d.val_fraction < 1 and 0 <= d.test_fraction < 1 and
           d.val_fraction + d.test_fraction < 1, "data.val_fraction + data.test_fraction must be < 1")
    _check(len(d.severities) > 0 and d.severities[0] == "clean" and
           all(s in SEVERITIES for s in d.severities) and len(set(d.severities)) == len(d.severities),
           f"data.severities must start with 'clean' and use {', '.join(SEVERITIES)} once each")
    if d.name in ("imagefolder", "cifar10") and not (d.name == "cifar10" and d.download):
        _check(bool(d.root) and os.path.isdir(d.root),
               f"data path '{d.root}' does not exist; set data.root to the {d.name} folder")
    if d.levels is not None:
        for s in d.severities[1:]:
            lv = d.levels.get(s)
            _check(isinstance(lv, dict) and all(isinstance(lv.get(k), (int, float)) and lv[k] >= 0
                                                for k in ("blur", "noise")),
                   f"data.levels.{s} must be {{blur: sigma >= 0, noise: std >= 0}}")


def validate_experts(cfg) -> None:
    """The `experts` section (checked when an enabled family reads the store's experts part)."""
    ex = cfg.experts
    _check(bool(ex.specs) or ex.profile in PROFILES,
           f"unknown expert profile '{ex.profile}'; choose one of {', '.join(PROFILES)}")
    with user_errors():
        specs = [spec_from_dict(d) for d in resolved_expert_dicts(cfg)]
        for s in specs:
            check_arch(s.arch)
    _check(len(specs) >= 2, "routing needs at least two experts")
    _check(ex.cost_source in ("measured", "given"),
           f"experts.cost_source must be 'measured' or 'given', got '{ex.cost_source}'")
    if ex.cost_source == "given":
        lat = ex.given_latency_ms
        _check(lat is not None and len(lat) == len(specs),
               f"experts.given_latency_ms needs {len(specs)} values (one per expert), got "
               f"{0 if lat is None else len(lat)}")
        _check(all(v > 0 for v in lat), "experts.given_latency_ms values must be > 0")
        _check(ex.given_gater_ms is None or ex.given_gater_ms > 0,
               "experts.given_gater_ms must be > 0")
    _check(ex.latency_repeats >= 1, "experts.latency_repeats must be >= 1")


def _reads_experts(cfg) -> bool:
    return any(f.store_part == "experts" for f in families.enabled(cfg))


def validate(cfg) -> None:
    on = families.enabled(cfg)
    _check(bool(on), "every family is disabled (" + ", ".join(
        f"{f.section}.enabled" for f in families.families()) + "): nothing to sweep")
    _check(cfg.device in ("auto", "cpu", "cuda"), "device must be auto, cpu or cuda")
    validate_data(cfg.data)
    if _reads_experts(cfg):
        validate_experts(cfg)
    for f in on:
        f.check_grid(f.section_of(cfg))
        f.check(f.section_of(cfg))
    sw = cfg.sweep
    _check(sw.cpus_per_trial > 0 and sw.gpus_per_trial >= 0,
           "sweep.cpus_per_trial must be > 0 and sweep.gpus_per_trial >= 0")
    _check(sw.max_failures >= -1, "sweep.max_failures must be >= -1 (-1 = retry forever)")
    _check(sw.tune_verbose in (0, 1, 2), "sweep.tune_verbose must be 0, 1 or 2")
    _grid("sweep.cascade_thresholds", sw.cascade_thresholds, 0.0, 1.0)


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


def check_sizes(cfg, splits) -> None:
    """After loading: the training split must hold one batch of every family that trains on
    it (its section's `batch_size`), val and test at least one image."""
    batch = max([getattr(f.section_of(cfg), "batch_size", 1) for f in families.enabled(cfg)]
                + [1])
    n = len(splits["train"].labels)
    _check(n >= batch, f"the training split has {n} images, fewer than one batch ({batch}); "
                       f"use more data or a smaller batch_size")
    for name in ("val", "test"):
        _check(len(splits[name].labels) > 0, f"the {name} split is empty; use more data or "
                                             f"change data.{name}_fraction")
