"""The family registry: a family is tested by being registered.

* every registered family runs end to end on the tiny store: its trial function (with an
  in-memory session instead of Ray) on its first grid points, then its rows -> the three tables,
  which must keep the contract (its family / method / cost unit, routes summing to 1, decisions
  agreeing with points);
* a toy third family -- the cheapest expert when its softmax is confident, else the costliest --
  is added HERE by registering it (no sweep code knows it): it gets its own config section, runs
  through the same checks, and (slow) through Ray Tune into points.parquet and the report;
* the one λ / τ validator (`Family.section_rules`) takes each family's λ range; a family
  whose section lacks a grid field or a rule for a field is refused when registered.
"""
import json
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from sweep import families
from sweep.config import load_config
from sweep.errors import UserError
from sweep.families import Family, Words, gater, rows
from sweep.results.tables import Tables
from sweep.rules import Num
from tests.conftest import TINY


# --------------------------------------------------------------------- the toy third family
@dataclass(frozen=True)
class ConfidenceConfig:                       # config section `confidence:`
    enabled: bool = False
    lams: tuple[float, ...] = (0.5, 0.9)      # λ: the confidence threshold
    taus: tuple[float, ...] = (1.0,)          # τ: the softmax temperature
    seeds: tuple[int, ...] = (0,)


def _route(split: dict, point: dict, ms) -> np.ndarray:
    """Cheapest expert where its max softmax (at temperature τ) >= λ, else the costliest."""
    z = split["expert_logits"][:, int(np.argmin(ms))] / point["tau"]          # [N, C]
    conf = np.exp(z - z.max(1, keepdims=True))
    conf = conf.max(1) / conf.sum(1)
    return np.where(conf >= point["lam"], np.argmin(ms), np.argmax(ms)).astype(np.int8)


def confidence_trial(point, settings, store, session):
    ms = settings["expert_ms"]
    session.report({"status": "ok"}, arrays={f"{k}_target": _route(store[k], point, ms)
                                             for k in ("val", "test")})


TOY = Family(name="confidence", section="confidence", config=ConfidenceConfig,
             method="confidence", cost_unit="ms", store_part="experts", lam_range=(0.0, 1.0),
             words=Words(lam="λ (confidence threshold)", tau="τ (softmax temperature)"),
             costs=gater.expert_costs, settings=lambda cfg, costs: costs,
             trial=confidence_trial,
             assemble=rows.routed_rows(logits="expert_logits", names="experts",
                                       cost="expert_ms"))


@pytest.fixture
def toy():
    families.register(TOY)
    yield TOY
    families.unregister(TOY.name)


# --------------------------------------------------------------------- running a family
class MemorySession:
    """The Ray layer's Session, in memory: reports kept, the last arrays are the decisions."""
    device = "cpu"

    def __init__(self):
        self.reports, self.arrays = [], None

    def restore(self):
        return None

    def report(self, metrics, state=None, arrays=None):
        self.reports.append(metrics)
        if arrays is not None:
            self.arrays = arrays


def run_family(family, cfg, store, *, points=2):
    """The family's first grid points as trials, then its rows -> (points, routes, decisions)."""
    costs = families.resolve_costs(cfg, store["meta"])[family.name]
    settings = family.settings(cfg, costs)
    shared = {k: v for k, v in store.items() if k != "meta"} | family.extras(cfg)
    trials = []
    for i, point in enumerate(family.grid(cfg)[:points]):
        session = MemorySession()
        family.trial(point, settings, shared, session)
        trials.append({**point, "trial_id": f"t{i}", "status": session.reports[-1]["status"],
                       "error": None, "decisions": session.arrays})
    tables = Tables(severity={k: store[k]["severity"] for k in ("val", "test")},
                    sample_id=store["test"]["sample_id"], label=store["test"]["label"])
    family.assemble(family, tables, store, trials, costs, cfg)
    return tables.frames()


def _check_contract(family, cfg, points, routes, decisions):
    assert set(points["family"]) == {family.name}
    assert set(points["cost_unit"]) == {family.cost_unit}
    assert family.method in set(points["method"])
    assert set(points["method"]) <= {family.method, *family.methods}
    learned = points[points["method"] == family.method]
    assert set(learned["lam"]) <= set(family.section_of(cfg).lams)
    assert (learned["status"] == "ok").all() and learned["accuracy"].between(0, 1).all()
    sums = routes.groupby(["point_id", "severity"])["fraction"].sum()
    assert np.allclose(sums, 1.0)
    p = points[(points["split"] == "test") & (points["severity"] == "all")]
    acc = decisions.groupby("point_id")["correct"].mean()
    cost = decisions.groupby("point_id")["cost"].mean()
    assert np.allclose(acc, p.set_index("point_id").loc[acc.index, "accuracy"])
    assert np.allclose(cost, p.set_index("point_id").loc[cost.index, "cost"])


FAST = ["gater.epochs=1", "gater.batch_size=16", "exits.em_iters=1", "exits.router_epochs=1",
        "confidence.enabled=true"]


@pytest.mark.slow
@pytest.mark.parametrize("name", [f.name for f in families.families()] + ["confidence"])
def test_every_registered_family_runs_end_to_end(name, tiny_store, toy):
    cfg0, _, store, _ = tiny_store
    cfg = load_config(None, [f"cache_dir={cfg0.cache_dir}", *TINY, *FAST])
    family = families.get(name)
    _check_contract(family, cfg, *run_family(family, cfg, store))


# --------------------------------------------------------------------- registering one
def test_a_registered_family_brings_its_config_section(toy):
    cfg = load_config(None, ["confidence.enabled=true", "confidence.lams=[0.3]",
                             "gater.enabled=false", "exits.enabled=false"])
    assert cfg.confidence == ConfidenceConfig(enabled=True, lams=(0.3,))
    assert [f.name for f in families.enabled(cfg)] == ["confidence"]
    assert [p["lam"] for p in TOY.grid(cfg)] == [0.3]
    with pytest.raises(UserError, match="confidence.lams has 1.5"):
        load_config(None, ["confidence.enabled=true", "confidence.lams=[1.5]"])


def test_an_unregistered_section_is_unknown():
    with pytest.raises(UserError, match="unknown config key: 'confidence'"):
        load_config(None, ["confidence.enabled=true"])


def test_names_and_sections_are_unique(toy):
    with pytest.raises(ValueError, match="taken"):
        families.register(TOY)
    with pytest.raises(ValueError, match="reserved"):
        families.register(Family(**{**TOY.__dict__, "name": "x", "section": "data"}))


def test_every_field_of_a_family_section_needs_a_rule():
    @dataclass(frozen=True)
    class WithExtra(ConfidenceConfig):
        margin: float = 0.1
    extra = {**TOY.__dict__, "name": "x", "section": "x", "config": WithExtra}
    with pytest.raises(ValueError, match="no rule for x.margin"):
        families.register(Family(**extra))
    families.register(Family(**{**extra, "rules": {"margin": Num(0, 1)}}))
    try:
        with pytest.raises(UserError, match="x.margin must be a finite number in \\[0, 1\\]"):
            load_config(None, ["x.margin=2.0"])
    finally:
        families.unregister("x")

    @dataclass(frozen=True)
    class NoSeeds:
        enabled: bool = False
        lams: tuple[float, ...] = (0.5,)
        taus: tuple[float, ...] = (1.0,)
    with pytest.raises(ValueError, match="lacks seeds"):
        families.register(Family(**{**extra, "config": NoSeeds}))


@pytest.mark.parametrize("section, values, ok", [
    ("gater", [0.0, 1.0], True), ("gater", [1.2], False),      # gater λ weighs CE: [0, 1]
    ("exits", [0.0, 8.0], True), ("exits", [-0.5], False)])    # EM λ weighs cost: >= 0
def test_the_one_lambda_validator_takes_each_familys_range(section, values, ok):
    sets = [f"{section}.lams={values}"]
    if ok:
        assert getattr(load_config(None, sets), section).lams == tuple(values)
    else:
        with pytest.raises(UserError, match=f"{section}.lams"):
            load_config(None, sets)
    with pytest.raises(UserError, match=f"{section}.taus has 0"):
        load_config(None, [f"{section}.taus=[0]"])


# --------------------------------------------------------------------- through Tune
@pytest.mark.slow
def test_a_toy_family_runs_through_tune_into_the_tables_and_report(tiny_store, toy, tmp_path):
    """Registered from this file only: Tune runs its trials (their function pickled by value:
    Ray workers cannot import a test module), its rows reach points.parquet, and the manifest
    and the report say what its λ and τ are."""
    import ray.cloudpickle

    from sweep.pipeline import run_pipeline
    from sweep.tuning import cluster
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cfg0 = tiny_store[0]
    cfg = load_config(None, [f"cache_dir={cfg0.cache_dir}", *TINY,
                             "confidence.enabled=true", "gater.enabled=false",
                             "exits.enabled=false", "sweep.tune_verbose=0"])
    out = tmp_path / "run"
    try:
        manifest = run_pipeline(cfg, out=str(out))
    finally:
        cluster.shutdown()
    assert manifest["status"] == "complete" and len(manifest["trials"]) == 2
    assert manifest["feature_store"]["experts"]["cache_hit"]       # the tiny store's part
    points = pd.read_parquet(out / "points.parquet")
    assert set(points["family"]) == {"confidence"}
    assert sorted(points.loc[points["split"] == "test", "lam"].unique()) == [0.5, 0.9]
    _check_contract(TOY, cfg, points, pd.read_parquet(out / "routes.parquet"),
                    pd.read_parquet(out / "decisions.parquet"))
    written = json.loads((out / "manifest.json").read_text())
    assert written["families"]["confidence"]["lam"] == "λ (confidence threshold)"
    page = (out / "report.html").read_text()
    assert "λ (confidence threshold)" in page and "τ (softmax temperature)" in page
