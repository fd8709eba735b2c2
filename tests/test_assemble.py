"""The results assembly (sweep/results/assemble.py): every enabled family adds its rows, with its
own trials and costs, to one set of tables keyed by the TEST split's samples."""
from dataclasses import dataclass

import numpy as np
import pytest

from sweep import families
from sweep.config import SEVERITIES, load_config
from sweep.families import Family, Words
from sweep.results.assemble import tables


@dataclass(frozen=True)
class _Section:
    enabled: bool = True
    lams: tuple[float, ...] = (0.5,)
    taus: tuple[float, ...] = (1.0,)
    seeds: tuple[int, ...] = (0,)


CALLS = []


def _assemble(family, tab, store, trials, costs, cfg):
    """One test row per trial: target 0 on every sample, correct where the label is 0."""
    CALLS.append((family.name, cfg))
    for t in trials:
        tab.add(meta={"family": family.name, "method": family.method, "seed": t["seed"],
                      "lam": t["lam"], "tau": 1.0, "trial_id": t["trial_id"]},
                split="test", target=np.zeros(3, int), correct=store["test"]["label"] == 0,
                cost=np.full(3, costs["c"]), target_names=["a", "b"])


def _family(name):
    return Family(name=name, section=name, config=_Section, method=f"{name}-m", cost_unit="u",
                  words=Words(lam="λ", tau="τ"), store_part="experts", costs=None,
                  settings=None, trial=None, assemble=_assemble)


@pytest.fixture
def two():
    fams = [families.register(_family(n)) for n in ("fa", "fb")]
    yield fams
    for f in fams:
        families.unregister(f.name)


def test_each_enabled_family_gets_its_own_trials_and_costs(two):
    cfg = load_config(None, ["gater.enabled=false", "exits.enabled=false", "fb.enabled=false"])
    store = {"val": {"severity": np.array([0, 1])},
             "test": {"severity": np.array([0, 0, 2]), "sample_id": np.array([7, 8, 9]),
                      "label": np.array([0, 1, 0])}}
    trials = [{"family": "fa", "trial_id": "t1", "seed": 3, "lam": 0.5},
              {"family": "fb", "trial_id": "t2", "seed": 4, "lam": 0.5}]
    CALLS.clear()
    points, routes, dec = tables(cfg, store, {"fa": {"c": 2.5}, "fb": {"c": 9.0}}, trials)
    assert CALLS == [("fa", cfg)]                        # once, with the run's config
    assert set(points["family"]) == {"fa"} and set(points["trial_id"]) == {"t1"}   # fb is off
    assert list(dec["sample_id"]) == [7, 8, 9] and list(dec["label"]) == [0, 1, 0]
    assert list(dec["severity"]) == [SEVERITIES[0], SEVERITIES[0], SEVERITIES[2]]
    allp = points[points["severity"] == "all"].iloc[0]
    assert allp["accuracy"] == pytest.approx(2 / 3) and allp["cost"] == 2.5
    assert set(points["severity"]) == {"all", *set(dec["severity"])}   # test's severities
    assert routes.groupby("severity")["fraction"].sum().eq(1.0).all()
