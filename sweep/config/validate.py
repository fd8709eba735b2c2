"""Range and consistency checks on a Config, run before any compute (UserError -> exit 2)."""
from __future__ import annotations

import os

from sweep.data.corruptions import SEVERITIES
from sweep.data.datasets import DATASETS
from sweep.errors import UserError


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def _grid(name: str, values, lo=None, hi=None, positive=False) -> None:
    _check(len(values) > 0, f"{name} is empty: give at least one value")
    for v in values:
        _check(lo is None or v >= lo, f"{name} has {v}: values must be >= {lo}")
        _check(hi is None or v <= hi, f"{name} has {v}: values must be <= {hi}")
        _check(not positive or v > 0, f"{name} has {v}: values must be > 0")


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
    from trainers.experts import PROFILES, check_arch, spec_from_dict
    ex = cfg.experts
    _check(bool(ex.specs) or ex.profile in PROFILES,
           f"unknown expert profile '{ex.profile}'; choose one of {', '.join(PROFILES)}")
    from sweep.store.build import resolved_expert_dicts
    specs = [spec_from_dict(d) for d in resolved_expert_dicts(cfg)]
    _check(len(specs) >= 2, "the gater needs at least two experts")
    for s in specs:
        check_arch(s.arch)
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


def validate_gater(g) -> None:
    _grid("gater.lams", g.lams, 0.0, 1.0)
    _grid("gater.taus", g.taus, positive=True)
    _grid("gater.seeds", g.seeds)
    _check(g.lr > 0 and g.batch_size >= 1 and g.epochs >= 1 and g.ce_scale > 0,
           "gater.lr, batch_size, epochs and ce_scale must be positive")
    _check(g.gater_size >= 8, f"gater.gater_size must be >= 8, got {g.gater_size}")
    _check(g.eval_route in ("argmax", "sampled"), "gater.eval_route must be argmax or sampled")
    _check(g.precision in ("fp32", "bf16"), "gater.precision must be fp32 or bf16")


def validate_exits(e) -> None:
    _grid("exits.lams", e.lams, lo=0.0)
    _grid("exits.taus", e.taus, positive=True)
    _grid("exits.seeds", e.seeds)
    _grid("exits.thresholds", e.thresholds, 0.0, 1.0)
    _grid("exits.branchynet_thresholds", e.branchynet_thresholds, lo=0.0)
    _check(e.em_iters >= 1, f"exits.em_iters must be >= 1, got {e.em_iters}")
    _check(e.exit_cost in ("flops", "uniform"), "exits.exit_cost must be 'flops' or 'uniform'")
    _check(e.stem in ("auto", "cifar", "imagenet"), "exits.stem must be auto, cifar or imagenet")
    _check(e.width >= 1 and e.epochs >= 1 and e.head_epochs >= 1 and e.router_epochs >= 1,
           "exits.width, epochs, head_epochs and router_epochs must be >= 1")


def validate(cfg) -> None:
    _check(cfg.gater.enabled or cfg.exits.enabled, "both families are disabled: nothing to sweep")
    _check(cfg.device in ("auto", "cpu", "cuda"), "device must be auto, cpu or cuda")
    validate_data(cfg.data)
    if cfg.gater.enabled:
        validate_experts(cfg)
        validate_gater(cfg.gater)
    if cfg.exits.enabled:
        validate_exits(cfg.exits)
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
    if not cfg.gater.enabled:
        return
    if cfg.gater.trunk_pretrained:
        from trainers.gater import pretrained_trunk_state
        pretrained_trunk_state()                # cached or downloadable; raises UserError
    from sweep.store.build import resolved_expert_dicts
    from trainers.experts import build_expert, spec_from_dict
    for d in resolved_expert_dicts(cfg):
        spec = spec_from_dict(d)
        if spec.checkpoint or spec.pretrained:
            build_expert(spec, num_classes=2)   # head is replaced anyway; raises UserError


def check_sizes(cfg, splits) -> None:
    """After loading: every split must hold at least one batch and every class of test."""
    batch = max(cfg.gater.batch_size if cfg.gater.enabled else 1,
                cfg.exits.batch_size if cfg.exits.enabled else 1)
    n = len(splits["train"].labels)
    _check(n >= batch, f"the training split has {n} images, fewer than one batch ({batch}); "
                       f"use more data or a smaller batch_size")
    for name in ("val", "test"):
        _check(len(splits[name].labels) > 0, f"the {name} split is empty; use more data or "
                                             f"change data.{name}_fraction")
