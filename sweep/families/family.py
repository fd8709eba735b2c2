"""The family registry: one `Family` entry per router family; every stage dispatches through it.

A family is everything the stages need to know about one kind of router:

    stage    what the entry gives it
    config   `section` + `config` (its dataclass), `rules` (one per field of it, the λ range
             included: `section_rules`), `check` (checks across its fields)
    store    `store_part`: the feature-store part its trials read (`parts`: more, by config)
    tuning   `settings` (what a trial gets besides the store) and `trial` (the trial itself)
    tables   `costs`, `assemble` (decisions + baselines -> rows), `method(s)`, `cost_unit`
    report   `words`: what λ and τ weigh in this family (manifest.json "families")

The built-in families (sweep/families/gater.py, em.py) register themselves when this package
is imported; another one is added with `register(Family(...))` (docs/architecture.md). Entries
hold plain functions of plain values: no family reads another's section, no stage names a family.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

from sweep.families import axes as AX
from sweep.rules import POS, SEED, Flag, Grid, Num

# Keys of the config that are not family sections (a family may not take them).
RESERVED = ("name", "device", "cache_dir", "data", "experts", "sweep")


@dataclass(frozen=True)
class Words:
    """How the report names a family's grid axes: what its λ and τ weigh."""
    lam: str                    # e.g. "λ (weight on classification)"
    tau: str                    # e.g. "τ (Gumbel temperature)"
    title: str = ""             # the report's section title ("" -> "Family: <name>")


def _nothing(*args) -> None:
    return None


def _no_extras(cfg) -> dict:
    return {}


def _one_variant(cfg) -> tuple:
    return (None,)


def _no_parts(cfg) -> tuple:
    return ()


@dataclass(frozen=True)
class Family:
    name: str                   # the `family` column of the tables, e.g. "experts"
    section: str                # its config section (a top-level key), e.g. "gater"
    config: type                # that section: a frozen dataclass with enabled, lams, taus, seeds
    method: str                 # the `method` of its trials' rows, e.g. "gater"
    cost_unit: str              # the `cost_unit` of its rows, e.g. "ms"
    words: Words
    store_part: str             # the feature-store part its trials read: "experts" | "exits"
    costs: Callable             # (cfg, store meta) -> {name: plain numbers} its trials and rows use
    settings: Callable          # (cfg, costs) -> dict: what each trial gets besides the store
    trial: Callable             # (point, settings, store, session) -> None (sweep/tuning/trials.py)
    assemble: Callable          # (family, tables, store, trials, costs, cfg) -> None: add rows
    methods: tuple = ()         # every other `method` its rows use (baselines), for the manifest
    lam_range: tuple = (0.0, None)   # (lo, hi) of λ; None = unbounded. τ is always > 0
    rules: dict = field(default_factory=dict)   # its section's other fields -> a rule
                                                # (sweep/rules.py): every field has one
    check: Callable = _nothing       # (section) -> None: checks across its fields (UserError)
    preflight: Callable = _nothing   # (cfg) -> None: checks reading files or the network
    extras: Callable = _no_extras    # (cfg) -> {key: arrays} shipped to trials with the store
    cost_manifest: Callable | None = None   # (cfg, meta, costs) -> manifest["costs"] entries
    parts: Callable = _no_parts         # (cfg) -> store parts its trials read besides
                                        # store_part (e.g. the gater's frozen-trunk activations)
    variants: Callable = _one_variant   # (cfg) -> variants its grid sweeps (None = the method
                                        # as is); a point's "variant" is its rows' `variant`
    axes: tuple = ()                    # fields of its section `sweep.axes` may sweep: those
                                        # its trials read from `settings` (sweep/families/axes.py)

    def section_of(self, cfg):
        return getattr(cfg, self.section)

    def enabled(self, cfg) -> bool:
        return bool(self.section_of(cfg).enabled)

    def section_rules(self) -> dict:
        """{field: rule} for every field of its section. THE λ / τ / seed grid rules: λ within
        `lam_range`, τ > 0, seeds usable by numpy and torch; none empty, no value twice."""
        lo, hi = self.lam_range
        return {"enabled": Flag(), "lams": Grid(Num(lo, hi)), "taus": Grid(POS),
                "seeds": Grid(SEED), **self.rules}

    def grid(self, cfg) -> list[dict]:
        """Its grid points {family, lam, tau, seed} (+ "variant" where `variants` names one,
        + "axes" {dotted key: value} where `sweep.axes` sweeps its fields), λ fastest, then τ,
        then seed, then variant, then the axes' combination."""
        sec = self.section_of(cfg)
        return [{"family": self.name, "lam": float(lam), "tau": float(tau), "seed": int(seed),
                 **({} if v is None else {"variant": v}), **({"axes": c} if c else {})}
                for c in AX.combos(cfg.sweep.axes, self.section) for v in self.variants(cfg)
                for seed in sec.seeds for tau in sec.taus for lam in sec.lams]

    def describe(self) -> dict:
        """The family as manifest.json records it (and analysis/ reads it)."""
        return {"section": self.section, "method": self.method,
                "methods": [self.method, *self.methods], "cost_unit": self.cost_unit,
                "store_part": self.store_part, "lam": self.words.lam, "tau": self.words.tau,
                "title": self.words.title or f"Family: {self.name}"}


_REGISTRY: dict[str, Family] = {}


GRID_FIELDS = ("enabled", "lams", "taus", "seeds")   # every family section has these


def register(family: Family) -> Family:
    """Add a family (its section becomes a config key); names and sections must be new, and
    its section needs the grid fields and a rule for each of its fields (ValueError)."""
    fields = [f.name for f in dataclasses.fields(family.config)]
    lacking = [k for k in GRID_FIELDS if k not in fields]
    if lacking:
        raise ValueError(f"family {family.name!r}: its section {family.config.__name__} lacks "
                         f"{', '.join(lacking)}")
    ruled = family.section_rules()
    unruled = [k for k in fields if k not in ruled]
    if unruled:
        raise ValueError(f"family {family.name!r}: no rule for {family.section}.{unruled[0]} "
                         f"(give one in Family.rules, from sweep/rules.py)")
    for f in _REGISTRY.values():
        if family.name in (f.name, f.section) or family.section in (f.name, f.section):
            raise ValueError(f"family {family.name!r} / section {family.section!r} is taken "
                             f"by family {f.name!r}")
    if family.section in RESERVED:
        raise ValueError(f"family section {family.section!r} is a reserved config key")
    _REGISTRY[family.name] = family
    return family


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def families() -> list[Family]:
    """Every registered family, in registration order (the built-ins first)."""
    return list(_REGISTRY.values())


def get(name: str) -> Family:
    return _REGISTRY[name]


def enabled(cfg) -> list[Family]:
    """The families the config sweeps, in registration order."""
    return [f for f in _REGISTRY.values() if f.enabled(cfg)]


def resolve_costs(cfg, meta: dict) -> dict:
    """{family name: its costs} for the enabled families, from the store's meta."""
    return {f.name: f.costs(cfg, meta) for f in enabled(cfg)}
