"""analysis/variants.py: a variant against the method as is, paired per seed and test unit,
on hand-made points and decisions whose difference is worked out by hand."""
import numpy as np
import pandas as pd
import pytest

from analysis.variants import COLUMNS, variant_display, variant_table
from analysis.verdict import lift_test

# correct[variant][(lam, tau, seed)] on 4 test units (sample_ids 0..3, one severity each)
CORRECT = {
    None: {(0.5, 1.0, 0): [1, 1, 0, 0], (0.5, 1.0, 1): [1, 0, 0, 0],
           (0.5, 2.0, 0): [1, 1, 1, 0], (0.5, 2.0, 1): [1, 1, 0, 0],
           (1.0, 1.0, 0): [1, 1, 1, 1], (1.0, 1.0, 1): [1, 1, 1, 0]},
    "frozen trunk": {(0.5, 1.0, 0): [1, 0, 0, 0], (0.5, 1.0, 1): [1, 0, 0, 0],
                     (0.5, 2.0, 0): [1, 1, 0, 0], (0.5, 2.0, 1): [0, 1, 0, 0],
                     (1.0, 1.0, 0): [1, 1, 1, 1], (1.0, 1.0, 1): [1, 1, 1, 1]},
}


def _fake(correct=CORRECT, threshold=None):
    points, decisions = [], []
    for variant, runs in correct.items():
        for (lam, tau, seed), c in runs.items():
            pid = f"g/{variant}/{lam}/{tau}/{seed}"
            points.append({"point_id": pid, "family": "experts", "method": "gater",
                           "variant": variant, "trial_id": pid, "seed": seed, "lam": lam,
                           "tau": tau, "threshold": threshold, "split": "test",
                           "severity": "all", "accuracy": np.mean(c),
                           "cost": 2.0 if variant else 3.0, "status": "ok"})
            decisions += [{"point_id": pid, "sample_id": i, "severity": "clean",
                           "label": 0, "target": 0, "correct": bool(x),
                           "cost": 2.0 if variant else 3.0} for i, x in enumerate(c)]
    return pd.DataFrame(points), pd.DataFrame(decisions)


def _diff(lams):
    """y[s, i] by hand: the mean over the λs' τ of (frozen − as is) per seed and unit."""
    rows = []
    for seed in (0, 1):
        keys = [k for k in CORRECT[None] if k[0] in lams and k[2] == seed]
        rows.append(np.mean([np.subtract(CORRECT["frozen trunk"][k], CORRECT[None][k])
                             for k in keys], axis=0))
    return np.array(rows)                                                  # [S=2, n=4]


def test_the_difference_is_paired_per_seed_and_unit():
    points, decisions = _fake()
    t = variant_table(points, decisions)
    assert list(t.columns) == COLUMNS and len(t) == 3        # λ 0.5, λ 1, all
    half = t[t["lam"] == 0.5].iloc[0]
    want = lift_test(_diff({0.5}))
    # by hand: seed 0: τ1 (0,-1,0,0), τ2 (0,0,-1,0) -> (0,-.5,-.5,0); seed 1: τ1 0, τ2
    # (-1,0,0,0) -> (-.5,0,0,0): ȳ = (-1 - .5) / 8 = -0.1875
    assert half["accuracy_diff"] == pytest.approx(-0.1875) == pytest.approx(want["lift"])
    assert (half["diff_lo"], half["diff_hi"]) == pytest.approx((want["lift_lo"],
                                                                want["lift_hi"]))
    assert half["settings"] == 2 and half["seeds"] == 2
    assert half["accuracy_as_is"] == pytest.approx(np.mean([.5, .25, .75, .5]))
    assert half["cost_as_is"] == 3.0 and half["cost_variant"] == 2.0
    whole = t[t["lam"].isna()].iloc[0]
    assert whole["accuracy_diff"] == pytest.approx(lift_test(_diff({0.5, 1.0}))["lift"])


def test_without_decisions_the_seeds_carry_the_interval():
    points, _ = _fake()
    t = variant_table(points, None)
    one = t[t["lam"] == 1.0].iloc[0]
    # per seed: seed 0: 1 - 1 = 0; seed 1: 1 - .75 = +.25
    assert one["accuracy_diff"] == pytest.approx(0.125)
    assert one["ci_method"] == lift_test(np.array([0.0, 0.25]))["ci_method"]


def test_nothing_to_compare_gives_an_empty_table():
    only = {None: CORRECT[None]}
    assert variant_table(*_fake(only)).empty
    axes = {"lr=0.1": CORRECT[None], "lr=0.2": CORRECT["frozen trunk"]}   # no "as is" rows
    assert variant_table(*_fake(axes)).empty
    assert variant_table(*_fake(threshold=0.5)).empty      # threshold methods: not here


def test_a_setting_only_one_side_ran_is_left_out():
    lopsided = {None: CORRECT[None],
                "frozen trunk": {k: v for k, v in CORRECT["frozen trunk"].items()
                                 if k[1] == 1.0}}                    # no τ 2 for the variant
    t = variant_table(*_fake(lopsided))
    half = t[t["lam"] == 0.5].iloc[0]
    assert half["settings"] == 1
    # τ 1 only: seed 0 (0,-1,0,0), seed 1 zeros: -1/8
    assert half["accuracy_diff"] == pytest.approx(-0.125)


def test_display_in_points_with_the_interval():
    shown = variant_display(variant_table(*_fake()), lam_word="λ (w)")
    assert list(shown["λ (w)"]) == ["0.5", "1", "all"]
    assert shown["Δ acc (pts) [95 % CI]"].iloc[0].startswith("-18.75 [")
    assert shown["variant"].iloc[0] == "gater frozen trunk"
