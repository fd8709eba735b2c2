"""exits.m_step (issue 13): the config key, the grid's variants, the trial's M-step and the rows
that tell the two M-steps apart. The maths of the weighted M-step: tests/test_em_router.py."""
import numpy as np
import pytest

from sweep.config import load_config
from sweep.config.validate import grid_trials
from sweep.errors import UserError
from sweep.families import em
from sweep.families.em import _em_router
from sweep.tuning.tuner import grid_points
from tests.test_rows import CORRECT, COST, ROUTES, THRESHOLDS, FakeTables


def test_m_step_default_is_paper_and_the_grid_is_unchanged():
    cfg = load_config()
    assert cfg.exits.m_step == "paper"
    pts = [p for p in grid_points(cfg) if p["family"] == "exits"]
    assert len(pts) == 6 * 3 * 3 and all("variant" not in p for p in pts)


@pytest.mark.parametrize("value,variants", [("paper", [None]), ("weighted", ["weighted"]),
                                            ("both", [None, "weighted"])])
def test_m_step_variants_of_the_grid(value, variants):
    cfg = load_config(overrides=[f"exits.m_step={value}", "exits.lams=[0,1]", "exits.taus=[1]",
                                 "exits.seeds=[0]"])
    pts = [p for p in grid_points(cfg) if p["family"] == "exits"]
    assert [p.get("variant") for p in pts] == [v for v in variants for _ in (0, 1)]
    assert [p["lam"] for p in pts] == [0.0, 1.0] * len(variants)
    assert grid_trials(cfg)["exits"] == 2 * len(variants)     # the grid cap counts them


def test_m_step_bad_value_is_a_user_error_naming_the_key():
    with pytest.raises(UserError, match=r"exits\.m_step must be one of paper, weighted, both"):
        load_config(overrides=["exits.m_step=exact"])


def test_trial_runs_the_m_step_of_its_variant(monkeypatch):
    seen = []

    class Stop(Exception):
        pass

    def fake_run_em(**kw):
        seen.append(kw["m_step"])
        raise Stop

    monkeypatch.setattr(em.EM, "run_em", fake_run_em)
    monkeypatch.setattr(em, "_exit_arrays", lambda *a: (None, None))

    class Session:
        device = "cpu"

        def restore(self):
            return None

    for point in ({"lam": 1.0, "tau": 1.0, "seed": 0},
                  {"lam": 1.0, "tau": 1.0, "seed": 0, "variant": "weighted"}):
        with pytest.raises(Stop):
            em.trial(point, em.settings(load_config(), {"exit_costs": [0.5, 1.0]}),
                     {"train": {}}, Session())
    assert seen == ["paper", "weighted"]


def _trial(seed, routes, variant=None):
    t = {"trial_id": f"t{seed}-{variant}", "seed": seed, "lam": 1.0, "tau": 1.0, "status": "ok",
         "error": None, "decisions": {f"{s}_target": routes[s] for s in routes}}
    return t if variant is None else {**t, "variant": variant}


def test_em_rows_keep_the_m_steps_apart():
    """Same (λ, τ), two M-steps: each variant's thresholds come from its OWN val curve (not the
    mean of both), and its rows carry its variant. Paper alone keeps {.2, .8} (test_rows.py);
    a weighted trial routing thr .5 as [0,0,1,1] keeps {.2, .5}; averaged they would keep all."""
    other = {s: ROUTES[s].copy() for s in ROUTES}
    other["val"][1] = [0, 0, 1, 1]
    tables = FakeTables()
    _em_router(tables, [_trial(0, ROUTES), _trial(0, other, "weighted")],
               base={"family": "exits"}, method="em_router", c=COST, correct=CORRECT,
               names=["e0", "e1"], thresholds=THRESHOLDS)
    assert tables.thresholds("test", variant=None) == [0.2, 0.8]
    assert tables.thresholds("test", variant="weighted") == [0.2, 0.5]
    assert {r["meta"]["variant"] for r in tables.rows} == {None, "weighted"}


def test_a_missing_weighted_trial_is_a_failed_row_not_hidden_by_its_paper_twin():
    from sweep.pipeline import expected_trials
    cfg = load_config(overrides=["exits.m_step=both", "exits.lams=[1]", "exits.taus=[1]",
                                 "exits.seeds=[0]", "gater.enabled=false"])
    paper = {"family": "exits", "lam": 1.0, "tau": 1.0, "seed": 0, "status": "ok"}
    out = expected_trials(cfg, [paper])
    assert [(t.get("variant"), t["status"]) for t in out] == [(None, "ok"), ("weighted", "failed")]
