"""Loading and validating a results directory; bad input -> one line, exit code 2."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import AnalysisError, load
from analysis.io import validate
from tests.fake_results import as_schema_1, write_fake_results

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fake_dir(tmp_path_factory):
    return write_fake_results(tmp_path_factory.mktemp("io") / "run")


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file():
            (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _cli(directory) -> subprocess.CompletedProcess:
    """`python -m analysis.report DIR` in a subprocess (the entry point itself)."""
    return subprocess.run([sys.executable, "-m", "analysis.report", str(directory)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def cli(capsys):
    """analysis.report's main in this process -> (returncode, stdout, stderr) like _cli's."""
    from analysis.report import main

    def run(directory):
        rc = main([str(directory)])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["analysis.report"], rc, out, err)
    return run


def _assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_load_fake_results(fake_dir):
    data = load(fake_dir)
    assert set(data) == {"points", "routes", "decisions", "manifest"}
    assert data["manifest"]["config_name"] == "fake-run"
    assert set(data["points"]["family"]) == {"experts", "exits"}
    assert data["points"]["seed"].dtype == np.int64
    assert data["decisions"]["correct"].dtype == bool
    assert (data["points"]["status"] == "failed").sum() == 1


def test_load_tolerates_extra_columns_and_one_family(tmp_path):
    run = write_fake_results(tmp_path / "run", families=("experts",))
    pts = pd.read_parquet(run / "points.parquet").assign(extra_column=1.5)
    pts.drop(columns=["status", "error"]).to_parquet(run / "points.parquet")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["unexpected_key"] = {"x": 1}
    (run / "manifest.json").write_text(json.dumps(manifest))
    data = load(run)
    assert set(data["points"]["family"]) == {"experts"}
    assert "extra_column" in data["points"] and "status" in data["points"]
    # without a status column, NaN accuracy means failed
    assert (data["points"]["status"] == "failed").sum() == 1


def test_missing_optional_files_give_empty_frames(tmp_path, fake_dir):
    run = _copy(fake_dir, tmp_path / "run")
    for name in ("routes.parquet", "decisions.parquet", "manifest.json"):
        (run / name).unlink()
    data = load(run)
    assert data["routes"].empty and data["decisions"].empty and data["manifest"] == {}


def test_validate_messages_name_file_and_column():
    frame = pd.DataFrame({"point_id": ["a"], "severity": ["all"], "target": ["x"],
                          "fraction": ["lots"]})
    with pytest.raises(AnalysisError, match="routes.parquet: column fraction"):
        validate(frame, "routes.parquet")
    with pytest.raises(AnalysisError, match="routes.parquet: missing required column.*target"):
        validate(frame.drop(columns="target"), "routes.parquet")


def test_bad_values_are_rejected(tmp_path, fake_dir):
    run = _copy(fake_dir, tmp_path / "run")
    pts = pd.read_parquet(run / "points.parquet")
    pts.loc[0, "family"] = "mystery"
    pts.to_parquet(run / "points.parquet")
    with pytest.raises(AnalysisError, match="points.parquet: column family"):
        load(run)
    pts.loc[0, "family"] = "experts"
    pts.loc[0, "accuracy"] = 1.7
    pts.to_parquet(run / "points.parquet")
    with pytest.raises(AnalysisError, match="points.parquet: column accuracy"):
        load(run)


def test_bad_manifest_json(tmp_path, fake_dir):
    run = _copy(fake_dir, tmp_path / "run")
    (run / "manifest.json").write_text("{not json")
    with pytest.raises(AnalysisError, match="manifest.json: not valid JSON"):
        load(run)


def test_cli_missing_directory(tmp_path):
    _assert_one_line_error(_cli(tmp_path / "nope"), "results directory not found", "nope")


def test_cli_empty_directory(tmp_path, cli):
    _assert_one_line_error(cli(tmp_path), "no points.parquet")


def test_cli_missing_required_column(tmp_path, fake_dir, cli):
    run = _copy(fake_dir, tmp_path / "run")
    pd.read_parquet(run / "points.parquet").drop(columns=["cost"]).to_parquet(
        run / "points.parquet")
    _assert_one_line_error(cli(run), "points.parquet", "cost")
    assert not (run / "report.html").exists()


def test_cli_missing_column_in_decisions(tmp_path, fake_dir, cli):
    run = _copy(fake_dir, tmp_path / "run")
    pd.read_parquet(run / "decisions.parquet").drop(columns=["sample_id"]).to_parquet(
        run / "decisions.parquet")
    _assert_one_line_error(cli(run), "decisions.parquet", "sample_id")


def test_cli_truncated_parquet(tmp_path, fake_dir, cli):
    run = _copy(fake_dir, tmp_path / "run")
    data = (run / "routes.parquet").read_bytes()
    (run / "routes.parquet").write_bytes(data[: len(data) // 2])
    _assert_one_line_error(cli(run), "routes.parquet", "not a readable Parquet file")


def test_cli_garbage_parquet(tmp_path, fake_dir, cli):
    run = _copy(fake_dir, tmp_path / "run")
    (run / "points.parquet").write_bytes(b"this is not parquet\n" * 10)
    _assert_one_line_error(cli(run), "points.parquet", "not a readable Parquet file")


def test_schema_2_manifest_says_what_lambda_weighs(fake_dir):
    fams = load(fake_dir)["manifest"]["families"]
    assert fams["experts"]["lam"] == "λ (weight on classification)"
    assert fams["exits"]["lam"] == "λ (weight on exit cost)"
    assert fams["experts"]["cost_unit"] == "ms" and fams["exits"]["method"] == "em_router"


def test_schema_1_is_read_with_its_families_filled_in(tmp_path, fake_dir):
    run = as_schema_1(_copy(fake_dir, tmp_path / "run"))
    data = load(run)
    assert data["manifest"]["schema_version"] == 1
    assert data["manifest"]["families"]["experts"]["tau"] == "τ (Gumbel temperature)"
    assert data["manifest"]["families"]["exits"]["tau"] == "τ (E-step temperature)"
    assert data["points"].equals(load(fake_dir)["points"])


def test_a_newer_schema_is_refused_in_one_line(tmp_path, fake_dir, cli):
    run = _copy(fake_dir, tmp_path / "run")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["schema_version"] = 99
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(AnalysisError, match="schema 99 is newer"):
        load(run)
    _assert_one_line_error(cli(run), "schema 99")


def test_cost_unit_must_match_the_family(tmp_path, fake_dir):
    run = _copy(fake_dir, tmp_path / "run")
    pts = pd.read_parquet(run / "points.parquet")
    pts.loc[pts["family"] == "exits", "cost_unit"] = "ms"      # a unit of the manifest, wrong here
    pts.to_parquet(run / "points.parquet")
    with pytest.raises(AnalysisError, match="cost_unit .* family exits"):
        load(run)
