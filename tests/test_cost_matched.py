"""Random routing as a cost-matched curve in both families' rows (issue 13, item 4):
sweep/families/rows.add_cost_matched_random; the mix itself: tests/test_baselines.py."""
import numpy as np
import pytest

from sweep.families import rows
from sweep.families.rows import add_cost_matched_random
from tests.test_rows import FakeTables

# 3 targets at 1, 4, 2 ms; target 0 right on every sample, 1 on none, 2 on even samples.
COSTS = np.array([1.0, 4.0, 2.0])
N = 400
CORRECT = np.stack([np.ones(N, bool), np.zeros(N, bool), np.arange(N) % 2 == 0], axis=1)


def _rows(monkeypatch, levels=4, seeds=(0, 1), suffix=" ms, no gater"):
    monkeypatch.setattr(rows, "COST_LEVELS", levels)
    tables = FakeTables()
    add_cost_matched_random(tables, base={"family": "experts"}, costs=COSTS, correct=CORRECT,
                            names=["sq", "mob", "deit"], seeds=list(seeds), suffix=suffix)
    return tables.rows


def test_one_row_per_level_and_seed_named_by_its_cost(monkeypatch):
    out = _rows(monkeypatch)                  # levels 1, 2, 3, 4 ms
    assert [(r["meta"]["variant"], r["meta"]["seed"]) for r in out] == [
        (f"cost-matched {c} ms, no gater", s) for c in (1, 2, 3, 4) for s in (0, 1)]
    assert all(r["split"] == "test" and r["meta"]["method"] == "random"
               and r["meta"]["family"] == "experts" for r in out)


def test_each_sample_pays_its_target_only_and_the_mix_is_adjacent(monkeypatch):
    out = _rows(monkeypatch)
    for r in out:
        t = np.array(r["target"])
        np.testing.assert_array_equal(r["cost"], COSTS[t])                  # no overhead
        np.testing.assert_array_equal(r["correct"], CORRECT[np.arange(N), t])
    assert set(out[0]["target"]) == {0} and set(out[2]["target"]) == {2}   # 1 ms, 2 ms alone
    assert set(out[4]["target"]) == {1, 2}                                 # 3 ms: 2 and 4 ms
    assert set(out[6]["target"]) == {1}
    assert np.mean(out[4]["cost"]) == pytest.approx(3.0, abs=5 * np.sqrt(1 / N))
    assert out[4]["target"] != out[5]["target"]                            # seeds differ


def test_the_default_curve_has_eleven_levels_from_cheapest_to_costliest(monkeypatch):
    out = _rows(monkeypatch, levels=rows.COST_LEVELS, seeds=(0,), suffix="")
    assert rows.COST_LEVELS == 11
    assert [r["meta"]["variant"] for r in out] == [
        f"cost-matched {c:.4g}" for c in np.linspace(1, 4, 11)]


def _store(key, names, rng, n=40, c=3):
    split = lambda: {"label": rng.integers(0, c, n), key: rng.normal(size=(n, len(names), c))}
    return {"meta": {key.split("_")[0] + "s" if key == "expert_logits" else "exits": names},
            "val": split(), "test": split()}


def test_both_families_assemble_the_random_curve_and_the_exit_family_keeps_uniform():
    from sweep.config import load_config
    from sweep.families import em, gater
    rng = np.random.default_rng(0)
    cfg = load_config()
    trials = [{"seed": s, "status": "failed", "trial_id": f"t{s}", "lam": 1.0, "tau": 1.0,
               "error": "x"} for s in (0, 1)]
    tab = FakeTables()
    gater.assemble(gater.FAMILY, tab, _store("expert_logits", ["sq", "mob", "deit"], rng),
                   trials, {"expert_ms": [1.0, 4.0, 2.0], "gater_ms": 0.5}, cfg)
    rand = [r for r in tab.rows if r["meta"]["method"] == "random"]
    assert len(rand) == 11 * 2 and rand[0]["meta"]["variant"] == "cost-matched 1 ms, no gater"
    assert all(np.isin(r["cost"], [1.0, 4.0, 2.0]).all() for r in rand)     # gater not charged
    tab = FakeTables()
    em.assemble(em.FAMILY, tab, _store("exit_logits", ["e0", "e1", "e2"], rng), trials,
                {"exit_costs": [0.2, 0.6, 1.0]}, cfg)
    variants = [r["meta"]["variant"] for r in tab.rows if r["meta"]["method"] == "random"]
    assert variants[:2] == ["uniform", "uniform"] and len(variants) == 2 + 11 * 2
    assert variants[2] == "cost-matched 0.2" and variants[-1] == "cost-matched 1"
