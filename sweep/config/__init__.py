"""The config stage: the run's Config (schema.py), its checks (validate.py), its experts.

    cfg = load_config("configs/paper_gater_intel.yaml", overrides=["gater.lams=[0.7,1.0]"])
"""
from sweep.config.schema import (DATASETS, SEVERITIES, Config, DataConfig, ExpertsConfig,
                                 SweepConfig, from_dict, read_config, section_types, to_dict)
from sweep.config.validate import check_sizes, preflight, validate


def load_config(path: str | None = None, overrides=()) -> Config:
    """Defaults <- YAML file <- `key=value` overrides; returns a validated Config (else
    UserError: unknown keys, wrong types, values out of range)."""
    cfg = read_config(path, overrides)
    validate(cfg)
    return cfg


__all__ = ["DATASETS", "SEVERITIES", "Config", "DataConfig", "ExpertsConfig", "SweepConfig",
           "check_sizes", "from_dict", "load_config", "preflight", "read_config",
           "section_types", "to_dict", "validate"]
