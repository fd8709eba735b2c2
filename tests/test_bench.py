"""`python -m sweep.bench --smoke-test` runs sections 1-5 and writes the JSON contract; section
6 (five whole sweeps) is checked on a fake run and hand-made curves.

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
    r = subprocess.run([sys.executable, "-m", "sweep.bench", "--smoke-test", "--out", str(out),
                        "--sections", "1,2,3,4,5"],       # 6 runs five sweeps: tested below
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


def test_search_section_scores_val_chosen_points_after_k_trials(tmp_path):
    """curve() on a fake run: one value per trial (k = 1, 2, ...); after the first trial the HV
    of its one point, after the last the HV of the whole run's val-chosen set (a new seed of a
    configuration moves its mean, so the curve need not rise)."""
    import numpy as np
    import pandas as pd
    from analysis.frontier import pareto_mask
    from analysis.scores import normalised_hypervolume
    from sweep.bench.search import curve
    from tests.fake_results import write_fake_results
    run = write_fake_results(tmp_path / "run", families=("experts",))
    got = curve(str(run))
    trials = [t for t in json.loads((run / "manifest.json").read_text())["trials"]
              if t["status"] == "ok"]
    assert len(got["val"]) == len(got["test"]) == len(trials)
    p = pd.read_parquet(run / "points.parquet")
    p = p[(p["status"] == "ok") & (p["severity"] == "all")]
    ref = p.loc[p["method"] == "expert", "cost"].max()
    val = p[(p["method"] == "gater") & (p["split"] == "val")].groupby(["lam", "tau"])[
        ["cost", "accuracy"]].mean()
    chosen = val[pareto_mask(cost=val["cost"], accuracy=val["accuracy"])]
    assert got["val"][-1] == normalised_hypervolume(cost=chosen["cost"],
                                                    accuracy=chosen["accuracy"], ref_cost=ref)
    first = p[(p["trial_id"] == trials[0]["trial_id"]) & (p["split"] == "val")].iloc[0]
    assert got["val"][0] == pytest.approx(normalised_hypervolume(
        cost=[first["cost"]], accuracy=[first["accuracy"]], ref_cost=ref))
    assert np.isfinite(got["test"][-1]) and got["test"][-1] > 0


def test_search_section_summary_and_rows():
    from sweep.bench.__main__ import _rows_6
    from sweep.bench.search import summarise
    curves = {"grid": {"mean": {"val": [.1, .5, .6, .7], "test": [.1, .4, .6, .800]}},
              "frontier": {"mean": {"val": [.3, .69], "test": [.3, .797]}},
              "optuna": {"mean": {"val": [.2, .5], "test": [.2, .6]}}}
    r = summarise(curves, n=4, budget=2)
    assert r["frontier_test_gap_to_full_grid"] == pytest.approx(0.003 / 0.8)
    assert r["frontier_minus_optuna_test_at_budget"] == pytest.approx(0.197)
    assert r["targets_met"] == {"within_0.5pct_of_grid_with_half_its_trials": True,
                                "beats_optuna_at_equal_budget": True}
    worse = summarise({**curves, "frontier": {"mean": {"val": [.3], "test": [.7]}}},
                      n=4, budget=2)
    assert not worse["targets_met"]["within_0.5pct_of_grid_with_half_its_trials"]
    rows = _rows_6({"search": r})
    assert rows[-2][1] == "0.38% below" and rows[-2][3] == "yes" and rows[-1][3] == "yes"
