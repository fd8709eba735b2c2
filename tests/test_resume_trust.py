"""`--resume` runs code from the results folder (Tune unpickles tuner.pkl and its experiment
state), so it checks the experiment against RESULTS_DIR/tune-sha256.json, which the run kept
current (issue 16 C; design in sweep/resume.py, sweep/tuning/trust.py). A recorded list verifies; a changed or
planted state file is refused (exit 2, naming it) before Ray starts; the list names every
state file before Tune uploads it, so a driver killed at any moment can resume."""
import glob
import json
import os
import shutil
import types

import pyarrow.fs as pafs
import pytest

from sweep import pipeline
from sweep.errors import UserError
from sweep.run import main
from sweep.tuning import cluster, trust
from tests import fake_run as F


def _trial(staging, experiment):
    return types.SimpleNamespace(storage=types.SimpleNamespace(
        experiment_driver_staging_path=str(staging), experiment_fs_path=str(experiment)))


def _sync(staging, experiment):
    """What Tune's background upload does: copy the staging directory into the experiment."""
    shutil.copytree(staging, experiment, dirs_exist_ok=True)


@pytest.fixture
def run(tmp_path):
    """A results dir whose experiment was written the way Tune writes it, with the Recorder
    recording: tuner.pkl direct, state saved in staging then uploaded, one checkpoint.
    The last save is not uploaded yet (the upload lags): storage holds the older state."""
    results_dir, exp, staging = tmp_path / "run", tmp_path / "run/tune/sweep", tmp_path / "stg"
    (exp / "t0/checkpoint_000000").mkdir(parents=True)
    (staging / "t0").mkdir(parents=True)
    ledger = trust.Ledger(str(results_dir))
    (exp / "tuner.pkl").write_bytes(b"tuner v1")
    (exp / trust.MARKER).write_bytes(b"")
    ledger.record_stored(str(exp), names=(trust.TUNER,))
    rec, trial = trust.Recorder(), _trial(staging, exp)
    with trust.recording(ledger):
        rec.on_step_begin(0, [trial])
        for v in (1, 2):
            (staging / "experiment_state-s1.json").write_text(f"state {v}")
            (staging / "basic-variant-state-s1.json").write_text("search state")
            (staging / "t0/params.pkl").write_bytes(b"params")
            rec.get_state()                          # inside Tune's save, before the upload
            if v == 1:
                _sync(staging, exp)
        (exp / "t0/checkpoint_000000/state.pt").write_bytes(b"weights")
        rec.on_checkpoint(0, [trial], trial, types.SimpleNamespace(
            filesystem=pafs.LocalFileSystem(), path=str(exp / "t0/checkpoint_000000")))
    (exp / "t0/result.json").write_text("{}")        # not a pickle: not listed, not checked
    return results_dir, exp


def test_a_recorded_run_verifies(run):
    results_dir, exp = run
    files = json.loads((results_dir / trust.LIST).read_text())["files"]
    assert {"tuner.pkl", "experiment_state-s1.json", "basic-variant-state-s1.json",
            "t0/params.pkl", "t0/checkpoint_000000/state.pt"} <= set(files)
    assert len(files["experiment_state-s1.json"]) == 2      # both saved versions
    assert trust.verify(str(results_dir), str(exp)) is True


@pytest.mark.parametrize("rel, change, why", [
    ("tuner.pkl", b"evil", "differs from the sha256"),
    ("experiment_state-s1.json", b"evil", "differs from the sha256"),
    ("experiment_state-s9.json", b"newer, planted", "is not in the list"),
    ("callback-states-s9.pkl", b"planted", "is not in the list"),
    ("t0/params.pkl", b"evil", "differs from the sha256"),
    ("t0/checkpoint_000000/state.pt", b"other weights", "differs from the sha256")])
def test_a_changed_or_planted_file_is_refused(run, rel, change, why):
    results_dir, exp = run
    (exp / rel).write_bytes(change)
    with pytest.raises(UserError, match=why) as e:
        trust.verify(str(results_dir), str(exp))
    assert f"{exp}/{rel}" in str(e.value)


def test_what_is_not_read_as_a_pickle_may_come_and_go(run):
    results_dir, exp = run
    shutil.rmtree(exp / "t0/checkpoint_000000")              # Tune keeps num_to_keep
    (exp / "t0/progress.csv").write_text("a,b\n")
    (exp / "t0/checkpoint_000001").mkdir()                   # written after the last record
    (exp / "t0/checkpoint_000001/state.pt").write_bytes(b"newer weights")
    assert trust.verify(str(results_dir), str(exp)) is True


def test_no_list_is_refused_unless_tune_never_saved(run):
    results_dir, exp = run
    (results_dir / trust.LIST).unlink()
    with pytest.raises(UserError, match="no readable tune-sha256.json"):
        trust.verify(str(results_dir), str(exp))
    for f in glob.glob(f"{exp}/experiment_state-*"):
        os.remove(f)                                         # nothing to restore: nothing read
    assert trust.verify(str(results_dir), str(exp)) is False


def test_old_versions_expire(tmp_path):
    ledger = trust.Ledger(str(tmp_path))
    ledger.add("experiment_state-a.json", "v1", 1000.0)
    ledger.add("experiment_state-a.json", "v2", 1000.0 + trust.KEEP_S - 1)
    assert set(ledger.files["experiment_state-a.json"]) == {"v1", "v2"}
    ledger.add("experiment_state-a.json", "v3", 1000.0 + trust.KEEP_S + 1)
    assert set(ledger.files["experiment_state-a.json"]) == {"v2", "v3"}


def test_recorder_pickles_without_this_runs_paths(tmp_path):
    """The Recorder is saved in tuner.pkl and restored from it: it must carry no path."""
    import ray.cloudpickle as cp
    rec = trust.Recorder()
    rec.on_step_begin(0, [_trial(tmp_path / "stg", tmp_path / "exp")])
    back = cp.loads(cp.dumps(rec))
    assert back._trials is None and b"stg" not in cp.dumps(rec)


@pytest.mark.parametrize("rel", ["tuner.pkl", "experiment_state-x.json"])
def test_resume_of_a_tampered_run_exits_2_before_ray(tmp_path, monkeypatch, capsys, rel):
    F.patch(monkeypatch)
    out = tmp_path / "run"
    assert main(F.args(out, tmp_path)) == 0
    target = out / "tune" / "sweep" / rel
    target.write_bytes(target.read_bytes() + b"\n__import__('os').system('...')")
    before = F.listing(out)
    capsys.readouterr()
    monkeypatch.setattr(cluster, "start", lambda *a, **k: pytest.fail("Ray started"))
    assert main(["--resume", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(target) in err and "trust" in err, err
    assert F.listing(out) == before


# ------------------------------------------------------------------- a real Tune experiment

@pytest.mark.slow
def test_with_ray_tune_the_list_is_written_before_every_upload(tmp_path, monkeypatch):
    """Every upload Tune launches from its staging directory finds each staged file's
    current sha256 already in the list on disk (so a SIGKILL at any moment leaves a list
    that names what is stored); the list verifies after the run, and after a restore."""
    import ray
    from ray import tune
    from ray.train._internal import syncer
    results_dir = tmp_path / "run"
    results_dir.mkdir()
    ledger = trust.Ledger(str(results_dir))
    launched, behind = [], []
    orig = syncer._BackgroundSyncer.sync_up

    def checked(self, local_dir, remote_dir, exclude=None):
        staged = {e.name: trust.sha_local(e.path) for e in os.scandir(local_dir) if e.is_file()}
        on_disk = json.loads((results_dir / trust.LIST).read_text())["files"]
        late = [n for n, s in staged.items() if s not in on_disk.get(n, {})]
        ok = orig(self, local_dir, remote_dir, exclude)
        if ok:
            launched.append(local_dir)
            behind.extend(late)
        return ok
    monkeypatch.setattr(syncer._BackgroundSyncer, "sync_up", checked)
    exp = str(tmp_path / "tune" / "sweep")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    monkeypatch.setenv("PYTHONPATH", root)                 # workers import tests.fake_run
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(F.tiny_trainable, param_space={"x": tune.grid_search([1, 2])},
                           run_config=tune.RunConfig(
                               name="sweep", storage_path=str(tmp_path / "tune"), verbose=0,
                               callbacks=[trust.Recorder()],
                               checkpoint_config=tune.CheckpointConfig(num_to_keep=2)))
        ledger.record_stored(exp, names=(trust.TUNER,))
        pipeline.fit(tuner, ledger)
        assert launched and not behind, behind
        assert trust.verify(str(results_dir), exp) is True
        files = json.loads((results_dir / trust.LIST).read_text())["files"]
        assert any(r.endswith("/metrics.json") for r in files)          # checkpoints too
        restored = tune.Tuner.restore(exp, F.tiny_trainable, resume_unfinished=True)
        pipeline.fit(restored, trust.Ledger.load(str(results_dir)))
        assert len(glob.glob(f"{exp}/experiment_state-*.json")) == 2
        assert trust.verify(str(results_dir), exp) is True
    finally:
        ray.shutdown()
    with open(f"{exp}/tuner.pkl", "ab") as f:
        f.write(b"x")
    with pytest.raises(UserError, match="tuner.pkl"):
        trust.verify(str(results_dir), exp)
