"""`python -m sweep.bench --smoke-test` runs sections 1-5 and writes the JSON contract; section
6 (five whole sweeps) is checked on a fake run and hand-made curves; section 1's fairness (bf16
experts autocast like the gater), GFLOP/s arithmetic and table rows on fakes and hand-made numbers.

The benchmark is not a test: the smoke run only checks that it works (about a minute, `slow`).
"""
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sweep.bench import gater as BG

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
        assert set(s["cached_vs_algorithm1"][shape]["achieved_gflops"]) == {
            "cached", "algorithm1", "trunk_only"}
        assert set(s["cached_vs_algorithm1"][shape]["bf16"]["achieved_gflops"]) == {
            "cached", "algorithm1"}
    assert s["orchestration"]["failed"] == 0
    assert s["store_sharing"]["copy_control_uss_added_fraction"] > 0.5   # it sees a copy
    assert s["routed_inference"]["available"] in (True, False)
    md = out.with_suffix(".md").read_text()
    assert "| measurement | value | target | met |" in md and "Machine:" in md
    assert "FLOP ratio" in md and "GFLOP/s" in md and "ceiling" not in md


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


# ---------------------------------------------------------------- section 1 (sweep/bench/gater.py)
class _RecordingExpert(torch.nn.Module):
    """A frozen expert stand-in: float [B,3,s,s] -> [B,C] logits; records, per call, whether
    bf16 autocast was on and the dtype its Linear produced."""

    def __init__(self, classes=4, size=8):
        super().__init__()
        self.fc = torch.nn.Linear(3 * size * size, classes)
        self.calls = []

    def forward(self, x):
        y = self.fc(x.flatten(1))
        self.calls.append((torch.is_autocast_enabled("cpu"), y.dtype))
        return y


def _tiny_arrays(n=8, size=8, gater_size=16, classes=4):
    rng = np.random.default_rng(0)
    u8 = lambda s: torch.as_tensor(rng.integers(0, 256, (n, s, s, 3), dtype=np.uint8))
    return SimpleNamespace(images=u8(size), gin=u8(gater_size),
                           labels=torch.as_tensor(rng.integers(0, classes, n)))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_algorithm1_experts_run_at_the_gaters_precision(precision):
    """The bf16 pair is fair: through the bench's own Algorithm 1 closure, bf16 runs every
    expert under bf16 autocast like the gater (fp32: no autocast), and hands the loss float32
    logits."""
    sh = BG.Shape("tiny", 8, 16, 8, 4, batch_size=4, alg1_steps=2, cached_steps=2, repeats=1)
    specs = [SimpleNamespace(input_size=8)] * 2
    experts = [_RecordingExpert() for _ in specs]
    alg1, _ = BG._trainers(sh, specs, experts, _tiny_arrays(), torch.tensor([1.0, 2.0]),
                           precision)
    m = alg1(*BG._fresh(len(specs), sh.embed_dim, "cpu"))
    bf16 = precision == "bf16"
    want = (bf16, torch.bfloat16 if bf16 else torch.float32)
    for e in experts:                                      # 8 samples, batch 4: two calls each
        assert e.calls == [want, want]
    assert np.isfinite(m["loss"])
    x = torch.zeros(2, 3, 8, 8)
    assert BG._experts_at(experts, precision, "cpu")[0](x).dtype == torch.float32


def test_warmup_check_tolerance_follows_precision():
    """fp32 trainers must agree to 1e-4; bf16 ones (experts in bf16 vs the fp32 store) to 2e-2,
    with the gap recorded either way."""
    losses = (0.6416, 0.6420)
    fp32, bf16 = BG._warmup_check(losses, "fp32"), BG._warmup_check(losses, "bf16")
    assert fp32["abs_diff"] == bf16["abs_diff"] == pytest.approx(4e-4)
    assert not fp32["match"] and bf16["match"]
    assert BG._warmup_check((0.5, 0.5), "fp32")["match"]
    assert not BG._warmup_check((0.5, 0.52), "bf16")["match"]


def _hand_made_shape():
    """One shape's summary from hand-made counts and speeds (batch 4):
    per sample, cached 4e8 / 4 = 1e8 FLOPs, Algorithm 1 1e8 + 2e9 + 3e9 = 5.1e9, trunk 5e7."""
    sh = BG.Shape("paper", 224, 96, 128, 6, batch_size=4, alg1_steps=1, cached_steps=2,
                  repeats=1)
    specs = [SimpleNamespace(name="a", input_size=224), SimpleNamespace(name="b", input_size=256)]
    count = lambda m, input_shape: {224: 2e9, 256: 3e9}[input_shape[-1]]
    fps = BG._flops_per_sample(sh, specs, [None, None], gater_step=int(4e8),
                               trunk_step=int(2e8), count_flops=count)
    t = {k: {"samples_per_s": v, "runs": [v], "samples": 8} for k, v in
         {"cached": 300.0, "algorithm1": 5.0, "trunk_only": 500.0, "cached_bf16": 400.0,
          "algorithm1_bf16": 10.0}.items()}
    warm = {p: BG._warmup_check((0.5, 0.5), p) for p in ("fp32", "bf16")}
    return BG._summarise(sh, specs, t, fps, warm)


def test_gflops_are_flops_per_sample_times_samples_per_s():
    r = _hand_made_shape()
    assert r["flops_per_sample"] == {"cached_step": 1e8, "algorithm1_step": 5.1e9,
                                     "trunk_only_step": 5e7,
                                     "experts_forward": {"a": 2e9, "b": 3e9}}
    assert r["achieved_gflops"] == pytest.approx(    # 1e8 x 300, 5.1e9 x 5, 5e7 x 500 / 1e9
        {"cached": 30.0, "algorithm1": 25.5, "trunk_only": 25.0})
    # bf16 does the same work: the fp32 counts x the bf16 speeds
    assert r["bf16"]["achieved_gflops"] == pytest.approx({"cached": 40.0, "algorithm1": 51.0})
    assert r["speedup"] == pytest.approx(60.0) and r["flop_ratio"] == pytest.approx(51.0)
    assert r["bf16"]["speedup"] == pytest.approx(40.0)
    # the FLOP ratio is no ceiling: speedup / ratio = cached GFLOP/s / Algorithm 1's, here > 1
    assert r["share_of_flop_ratio"] == pytest.approx(30.0 / 25.5) and r["share_of_flop_ratio"] > 1
    assert "share_of_flop_ceiling" not in r
    assert r["trunk_only_bound"] == pytest.approx(100.0)


def test_section_1_rows_show_flop_ratio_gflops_and_no_target():
    from sweep.bench.__main__ import markdown
    r = _hand_made_shape()
    res = {"sections": {"cached_vs_algorithm1": {"paper": r, "tiny": r}}, "errors": {},
           "device": "test machine", "created": "now", "argv": []}
    md = markdown(res)
    rows = [line for line in md.splitlines() if line.startswith("| 1.")]
    assert len(rows) == 4
    assert all(line.endswith("| - | - |") for line in rows)       # ">= 100x" withdrawn
    assert ">= 100x" not in md and "ceiling" not in md and "**no**" not in md
    paper, paper16 = rows[0], rows[1]
    assert "samples/s 300 (30.0 GFLOP/s) vs 5.0 (25.5 GFLOP/s); FLOP ratio 51x" in paper
    assert "any head: 100x, 25.0 GFLOP/s" in paper and "| 60.0x |" in paper
    assert "samples/s 400 (40.0 GFLOP/s) vs 10.0 (51.0 GFLOP/s)" in paper16
    assert "| 40.0x |" in paper16


def test_frozen_trunk_row_by_hand():
    """_frozen_summary from hand-made numbers: 1,000 samples/s against Algorithm 1's 5 and the
    cached 300; FLOPs 5.1e9 / 3e7 per sample; memory 2,400 vs 900 bytes."""
    from sweep.bench.__main__ import markdown
    r = _hand_made_shape()
    t = {"frozen": {"samples_per_s": 1000.0, "runs": [1000.0], "samples": 8},
         "algorithm1": r["algorithm1"], "cached": r["cached"]}
    arr = SimpleNamespace(bytes_per_sample={"trained": 900, "frozen": 2400})
    fps = {**r["flops_per_sample"], "frozen_step": 3e7}
    f = BG._frozen_summary(t, fps, arr, warm=0.5, cached_warm=0.5)
    assert f["speedup"] == pytest.approx(200.0) and f["vs_cached"] == pytest.approx(10 / 3)
    assert f["flop_ratio"] == pytest.approx(170.0) and f["achieved_gflops"] == pytest.approx(30)
    assert f["memory_vs_cached"] == pytest.approx(2400 / 900)
    res = {"sections": {"cached_vs_algorithm1": {"paper": {**r, "frozen": f}}}, "errors": {},
           "device": "test machine", "created": "now", "argv": []}
    [row] = [x for x in markdown(res).splitlines() if x.startswith("| 1. `gater.trunk: frozen`")]
    assert "samples/s 1000 (30.0 GFLOP/s); 3.33x the cached trainer; FLOP ratio 170x" in row
    assert "2,400 B vs 900 B, 2.7x" in row and row.endswith("| 200.0x | >= 140x | yes |")


def test_search_runs_average_padded_with_their_last_value():
    """A search run that stopped early keeps its hypervolume: runs of 3 and 2 trials average
    over 3 points, the short one repeating its last; each run's trial count is kept."""
    from sweep.bench.search import _mean, summarise
    got = _mean([{"val": [.1, .2, .3], "test": [.2, .4, .6]}, {"val": [.3, .5], "test": [.2, .8]}])
    assert got["test"] == pytest.approx([.2, .6, .7]) and got["val"] == pytest.approx([.2, .35, .4])
    assert got["trials"] == [3, 2]
    curves = {"grid": {"mean": {"val": [.5] * 6, "test": [.7] * 6}},
              "frontier": {"mean": got}, "optuna": {"mean": got}}
    r = summarise(curves, n=6, budget=3)
    assert r["frontier_trials"] == 3 and r["final"]["frontier"]["test"] == pytest.approx(.7)
    assert r["targets_met"]["within_0.5pct_of_grid_with_half_its_trials"]
    assert not summarise(curves, n=5, budget=3)["targets_met"][
        "within_0.5pct_of_grid_with_half_its_trials"]               # 3 trials > 5 / 2


def test_grid_seed_pairs_score_the_grid_without_one_seed(tmp_path):
    """seed_pairs on a fake run: one entry per pair of its seeds, each the HV that _score
    gives the rows of those two seeds alone (the full run scored the same way is the third
    reference)."""
    import itertools

    from sweep.bench.search import _load, _score, seed_pairs
    from tests.fake_results import write_fake_results
    run = write_fake_results(tmp_path / "run", families=("experts",))
    routers, ref, _ = _load(str(run))
    seeds = sorted(routers["seed"].unique())
    got = seed_pairs(str(run))
    assert list(got) == [f"{a:g}+{b:g}" for a, b in itertools.combinations(seeds, 2)]
    for (a, b), v in zip(itertools.combinations(seeds, 2), got.values()):
        assert v == _score(routers[routers["seed"].isin([a, b])], ref)[1]


def test_other_searches_are_scored_like_the_frontier():
    from sweep.bench.__main__ import _rows_6
    from sweep.bench.search import summarise
    curves = {"grid": {"mean": {"val": [.5] * 4, "test": [.8] * 4}},
              "frontier": {"mean": {"val": [.3, .6], "test": [.3, .78]}},
              "frontier_one_seed": {"mean": {"val": [.3, .7], "test": [.4, .792],
                                             "trials": [2, 1]}},
              "optuna": {"mean": {"val": [.2, .5], "test": [.2, .79]}}}
    r = summarise(curves, n=4, budget=2)
    o = r["other_searches"]["frontier_one_seed"]
    assert o["trials"] == 2 and o["test_gap_to_full_grid"] == pytest.approx(0.01)
    assert o["minus_optuna_test_at_budget"] == pytest.approx(0.002)
    rows = [x for x in _rows_6({"search": r}) if x[0].startswith("6. frontier_one_seed vs")]
    assert rows and rows[0][1] == "1.00% below; +0.0020"
