"""sweep.early_stop_patience: the plateau rule (Tune's Stopper API), the gater's val objective,
and what a stopped trial leaves: its last epoch's decisions, `final: false`, `stopped_early`."""
import json

import pytest

from sweep.config import load_config
from sweep.errors import UserError
from sweep.families.gater import val_objective
from sweep.tuning.stopping import PlateauStopper
from sweep.tuning.tuner import _final_metrics, _stopped_early, trial_settings


def test_plateau_by_hand():
    stop = PlateauStopper(patience=2, min_delta=0.01)
    values = [0.5, 0.4, 0.395, 0.392, 0.3]
    got = [stop("t", {"val_objective": v}) for v in values]
    # 0.4 improves by 0.1; 0.395 and 0.392 by less than 0.01 on the best (0.4): stale 1, 2 ->
    # stop; 0.3 improves again (a trial Tune had stopped would not report it)
    assert got == [False, False, False, True, False]
    assert stop("u", {"epoch": 1}) is False            # no val objective: never stopped
    assert stop("u", {"val_objective": 1.0}) is False and not stop.stop_all()
    other = PlateauStopper(patience=1, min_delta=0.0)
    assert [other("t", {"val_objective": v}) for v in (3, 2, 2)] == [False, False, True]


def test_the_gaters_val_objective_by_hand():
    s = {"expert_ms": [1.0, 4.0, 2.0], "gater_ms": 1.0}          # costliest + gater: 5 ms
    assert val_objective(0.9, 2.5, lam=0.8, s=s) == pytest.approx(0.8 * 0.1 + 0.2 * 0.5)
    assert val_objective(1.0, 5.0, lam=1.0, s=s) == 0.0


def test_a_stopped_checkpoint_is_not_final(tmp_path):
    class Ckpt:
        def __init__(self, d):
            self.d = d

        def as_directory(self):
            import contextlib
            return contextlib.nullcontext(str(self.d))

    (tmp_path / "decisions.npz").write_bytes(b"")
    (tmp_path / "metrics.json").write_text(json.dumps({"epoch": 2, "final": False}))
    assert _final_metrics(Ckpt(tmp_path)) is None and _stopped_early(str(tmp_path))
    (tmp_path / "metrics.json").write_text(json.dumps({"epoch": 6, "final": True}))
    assert _final_metrics(Ckpt(tmp_path))["epoch"] == 6 and not _stopped_early(str(tmp_path))
    (tmp_path / "metrics.json").write_text(json.dumps({"epoch": 6}))   # before the flag
    assert _final_metrics(Ckpt(tmp_path))["epoch"] == 6 and not _stopped_early(str(tmp_path))


def test_the_rule_asks_every_trial_for_its_decisions():
    costs = {"experts": {"expert_ms": [1.0, 2.0], "gater_ms": 0.1},
             "exits": {"exit_costs": [0.5, 1.0]}}
    on = trial_settings(load_config(None, ["sweep.early_stop_patience=2"]), costs)
    off = trial_settings(load_config(None, []), costs)
    assert on["experts"]["per_epoch_decisions"] and on["exits"]["per_epoch_decisions"]
    assert not off["experts"]["per_epoch_decisions"]
    with pytest.raises(UserError, match="sweep.early_stop_patience must be"):
        load_config(None, ["sweep.early_stop_patience=-1"])


@pytest.mark.slow
def test_a_stopped_trial_keeps_its_rows_and_says_so(tmp_path):
    import os
    import subprocess
    import sys

    import pandas as pd
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "sweep.run", "--smoke-test", "--out", str(out),
                        "--set", f"cache_dir={tmp_path / 'cache'}", "--set",
                        "exits.enabled=false", "--set", "gater.epochs=6", "--set",
                        "sweep.early_stop_patience=1", "--set", "sweep.early_stop_delta=1.0"],
                       cwd=root, env={**os.environ, "PYTHONPATH": root}, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    trials = json.loads((out / "manifest.json").read_text())["trials"]
    # no improvement can exceed 1.0: every trial stops after its second epoch
    assert [(t["status"], t["epochs"], t["stopped_early"]) for t in trials] == [
        ("ok", 2, True)] * len(trials)
    points = pd.read_parquet(out / "points.parquet")
    assert (points.loc[points["method"] == "gater", "status"] == "ok").all()
    assert "stopped early by the plateau rule" in r.stdout
