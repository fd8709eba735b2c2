"""What a finished run leaves for its user (in-process, compute faked: tests/fake_run.py):

* the report is built after the final manifest: its header shows the final status and the end
  time, never "running";
* the summary's last line is the path of report.html;
* every file is written with the usual mode (0o666 less the umask), not tempfile's 0600, and
  the feature-store parts' directories with 0o777 less the umask;
* single models have val rows (the best single is chosen on val, analysis/selection.py).
"""
import contextlib
import io
import json
import os
import re
import stat

import numpy as np
import pandas as pd
import pytest

from sweep import fs
from sweep.run import main
from sweep.store import io as store_io
from tests import fake_run as F


def _run(tmp_path, *, fail=(), report=True, umask=0o022):
    """A faked run into TMP/run under `umask` -> (out, exit code, stdout)."""
    out, stdout, old = tmp_path / "run", io.StringIO(), os.umask(umask)
    args = [a for a in F.args(out, tmp_path) if report is False or a != "--no-report"]
    try:
        with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(stdout):
            F.patch(mp, fail=fail)
            rc = main(args)
    finally:
        os.umask(old)
    return out, rc, stdout.getvalue()


@pytest.fixture(scope="module")
def complete(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("complete"))


@pytest.fixture(scope="module")
def partial(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("partial"), fail={("experts", 0.5)})


@pytest.mark.parametrize("which, status, code", [
    ("complete", "complete", 0),
    pytest.param("partial", "partial", 3, marks=pytest.mark.slow)])       # a second run: ~5 s
def test_report_shows_the_final_status_and_end_time(request, which, status, code):
    out, rc, stdout = request.getfixturevalue(which)
    assert rc == code
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == status and manifest["finished"]
    header = re.search(r"<header>.*?</header>", (out / "report.html").read_text(), re.S).group(0)
    assert f'<span class="badge">{status}</span>' in header and "running" not in header
    assert manifest["finished"] in header and "→ </p>" not in header   # an end time is shown
    lines = [x for x in stdout.splitlines() if x.strip()]
    assert lines[-1] == f"report: {out / 'report.html'}"


@pytest.mark.slow                                  # a run, then its resume (~5 s)
def test_a_resumed_run_reports_its_final_status(tmp_path, monkeypatch, capsys):
    out, rc, _ = _run(tmp_path, fail={("exits", 0.0)}, report=False)
    assert rc == 3
    F.patch_resume(monkeypatch)                   # the errored trial now succeeds
    assert main(["--resume", str(out)]) == 0
    header = re.search(r"<header>.*?</header>", (out / "report.html").read_text(), re.S).group(0)
    assert '<span class="badge">complete</span>' in header
    lines = [x for x in capsys.readouterr().out.splitlines() if x.strip()]
    assert lines[-1] == f"report: {out / 'report.html'}"


def test_no_report_line_without_a_report(tmp_path):
    out, rc, stdout = _run(tmp_path, report=False)
    assert rc == 0 and "report:" not in stdout and not (out / "report.html").exists()


def _modes(root) -> dict:
    """{relative path: permission bits} of every file and directory under ROOT."""
    out = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            out[os.path.relpath(p, root)] = stat.S_IMODE(os.lstat(p).st_mode)
    return out


def _check_modes(out, umask, names):
    files = {k: v for k, v in _modes(out).items() if not os.path.isdir(out / k)}
    for name in names:
        assert files[name] == 0o666 & ~umask, (name, oct(files[name]))
    assert set(files.values()) == {0o666 & ~umask}, {k: oct(v) for k, v in files.items()}


def test_result_files_follow_the_umask(complete):
    out, rc, _ = complete                                    # umask 022: 0644
    assert rc == 0
    _check_modes(out, 0o022, ("points.parquet", "routes.parquet", "decisions.parquet",
                              "manifest.json", "report.html", "tune-sha256.json"))


def test_files_and_store_parts_follow_another_umask(tmp_path):
    umask = 0o027
    out, rc, _ = _run(tmp_path, report=False, umask=umask)
    assert rc == 0
    _check_modes(out, umask, ("points.parquet", "manifest.json", "tune-sha256.json"))
    part, single, old = tmp_path / "cache" / "part", tmp_path / "single.json", os.umask(umask)
    try:
        store_io.save_part(str(part), {"test": {"x": np.arange(3)}}, {"k": 1})
        fs.write_json(str(single), {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(part.stat().st_mode) == 0o777 & ~umask
    assert set(_modes(part).values()) <= {0o666 & ~umask, 0o777 & ~umask}
    assert stat.S_IMODE(single.stat().st_mode) == 0o666 & ~umask


def test_single_models_have_val_rows(complete):
    out, _, _ = complete
    points = pd.read_parquet(out / "points.parquet")
    for method, names in (("expert", F.EXPERTS), ("exit", F.EXITS)):
        rows = points[(points["method"] == method) & (points["severity"] == "all")]
        assert sorted(rows.loc[rows["split"] == "val", "variant"]) == sorted(names)
        cost = rows.pivot_table(index="variant", columns="split", values="cost")
        assert np.allclose(cost["val"], cost["test"])          # a single model costs the same
