"""`--out` / `--overwrite` never lose data (issue 16 A): a directory that is not a routesweep run
is refused (exit 2, before compute, untouched); a run is replaced only by a COMPLETE new run,
built beside it; a failure at any point (exception, full disk, Ctrl-C) leaves the old run
byte-identical and says where the unfinished new one is, which `--resume` then finishes.
In-process, with the compute faked (tests/fake_run.py)."""
import errno
import json
import os

import pytest

from sweep import pipeline
from sweep.results import manifest as M
from sweep.results import tables as results
from sweep.run import main
from tests import fake_run as F


def _one_line(capsys, *words):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("routesweep:"), err
    for w in words:
        assert w in err, err
    return err


@pytest.fixture
def no_compute(monkeypatch):
    """Any compute fails the test: bad --out must be refused before it."""
    F.patch(monkeypatch)
    boom = lambda *a, **k: pytest.fail("compute started")
    monkeypatch.setattr(pipeline, "load_data", boom)


@pytest.fixture
def old_run(tmp_path, monkeypatch):
    """A complete earlier run in tmp/run -> (its path, its files' bytes)."""
    F.patch(monkeypatch)
    out = tmp_path / "run"
    assert main(F.args(out, tmp_path)) == 0
    return out, F.listing(out)


def _siblings(out):
    return sorted(n for n in os.listdir(out.parent) if n.startswith(out.name + "."))


def _manifest(d):
    with open(d / "manifest.json") as f:
        return json.load(f)


@pytest.mark.parametrize("content", ["unrelated files", "foreign manifest"])
def test_overwrite_refuses_a_directory_that_is_not_a_run(tmp_path, capsys, no_compute,
                                                         content):
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "thesis.tex").write_text("years of work")
    (victim / "sub" / "data.bin").write_bytes(os.urandom(64))
    if content == "foreign manifest":
        (victim / "manifest.json").write_text(json.dumps({"name": "another tool"}))
    before, parent = F.listing(victim), sorted(os.listdir(tmp_path))
    assert main(F.args(victim, tmp_path, "--overwrite")) == 2
    _one_line(capsys, "not a routesweep results directory", str(victim))
    assert F.listing(victim) == before and sorted(os.listdir(tmp_path)) == parent


def test_overwrite_accepts_an_empty_directory(tmp_path, monkeypatch):
    F.patch(monkeypatch)
    out = tmp_path / "empty"
    out.mkdir()
    assert main(F.args(out, tmp_path, "--overwrite")) == 0
    assert _manifest(out)["status"] == "complete" and not _siblings(out)


def test_overwrite_replaces_a_run_only_once_the_new_one_is_complete(tmp_path, monkeypatch,
                                                                    old_run):
    out, before = old_run
    seen = {}

    def sweep(plan, work):                   # while the new run computes:
        seen["old intact"] = F.listing(out) == before
        seen["work"] = work
        F.write_experiment(plan, work)
        return F.trials(F.config(tmp_path), F.store(F.config(tmp_path)))
    F.patch(monkeypatch, sweep=sweep)
    assert main(F.args(out, tmp_path, "--overwrite")) == 0
    assert seen["old intact"]
    assert os.path.dirname(seen["work"]) == str(tmp_path) and seen["work"] != str(out)
    assert not _siblings(out)                # the staging dir became OUT; the old one is gone
    m = _manifest(out)
    assert m["status"] == "complete" and "replaces" not in m
    assert m["created"] >= json.loads(before["manifest.json"])["created"]
    # every path the manifest records is right after the swap
    assert m["storage"]["tune_storage"] == str(out / "tune")
    assert m["storage"]["experiment"] == str(out / "tune" / "sweep")
    assert (out / "tune" / "sweep" / "tuner.pkl").read_text().endswith(seen["work"])
    assert F.listing(out) != before


def test_full_disk_while_writing_tables_leaves_the_old_run(tmp_path, monkeypatch, old_run):
    out, before = old_run

    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(results, "write_tables", no_space)
    with pytest.raises(OSError) as e:
        main(F.args(out, tmp_path, "--overwrite"))
    assert e.value.errno == errno.ENOSPC
    assert F.listing(out) == before          # byte-identical
    (work,) = _siblings(out)
    note = " ".join(e.value.__notes__)
    assert "untouched" in note and str(tmp_path / work) in note and "--resume" in note
    m = _manifest(tmp_path / work)           # the unfinished new run: resumable
    assert m["status"] == "running" and m["replaces"] == str(out)


def test_resume_finishes_an_unfinished_replacement(tmp_path, monkeypatch, capsys, old_run):
    out, before = old_run
    monkeypatch.setattr(results, "write_tables",
                        lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert main(F.args(out, tmp_path, "--overwrite")) == 130
    (work,) = _siblings(out)
    _one_line(capsys, "untouched", work)
    assert F.listing(out) == before
    monkeypatch.undo()
    F.patch_resume(monkeypatch)
    created = _manifest(tmp_path / work)["created"]
    assert main(["--resume", str(tmp_path / work), "--no-report"]) == 0
    assert not _siblings(out) and _manifest(out)["created"] == created
    assert _manifest(out)["storage"]["experiment"] == str(out / "tune" / "sweep")


def test_ctrl_c_during_the_sweep_leaves_the_old_run(tmp_path, monkeypatch, capsys, old_run):
    out, before = old_run

    def interrupted(plan, work):
        F.write_experiment(plan, work)
        raise KeyboardInterrupt("the sweep was stopped with 3 of 4 trials unfinished")
    F.patch(monkeypatch, sweep=interrupted)
    assert main(F.args(out, tmp_path, "--overwrite")) == 130
    (work,) = _siblings(out)
    _one_line(capsys, "3 of 4 trials unfinished", "untouched", str(tmp_path / work))
    assert F.listing(out) == before


def test_failure_before_the_manifest_keeps_nothing(tmp_path, monkeypatch, old_run):
    out, before = old_run
    monkeypatch.setattr(M, "versions", lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError) as e:
        main(F.args(out, tmp_path, "--overwrite"))
    assert F.listing(out) == before and not _siblings(out)
    assert "untouched" in " ".join(e.value.__notes__)


@pytest.mark.parametrize("case", ["parent is a file", "name too long", "out is a file"])
def test_out_must_be_creatable(tmp_path, capsys, no_compute, case):
    (tmp_path / "f").write_text("x")
    out = {"parent is a file": tmp_path / "f" / "run", "name too long": tmp_path / ("x" * 300),
           "out is a file": tmp_path / "f"}[case]
    before = sorted(os.listdir(tmp_path))
    assert main(F.args(out, tmp_path)) == 2
    _one_line(capsys, "--out")
    assert sorted(os.listdir(tmp_path)) == before


def test_unwritable_parent(tmp_path, capsys, no_compute):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        assert main(F.args(ro / "run", tmp_path)) == 2
        _one_line(capsys, "writable")
    finally:
        ro.chmod(0o700)
