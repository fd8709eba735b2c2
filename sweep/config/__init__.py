"""The run configuration (see sweep/config/schema.py)."""
from sweep.config.schema import (Config, DataConfig, ExitsConfig, ExpertsConfig, GaterConfig,
                                 SweepConfig, from_dict, load_config, to_dict)

__all__ = ["Config", "DataConfig", "ExitsConfig", "ExpertsConfig", "GaterConfig", "SweepConfig",
           "from_dict", "load_config", "to_dict"]
