"""sweep.axes (sweep/families/axes.py): any trial setting of a family as one more grid axis.

By hand: the combinations, the grid they multiply, the settings each trial gets, the rows'
variant and columns; the checks (exit 2) before any compute; and, for every registered family,
that its axes are fields of its section that its trials read from their settings."""
import pytest

from sweep import families
from sweep.config import load_config
from sweep.errors import UserError
from sweep.families import axes as AX
from sweep.families.rows import trial_meta
from sweep.tuning.trials import router_trial
from sweep.tuning.tuner import trial_settings

LR, DIM = "sweep.axes.gater.lr=[0.0001,0.0003]", "sweep.axes.gater.embed_dim=[32,64]"


def _cfg(*sets):
    return load_config(None, list(sets))


def test_combinations_by_hand():
    nested = {"gater": {"lr": [1e-4, 3e-4], "embed_dim": [32, 64]}, "exits.em_iters": [2]}
    assert AX.flat(nested) == {"gater.lr": [1e-4, 3e-4], "gater.embed_dim": [32, 64],
                               "exits.em_iters": [2]}
    assert AX.combos(nested, "gater") == [
        {"gater.lr": 1e-4, "gater.embed_dim": 32}, {"gater.lr": 1e-4, "gater.embed_dim": 64},
        {"gater.lr": 3e-4, "gater.embed_dim": 32}, {"gater.lr": 3e-4, "gater.embed_dim": 64}]
    assert AX.combos(nested, "exits") == [{"exits.em_iters": 2}]
    assert AX.combos({}, "gater") == [{}]
    assert AX.label({"gater.lr": 1e-4, "gater.eval_route": "sampled"}) == \
        "lr=0.0001 eval_route=sampled"
    cfg = AX.apply(_cfg(), {"gater.lr": 1e-4, "exits.em_iters": 2})
    assert (cfg.gater.lr, cfg.exits.em_iters, cfg.gater.epochs) == (1e-4, 2, _cfg().gater.epochs)


def test_the_axes_multiply_the_grid_and_ride_on_each_point():
    base, cfg = _cfg(), _cfg(LR, DIM)
    gater = families.get("experts")
    points = gater.grid(cfg)
    assert len(points) == 4 * len(gater.grid(base))
    assert points[0]["axes"] == {"gater.lr": 1e-4, "gater.embed_dim": 32}
    assert points[-1]["axes"] == {"gater.lr": 3e-4, "gater.embed_dim": 64}
    assert all("axes" not in p for p in families.get("exits").grid(cfg))
    assert all("axes" not in p for p in gater.grid(base))


def test_each_trial_gets_the_settings_of_its_combination():
    cfg = _cfg(LR)
    costs = {"experts": {"expert_ms": [1.0, 2.0], "gater_ms": 0.1},
             "exits": {"exit_costs": [0.5, 1.0]}}
    s = trial_settings(cfg, costs)
    assert set(s["axes"]) == {"experts"}
    assert {k: v["lr"] for k, v in s["axes"]["experts"].items()} == {
        "lr=0.0001": 1e-4, "lr=0.0003": 3e-4}
    assert "axes" not in trial_settings(_cfg(), costs)
    got = {}
    trials = {"experts": lambda point, own, store, session: got.update(lr=own["lr"])}
    point = families.get("experts").grid(cfg)[-1]
    router_trial({"settings": s, "point": point}, {}, trials)
    assert got["lr"] == 3e-4
    router_trial({"settings": s, "point": {"family": "experts"}}, {}, trials)
    assert got["lr"] == cfg.gater.lr                       # a point without axes: as before


def test_rows_carry_a_column_per_axis_and_the_combination_in_variant():
    t = {"trial_id": "t1", "seed": 0, "lam": 0.5, "tau": 1.0, "status": "ok",
         "variant": "weighted", "axes": {"exits.router_lr": 0.01, "exits.em_iters": 2}}
    meta = trial_meta(None, t, base={"family": "exits"}, method="em_router")
    assert meta["variant"] == "weighted router_lr=0.01 em_iters=2"
    assert meta["exits.router_lr"] == 0.01 and meta["exits.em_iters"] == 2
    plain = trial_meta(None, {**t, "variant": None, "axes": None}, base={}, method="m")
    assert plain["variant"] is None and "exits.router_lr" not in plain


@pytest.mark.parametrize("sets, message", [
    (["sweep.axes.gater.gater_size=[8,16]"], "sweep.axes has 'gater.gater_size': an axis"),
    (["sweep.axes.gater.lr=[-1]"], "sweep.axes.gater.lr has -1"),
    (["sweep.axes.gater.lr=0.1"], "sweep.axes.gater.lr must be a list"),
    (["sweep.axes.gater.lr=[0.1,0.1]"], "has 0.1 twice"),
    (["sweep.axes.gater.lams=[[0.5]]"], "sweep.axes has 'gater.lams'"),
    (["gater.enabled=false", "sweep.axes.gater.lr=[0.1]"], "sweep.axes has 'gater.lr'"),
    (["sweep.axes.gater.eval_route=[argmax,greedy]"], "has 'greedy'"),
    (["sweep.max_grid_trials=100", LR], "more than sweep.max_grid_trials|sweep.max_grid_trials"),
])
def test_bad_axes_stop_before_any_compute(sets, message):
    with pytest.raises(UserError, match=message):
        _cfg(*sets)


@pytest.mark.parametrize("family", families.families(), ids=lambda f: f.name)
def test_every_axis_is_a_setting_its_trials_read(family):
    """A registered family's axes are fields of its section, not the grid's own, and changing
    one changes what `settings` hands its trials."""
    cfg = _cfg()
    section = family.section_of(cfg)
    costs = {"expert_ms": [1.0, 2.0], "gater_ms": 0.1, "exit_costs": [0.5, 1.0]}
    before = family.settings(cfg, costs)
    for name in family.axes:
        assert hasattr(section, name) and name not in ("enabled", "lams", "taus", "seeds")
        value = getattr(section, name)
        other = {"argmax": "sampled", "fp32": "bf16"}.get(value, value * 2 if not isinstance(
            value, str) else value)
        after = family.settings(AX.apply(cfg, {f"{family.section}.{name}": other}), costs)
        assert after != before, name


def test_em_thresholds_are_chosen_per_combination_of_axes():
    """Two EM trials at the same (λ, τ, seed) that differ only in an axis have their own val
    curves: each keeps its own Pareto thresholds (not those of the two mixed)."""
    from sweep.families.em import _em_router
    from tests.test_rows import COST, CORRECT, ROUTES, THRESHOLDS, FakeTables
    other = {s: ROUTES[s].copy() for s in ROUTES}
    other["val"][1] = [0, 0, 1, 1]                  # keeps {.2, .5} on its own; mixed: all three

    def trial(routes, hidden):
        return {"trial_id": f"t{hidden}", "seed": 0, "lam": 1.0, "tau": 1.0, "status": "ok",
                "error": None, "axes": {"exits.router_hidden": hidden},
                "decisions": {f"{s}_target": routes[s] for s in routes}}

    tables = FakeTables()
    _em_router(tables, [trial(ROUTES, 16), trial(other, 32)], base={"family": "exits"},
               method="em_router", c=COST, correct=CORRECT, names=["e0", "e1"],
               thresholds=THRESHOLDS)
    assert tables.thresholds("test", variant="router_hidden=16") == [0.2, 0.8]
    assert tables.thresholds("test", variant="router_hidden=32") == [0.2, 0.5]


def test_a_missing_combination_is_a_failed_row_and_a_search_has_no_grid_to_miss():
    from sweep.pipeline import expected_trials
    sets = ["exits.lams=[1]", "exits.taus=[1]", "exits.seeds=[0]", "gater.enabled=false",
            "sweep.axes.exits.router_hidden=[16,32]"]
    one = {"family": "exits", "lam": 1.0, "tau": 1.0, "seed": 0, "status": "ok",
           "axes": {"exits.router_hidden": 16}}
    out = expected_trials(_cfg(*sets), [one])
    assert [(t["axes"]["exits.router_hidden"], t["status"]) for t in out] == [
        (16, "ok"), (32, "failed")]
    assert expected_trials(_cfg(*sets, "sweep.search=frontier"), [one]) == [one]
