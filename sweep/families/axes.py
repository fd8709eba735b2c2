"""`sweep.axes`: any trial setting of a family as one more sweep axis, beside λ × τ × seed.

    sweep:
      axes:
        gater.lr: [1.0e-4, 3.0e-4]        # dotted key: <family section>.<field>
        gater.embed_dim: [64, 128]

(`--set sweep.axes.gater.lr=[1e-4,3e-4]` gives the same, nested.) A key names a field in an
enabled family's `Family.axes`: the fields its trials read from their settings (not the ones
that shape the feature store, nor the grid's own λ / τ / seed). Every combination of a family's
axes multiplies its grid; a point carries its combination as `point["axes"]` ({dotted key:
value}), its trial gets the family's settings computed from the config with those values, and
its rows carry one column per axis (named by the dotted key) and the combination in `variant`
("lr=0.0001 embed_dim=128"), so every table and figure keeps the settings apart.
"""
from __future__ import annotations

import dataclasses
import itertools


def flat(axes: dict, prefix: str = "") -> dict:
    """{"gater": {"lr": [...]}} or {"gater.lr": [...]} -> {"gater.lr": [...]}, in order."""
    out = {}
    for key, value in (axes or {}).items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat(value, path + "."))
        else:
            out[path] = value
    return out


def of_section(axes: dict, section: str) -> dict:
    """{field: values} of one section's axes, in the order given."""
    return {k.split(".", 1)[1]: v for k, v in flat(axes).items()
            if k.split(".", 1)[0] == section and "." in k}


def combos(axes: dict, section: str) -> list[dict]:
    """Every combination of a section's axes as {dotted key: value} ([{}]: no axes); the
    first axis varies slowest."""
    own = of_section(axes, section)
    keys = [f"{section}.{f}" for f in own]
    return [dict(zip(keys, values)) for values in itertools.product(*own.values())]


def apply(cfg, combo: dict):
    """`cfg` with the combination's values in their sections (a new Config)."""
    changed = {}
    for key, value in combo.items():
        section, name = key.split(".", 1)
        base = changed.get(section, getattr(cfg, section))
        changed[section] = dataclasses.replace(base, **{name: value})
    return cfg.with_sections(**changed) if changed else cfg


def label(combo: dict) -> str:
    """'lr=0.0001 embed_dim=128': the combination as a row's variant (field names only)."""
    return " ".join(f"{k.split('.', 1)[1]}={v:g}" if isinstance(v, float) else
                    f"{k.split('.', 1)[1]}={v}" for k, v in combo.items())

