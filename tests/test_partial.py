"""A run never ends "complete" or with exit 0 while rows are missing (issue 16 B): a failed
trial of either family is a row with status failed and its error, the manifest says
"partial", and `python -m sweep.run` (and `--resume`) exit 3. In-process, compute faked."""
import json
import types

import numpy as np
import pandas as pd
import pytest
from ray import tune

from sweep import families, pipeline
from sweep.results import manifest as M
from sweep.run import main
from sweep.tuning import storage
from sweep.tuning.tuner import collect
from tests import fake_run as F

FAIL = {("experts", 0.5), ("exits", 2.0)}       # one gater trial, one EM trial crash


def _points(out):
    return pd.read_parquet(out / "points.parquet")


def _manifest(out):
    with open(out / "manifest.json") as f:
        return json.load(f)


def _partial_line(capsys, failed, total):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "partial" in err, err
    assert f"{failed} of {total} trials failed" in err, err


def test_complete_run_exits_0(tmp_path, monkeypatch):
    F.patch(monkeypatch)
    assert main(F.args(tmp_path / "run", tmp_path)) == 0
    m = _manifest(tmp_path / "run")
    assert m["status"] == "complete" and all(t["status"] == "ok" for t in m["trials"])
    assert (_points(tmp_path / "run").status == "ok").all()


def test_failed_trials_of_both_families_are_rows_and_exit_3(tmp_path, monkeypatch, capsys):
    F.patch(monkeypatch, fail=FAIL)
    out = tmp_path / "run"
    assert main(F.args(out, tmp_path)) == 3
    _partial_line(capsys, 2, 4)                 # smoke grid: 2 gater + 2 EM trials
    m = _manifest(out)
    assert m["status"] == "partial"
    assert {(t["family"], t["lam"]) for t in m["trials"] if t["status"] == "failed"} == FAIL
    p = _points(out)
    bad = p[p.status == "failed"].set_index("method")
    assert set(bad.index) == {"gater", "em_router"}
    assert bad.loc["gater", "lam"] == 0.5 and bad.loc["em_router", "lam"] == 2.0
    assert bad.loc["em_router", "error"] == "RuntimeError: exits trial crashed (planted)"
    assert bad.loc["gater", "family"] == "experts" and bad.loc["em_router", "family"] == "exits"
    assert bad.accuracy.isna().all() and (bad.n == 0).all()
    # the trials that worked are still there, with their rows
    ok = p[p.status == "ok"]
    assert set(ok[ok.method == "gater"].lam) == {1.0} and set(ok[ok.method == "em_router"].lam) == {0.0}


def test_a_grid_point_without_any_trial_is_a_failed_row(tmp_path, monkeypatch, capsys):
    cfg = F.config(tmp_path)

    def sweep(plan, work):                       # Tune returned 3 of the 4 trials
        F.write_experiment(plan, work)
        return F.trials(cfg, F.store(cfg))[1:]
    F.patch(monkeypatch, sweep=sweep)
    out = tmp_path / "run"
    assert main(F.args(out, tmp_path)) == 3
    _partial_line(capsys, 1, 4)
    p = _points(out)
    (row,) = p[p.status == "failed"].itertuples()
    assert row.method == "gater" and "no result from Tune" in row.error
    assert _manifest(out)["status"] == "partial"


def test_resume_of_a_partial_run_exits_3(tmp_path, monkeypatch, capsys):
    F.patch(monkeypatch)
    out = tmp_path / "run"
    assert main(F.args(out, tmp_path)) == 0
    capsys.readouterr()
    F.patch_resume(monkeypatch, fail={("exits", 0.0)})
    assert main(["--resume", str(out), "--no-report"]) == 3
    _partial_line(capsys, 1, 4)
    assert _manifest(out)["status"] == "partial" and _manifest(out)["resumed"]


def _result(point, *, error=None, metrics=None, decisions=None, tmp_path=None):
    """A stand-in for a ray.tune Result: what sweep.tuning.tuner.collect reads."""
    ckpt = None
    if decisions is not None:
        d = tmp_path / f"ckpt-{point['family']}-{point['lam']}"
        d.mkdir()
        np.savez(d / "decisions.npz", **decisions)
        ckpt = tune.Checkpoint.from_directory(str(d))
    return types.SimpleNamespace(config={"point": point}, error=error, checkpoint=ckpt,
                                 metrics={"trial_id": f"id-{point['family']}-{point['lam']}",
                                          **(metrics or {})}, path="/nowhere")


def test_collect_marks_crashed_and_nan_trials_failed(tmp_path):
    """The driver side of B: an EM trial whose worker raised (Tune: r.error, its last
    metrics say ok), a gater trial that reported a non-finite loss, and a trial with no final
    decisions are all failed, with the reason; a finished trial is ok."""
    em = {"family": "exits", "lam": 2.0, "tau": 1.0, "seed": 0}
    nan = {"family": "experts", "lam": 0.5, "tau": 1.0, "seed": 0}
    empty = {"family": "exits", "lam": 0.0, "tau": 1.0, "seed": 0}
    good = {"family": "experts", "lam": 1.0, "tau": 1.0, "seed": 0}
    grid = [_result(em, error=RuntimeError("Traceback ...\nRuntimeError: EM round 2 crashed"),
                    metrics={"status": "ok", "epoch": 2}),
            _result(nan, metrics={"status": "failed", "error": "non-finite gater loss"}),
            _result(empty, metrics={"status": "ok"}),
            _result(good, metrics={"status": "ok"}, tmp_path=tmp_path,
                    decisions={"val_target": np.zeros(3, np.int8),
                               "test_target": np.ones(3, np.int8)})]
    rows = {(r["family"], r["lam"]): r for r in collect(grid)}
    assert rows[("exits", 2.0)]["status"] == "failed"
    assert rows[("exits", 2.0)]["error"] == "RuntimeError: EM round 2 crashed"
    assert rows[("experts", 0.5)]["error"] == "non-finite gater loss"
    assert rows[("exits", 0.0)]["error"] == "trial ended without final decisions"
    assert rows[("experts", 1.0)]["status"] == "ok"
    assert list(rows[("experts", 1.0)]["decisions"]["test_target"]) == [1, 1, 1]


@pytest.mark.parametrize("fail", [{("experts", 1.0)}, {("exits", 0.0), ("exits", 2.0)}])
def test_finish_counts_every_failure(tmp_path, fail):
    """finish() directly: status partial iff some trial failed; one failed row per trial."""
    cfg = F.config(tmp_path)
    st = F.store(cfg)
    out = tmp_path / "run"
    out.mkdir()
    costs = families.resolve_costs(cfg, st["meta"])
    manifest = {"timings": {}, "costs": M.cost_manifest(cfg, st["meta"], costs)}
    m = pipeline.finish(cfg, out=str(out), store=st, costs=costs,
                        trials=F.trials(cfg, st, fail=fail), manifest=manifest,
                        plan=storage.plan_for(None, str(out)), report=False)
    assert m["status"] == "partial"
    p = _points(out)
    failed = p[p.status == "failed"]
    assert set(zip(failed.family, failed.lam)) == fail and len(failed) == len(fail)
