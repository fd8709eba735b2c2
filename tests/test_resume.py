"""Bad input for the cluster features -- `--resume` on something that is not a run or with a
conflicting config, a storage URI that cannot be opened, more GPUs per trial than any node has:
exit code 2, one line on stderr, nothing written. Plus the shared-storage helpers."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sweep import fs
from sweep.store import io as store_io
from sweep.store import mirror as store_mirror
from sweep.tuning import cluster, storage
from sweep.config import load_config, to_dict
from sweep.errors import UserError
from sweep.run import SMOKE, main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _listing(path):
    return sorted(os.path.relpath(os.path.join(d, f), path)
                  for d, _, files in os.walk(path) for f in files)


def _fails(capsys, argv, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("routesweep: error:"), err
    for w in words:
        assert w in err, err


@pytest.fixture
def fake_run(tmp_path):
    """A results directory whose manifest holds the smoke-test config (as a killed run's)."""
    run = tmp_path / "run"
    run.mkdir()
    cfg = to_dict(load_config(None, SMOKE + [f"cache_dir={tmp_path / 'cache'}"]))
    manifest = {"routesweep_version": "0.1.0", "status": "running", "config": cfg,
                "feature_store": {}, "storage": {"tune_storage": str(run / "tune"),
                                                 "name": "sweep", "cache": None,
                                                 "results": None}}
    (run / "manifest.json").write_text(json.dumps(manifest, default=str))
    return run


def test_resume_on_a_missing_directory(capsys, tmp_path):
    _fails(capsys, ["--resume", str(tmp_path / "nope")], "not a directory")
    assert not (tmp_path / "nope").exists()


def test_resume_on_a_directory_that_is_not_a_run(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    _fails(capsys, ["--resume", str(tmp_path)], "not a routesweep run")
    (tmp_path / "manifest.json").write_text(json.dumps({"something": "else"}))
    _fails(capsys, ["--resume", str(tmp_path)], "not a resumable routesweep run")
    assert _listing(tmp_path) == ["manifest.json", "notes.txt"]


def test_resume_with_a_conflicting_config(capsys, fake_run):
    before = (fake_run / "manifest.json").read_text()
    cache = f"cache_dir={fake_run.parent / 'cache'}"
    _fails(capsys, ["--resume", str(fake_run), "--smoke-test", "--set", cache,
                    "--set", "gater.epochs=7"], "conflicts", "gater.epochs", "stored 1, given 7")
    _fails(capsys, ["--resume", str(fake_run), "--config",
                    os.path.join(ROOT, "configs", "default.yaml")], "conflicts")
    assert (fake_run / "manifest.json").read_text() == before and _listing(fake_run) == [
        "manifest.json"]


def test_resume_with_the_same_config_is_accepted(fake_run):
    from sweep.resume import read_manifest, stored_config
    manifest = read_manifest(str(fake_run))
    given = load_config(None, SMOKE + [f"cache_dir={fake_run.parent / 'cache'}"])
    assert to_dict(stored_config(manifest, given)) == to_dict(given)


def test_resume_with_out_is_refused(capsys, fake_run, tmp_path):
    _fails(capsys, ["--resume", str(fake_run), "--out", str(tmp_path / "o")], "--resume")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("uri, words", [("nosuch://bucket/runs", "cannot be opened"),
                                        ("FILE", "is a file")])
def test_storage_that_cannot_be_opened(capsys, tmp_path, uri, words):
    if uri == "FILE":
        (tmp_path / "f").write_text("x")
        uri = f"file://{tmp_path / 'f'}"
    out = tmp_path / "out"
    _fails(capsys, ["--smoke-test", "--out", str(out), "--set", f"sweep.storage_path={uri}",
                    "--set", f"cache_dir={tmp_path / 'cache'}"], words)
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_more_gpus_per_trial_than_any_node(capsys, tmp_path):
    out = tmp_path / "out"
    _fails(capsys, ["--smoke-test", "--out", str(out), "--set", "sweep.gpus_per_trial=64",
                    "--set", f"cache_dir={tmp_path / 'cache'}"], "gpus_per_trial=64")
    assert not out.exists() and not (tmp_path / "cache").exists()


@pytest.mark.slow
def test_one_clear_line_from_the_command_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, "-m", "sweep.run", "--resume", str(tmp_path)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "not a routesweep run" in r.stderr


def test_capacity_counts_alive_nodes_and_launchable_node_types(tmp_path):
    cfg = load_config(None, ["sweep.gpus_per_trial=0.25", "sweep.cpus_per_trial=2"])
    with pytest.raises(UserError, match="no node of this cluster"):
        cluster.check_capacity(cfg, [{"CPU": 8}])
    boot = tmp_path / "boot.yaml"
    boot.write_text("available_node_types:\n  gpu: {resources: {CPU: 8, GPU: 1}}\n")
    cluster.check_capacity(cfg, [{"CPU": 8}] + cluster.node_types_capacity(str(boot)))
    with pytest.raises(UserError, match="cpus_per_trial"):
        cluster.check_capacity(load_config(None, ["sweep.cpus_per_trial=16"]), [{"CPU": 8}])


def test_cache_part_round_trip_through_a_uri(tmp_path):
    part = tmp_path / "cache_a" / "experts-abc"
    arrays = {s: {"label": np.arange(5), "x": np.ones((5, 2), np.float32)}
              for s in ("train", "val", "test")}
    store_io.save_part(str(part), arrays, {"experts": ["a", "b"]})
    mirror = f"file://{tmp_path / 'shared' / 'cache'}"
    assert store_mirror.push_part(mirror, str(part)) and not store_mirror.push_part(mirror, str(part))
    copy = tmp_path / "cache_b" / "experts-abc"
    assert store_mirror.pull_part(mirror, str(copy)) and store_io.is_complete(str(copy))
    got, meta = store_io.load_part(str(copy))
    assert meta == {"experts": ["a", "b"]} and np.array_equal(got["val"]["x"], arrays["val"]["x"])
    assert not store_mirror.pull_part(mirror, str(tmp_path / "cache_b" / "exits-zzz"))


def test_results_copy_puts_the_manifest_last(tmp_path):
    out = tmp_path / "out"
    (out / "tune").mkdir(parents=True)
    for name in ("manifest.json", "points.parquet", "tune/skip.json"):
        (out / name).write_text(name)
    plan = storage.plan_for(f"file://{tmp_path / 'shared'}", str(out))
    storage.publish_results(str(out), plan)
    dest = plan.results.replace("file://", "")
    assert _listing(dest) == ["manifest.json", "points.parquet"]
    assert plan.experiment.startswith(f"file://{tmp_path / 'shared'}/tune/out-")


def test_resume_from_the_shared_copy_of_a_run(tmp_path, monkeypatch, fake_run):
    from sweep.resume import localize
    copy = f"file://{tmp_path / 'shared' / 'results' / 'run-1234'}"
    fs.upload_dir(str(fake_run), copy, last="manifest.json")
    monkeypatch.chdir(tmp_path)
    assert localize(copy) == os.path.join("results", "run-1234")
    assert (tmp_path / "results" / "run-1234" / "manifest.json").is_file()
    with pytest.raises(UserError, match="not a routesweep run"):
        localize(f"file://{tmp_path / 'nothing'}")
