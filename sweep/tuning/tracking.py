"""Experiment trackers (`sweep.callbacks`): Tune's own logger callbacks, offline, no server.

* `tensorboard`: `ray.tune.logger.TBXLoggerCallback` (tensorboardX): event files in each
  trial's directory under the run's Tune experiment (`tensorboard --logdir OUT/tune`).
* `mlflow`: `ray.air.integrations.mlflow.MLflowLoggerCallback`, a file store at OUT/mlruns
  (`mlflow ui --backend-store-uri OUT/mlruns`), one MLflow run per trial.
* `wandb`: `ray.air.integrations.wandb.WandbLoggerCallback` in offline mode, files under
  OUT/wandb (`wandb sync OUT/wandb/offline-run-*` to upload later).

The packages are checked when the config is (`sweep.config.validate.validate_trackers`): one
that is not installed stops the run with exit code 2 before any compute.
"""
from __future__ import annotations

import os

from ray.air.integrations.mlflow import MLflowLoggerCallback   # imports mlflow only when used
from ray.air.integrations.wandb import WandbLoggerCallback     # ditto wandb
from ray.tune.logger import TBXLoggerCallback


def _tensorboard(cfg, out_dir: str):
    return TBXLoggerCallback()


def _mlflow(cfg, out_dir: str):
    uri = "file://" + os.path.abspath(os.path.join(out_dir, "mlruns"))
    return MLflowLoggerCallback(tracking_uri=uri, experiment_name=cfg.name, save_artifact=False)


def _wandb(cfg, out_dir: str):
    return WandbLoggerCallback(project=cfg.name, mode="offline", dir=os.path.abspath(out_dir),
                               log_config=False)


BUILDERS = {"tensorboard": _tensorboard, "mlflow": _mlflow, "wandb": _wandb}


def tracking_callbacks(cfg, out_dir: str) -> list:
    """The Tune callbacks of `cfg.sweep.callbacks`, writing under `out_dir` (the run's dir)."""
    return [BUILDERS[name](cfg, out_dir) for name in cfg.sweep.callbacks]
