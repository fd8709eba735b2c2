"""What one Ray Tune trial does: it gives its family's trial function a `Session` and runs it.

A family's trial function (`Family.trial`, e.g. sweep/families/gater.py) gets the shared store
(read zero-copy from the object store), its grid point, its family's settings and a Session:

    session.device                     "cuda" when the trial holds a GPU, else "cpu"
    session.restore() -> state | None  the state of its last checkpoint (after a failure)
    session.report(metrics, state=None, arrays=None)
                                       one Tune report; with `state` a checkpoint too; with
                                       `arrays` ({split}_target: routes on val and test) the
                                       final checkpoint, which the driver's tables read

It reports each epoch / EM round with a checkpoint so a trial can resume; its last checkpoint
holds `decisions.npz` that the driver turns into Parquet rows. A non-finite loss ends the trial
as `status: failed` with the reason (no retry: the seed would fail again).
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings

import numpy as np
import torch
from ray import tune

from sweep.families import axes as AX

warnings.filterwarnings("ignore", message="The given NumPy array is not writable")


_PLAIN = (int, float, bool, str, bytes, type(None))


def not_weights_only(x, where: str = "state") -> str | None:
    """Where `x` holds something `torch.load(weights_only=True)` refuses (numpy arrays AND numpy
    scalars: np.float64 subclasses float, so types are compared exactly), else None."""
    if torch.is_tensor(x) or type(x) in _PLAIN:
        return None
    if isinstance(x, dict):
        return next((p for k, v in x.items() for p in (
            not_weights_only(k, f"{where} key"), not_weights_only(v, f"{where}[{k!r}]")) if p),
            None)
    if isinstance(x, (list, tuple)):
        return next((p for i, v in enumerate(x) if (p := not_weights_only(v, f"{where}[{i}]"))),
                    None)
    return f"{where}: {type(x).__module__}.{type(x).__name__}"


class Session:
    """The Ray side of one trial, as a family's trial function sees it."""

    def __init__(self, settings: dict):
        gpus = settings.get("gpus_per_trial", 0)
        self.device = "cuda" if gpus > 0 and torch.cuda.is_available() else "cpu"

    def restore(self) -> dict | None:
        """The state saved with the trial's last checkpoint (weights only, never pickles)."""
        ckpt = tune.get_checkpoint()
        if ckpt is None:
            return None
        with ckpt.as_directory() as d:
            return torch.load(os.path.join(d, "state.pt"), map_location="cpu",
                              weights_only=True)

    def report(self, metrics: dict, state: dict | None = None,
               arrays: dict | None = None) -> None:
        """tune.report; with a state or arrays, a checkpoint written to a temporary directory:
        Tune persists it to storage during the call, so the local copy goes right after.
        `state` must load with weights_only=True (tensors, plain values): checked here, since a
        checkpoint that cannot be restored only shows when a resume needs it."""
        if state is None and arrays is None:
            return tune.report(metrics)
        if (bad := not_weights_only(state)) is not None:
            raise TypeError(f"trial checkpoint would not restore (weights_only): {bad}")
        with tempfile.TemporaryDirectory(prefix="ckpt-") as d:
            torch.save(state or {}, os.path.join(d, "state.pt"))
            if arrays is not None:      # the final checkpoint: decisions + the metrics reported
                np.savez(os.path.join(d, "decisions.npz"), **arrays)
                with open(os.path.join(d, "metrics.json"), "w") as f:
                    json.dump(metrics, f)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


def router_trial(config: dict, store: dict, trials: dict) -> None:
    """The one Tune trainable: `trials` maps each family to its trial function."""
    s, point = config["settings"], config["point"]
    torch.set_num_threads(max(1, int(s.get("cpus_per_trial", 1))))
    own = s["axes"][point["family"]][AX.label(point["axes"])] if point.get("axes") \
        else s[point["family"]]        # a point of sweep.axes: settings of its combination
    trials[point["family"]](point, own, store, Session(s))
