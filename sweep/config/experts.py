"""The experts a config asks for: the profile's specs or `experts.specs`, epochs capped by
`experts.max_epochs`, as plain dicts (what the store builds, keys on and validates)."""
from __future__ import annotations

from trainers.experts import PROFILES, spec_to_dict


def resolved_expert_dicts(cfg) -> list[dict]:
    if cfg.experts.specs:
        dicts = [dict(s) for s in cfg.experts.specs]
    else:
        dicts = [spec_to_dict(s) for s in PROFILES[cfg.experts.profile]]
    cap = cfg.experts.max_epochs
    return [{**d, "epochs": min(d["epochs"], cap)} if cap and "epochs" in d else d for d in dicts]
