"""End to end on a local Ray: `python -m sweep.run --smoke-test` writes the output contract."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow        # a Ray run of the smoke grid (~2 min cold on 2 cores)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POINT_COLS = {"point_id", "family", "method", "variant", "trial_id", "seed", "lam", "tau",
              "threshold", "split", "severity", "accuracy", "cost", "cost_unit", "n"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke") / "run"
    env = {**os.environ, "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, "-m", "sweep.run", "--smoke-test", "--out", str(out),
                        "--set", f"cache_dir={tmp_path_factory.mktemp('cache')}"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out, r.stdout


def test_all_outputs_with_contract_columns(run_dir):
    out, _ = run_dir
    for f in ("manifest.json", "points.parquet", "routes.parquet", "decisions.parquet",
              "report.html"):
        assert (out / f).exists(), f
    points = pd.read_parquet(out / "points.parquet")
    assert POINT_COLS <= set(points.columns)
    assert {"point_id", "severity", "target", "fraction"} <= set(
        pd.read_parquet(out / "routes.parquet").columns)
    assert {"point_id", "sample_id", "severity", "label", "target", "correct", "cost"} <= set(
        pd.read_parquet(out / "decisions.parquet").columns)
    m = json.load(open(out / "manifest.json"))
    assert m["status"] == "complete" and m["config"]["gater"]["lams"] == [0.5, 1.0]
    assert all(t["status"] == "ok" for t in m["trials"]) and len(m["trials"]) == 4


def test_every_method_of_the_contract(run_dir):
    points = pd.read_parquet(run_dir[0] / "points.parquet")
    got = set(zip(points.family, points.method))
    for fam, meth in [("experts", "gater"), ("experts", "expert"), ("experts", "random"),
                      ("experts", "oracle"), ("experts", "cascade"), ("exits", "em_router"),
                      ("exits", "exit"), ("exits", "random"), ("exits", "oracle"),
                      ("exits", "branchynet")]:
        assert (fam, meth) in got, (fam, meth)
    test = points[points.split == "test"]
    assert set(test.severity) == {"all", "clean", "mild", "moderate", "severe"}
    assert test.accuracy.between(0, 1).all()
    assert (test[test.family == "experts"].cost_unit == "ms").all()


def test_routes_sum_to_one(run_dir):
    routes = pd.read_parquet(run_dir[0] / "routes.parquet")
    sums = routes.groupby(["point_id", "severity"]).fraction.sum()
    assert np.allclose(sums, 1.0)


def test_decisions_match_points(run_dir):
    out = run_dir[0]
    points = pd.read_parquet(out / "points.parquet")
    dec = pd.read_parquet(out / "decisions.parquet")
    p = points[(points.split == "test") & (points.severity == "all")].set_index("point_id")
    acc = dec.groupby("point_id").correct.mean()
    assert np.allclose(acc, p.loc[acc.index, "accuracy"])
