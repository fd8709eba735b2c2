"""`python -m sweep.bench --smoke-test` runs every section and writes the JSON contract.

The benchmark is not a test: this only checks that it works (about a minute here, so `slow`).
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOP = ("cached_vs_algorithm1_speedup", "slot_busy_fraction", "device")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    env = {**os.environ, "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, "-m", "sweep.bench", "--smoke-test", "--out", str(out)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(out.read_text()), out


@pytest.mark.slow
def test_top_level_keys(bench):
    res, _ = bench
    assert all(k in res for k in TOP)
    assert res["cached_vs_algorithm1_speedup"] > 0 and res["slot_busy_fraction"] > 0
    assert isinstance(res["device"], str) and res["device"]
    assert res["errors"] == {}


@pytest.mark.slow
def test_sections_and_markdown(bench):
    res, out = bench
    s = res["sections"]
    assert set(s) == {"cached_vs_algorithm1", "orchestration", "store_sharing",
                      "feature_building", "routed_inference"}
    for shape in ("paper", "tiny"):          # both trainers start from the same state
        assert s["cached_vs_algorithm1"][shape]["warmup_loss"]["match"]
        assert s["cached_vs_algorithm1"][shape]["flop_ratio"] > 1
        assert s["cached_vs_algorithm1"][shape]["trunk_only_bound"] > 0
        assert s["cached_vs_algorithm1"][shape]["bf16"]["warmup_loss"]["match"]
    assert s["orchestration"]["failed"] == 0
    assert s["store_sharing"]["copy_control_uss_added_fraction"] > 0.5   # it sees a copy
    assert s["routed_inference"]["available"] in (True, False)
    md = out.with_suffix(".md").read_text()
    assert "| measurement | value | target | met |" in md and "Machine:" in md


@pytest.mark.parametrize("bad", [["--profile", "huge"], ["--sections", "1,9"],
                                 ["--sections", "x"]])
def test_bad_arguments_are_usage_errors(bad, capsys):
    """In-process (argparse exits 2 before any section starts); the smoke run above covers
    the command line itself."""
    from sweep.bench.__main__ import main
    with pytest.raises(SystemExit) as e:
        main(bad)
    assert e.value.code == 2 and "error:" in capsys.readouterr().err
