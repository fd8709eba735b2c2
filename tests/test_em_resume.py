"""An EM trial interrupted between rounds resumes from its round checkpoint, bit-identically.

Unit level: a round's state goes through torch.save / torch.load(weights_only=True) (what
sweep.tuning.trials.Session.report / restore do) and the resumed run_em equals the
uninterrupted one; the EM family's trial (sweep.families.em.trial) restored from a round
checkpoint writes the same decisions.
"""
import io
import math

import numpy as np
import pytest
import torch

import sweep.tuning.trials as T
from sweep.families import em
from tests.fake_run import fake_tune
from trainers.em_router import run_em

torch.set_num_threads(1)

EM_KW = dict(costs=[.25, .5, .75, 1.], lam=2.0, tau=1.0, tol=0.0, hidden=8, epochs=3,
             lr=1e-2, batch_size=32, seed=3)


def _data(n=96, seed=0):
    """Features that reveal which exits are right (as in test_em_router._separable)."""
    rng = np.random.default_rng(seed)
    easy = rng.random(n) < 0.5
    feats = [np.c_[np.where(easy, 1.0, -1.0) + 0.3 * rng.normal(size=n),
                   rng.normal(size=(n, d - 1))].astype(np.float32) for d in (3, 4, 5, 6)]
    ll = np.where(easy[:, None], np.log(0.9), [math.log(0.1)] * 3 + [math.log(0.9)])
    return feats, ll + 0.05 * rng.normal(size=ll.shape)


def _through_disk(state):
    """What a checkpoint does to a state: torch.save, then the restore's safe load."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, map_location="cpu", weights_only=True)


def _same_history(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:       # NaN (round 0's posterior_change) equals NaN here
            assert x[k] == y[k] or (math.isnan(x[k]) and math.isnan(y[k])), k


def test_em_state_is_weights_only_and_resumes_bit_identically():
    feats, ll = _data()
    full = run_em(features=feats, log_lik=ll, em_iters=3, **EM_KW)
    states = []
    run_em(features=feats, log_lik=ll, em_iters=1, on_round=lambda r, m, s: states.append(s),
           **EM_KW)
    state = states[-1]
    assert T.not_weights_only(state) is None, T.not_weights_only(state)
    resumed = run_em(features=feats, log_lik=ll, em_iters=3, state=_through_disk(state),
                     **EM_KW)
    assert len(full.history) == 3 and full.posterior.dtype == np.float64
    np.testing.assert_array_equal(full.posterior, resumed.posterior)
    wa, wb = full.routers.state_dict(), resumed.routers.state_dict()
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    _same_history(full.history, resumed.history)
    # the resume did train rounds 1 and 2 (not a restored copy of round 0's routers)
    assert not all(torch.equal(wa[k], state["routers"][k]) for k in wa)


def test_every_round_state_survives_a_weights_only_load():
    """Every round's state, the converged one included (np.bool_ / np.float64 would not)."""
    feats, ll = _data(n=64, seed=1)
    states = []
    run_em(features=feats, log_lik=ll, em_iters=6, on_round=lambda r, m, s: states.append(s),
           **{**EM_KW, "tol": 1.0})
    assert states[-1]["converged"] is True and len(states) == 2
    for s in states:
        back = _through_disk(s)
        assert back["round"] == s["round"] and back["posterior"].dtype == torch.float64
        _same_history(back["history"], s["history"])


def test_weights_only_check_names_numpy_values():
    assert T.not_weights_only({"a": [1, 2.0, None, "x", (True,)], "t": torch.zeros(2)}) is None
    assert T.not_weights_only({"p": np.zeros(2)}) == "state['p']: numpy.ndarray"
    assert "numpy.float64" in T.not_weights_only({"h": [{"m": np.float64(0.5)}]})
    assert "numpy.bool" in T.not_weights_only({"c": np.bool_(True)})
    with pytest.raises(TypeError, match="would not restore"):
        T.Session({}).report({}, {"posterior": np.zeros(2)})


# ----------------------------------------------------------------------- the trial (em.trial)

def _split(n, seed):
    rng = np.random.default_rng(seed)
    k, c = 4, 3
    label = rng.integers(0, c, n)
    logits = rng.normal(size=(n, k, c)).astype(np.float32)
    logits[np.arange(n), :, label] += np.linspace(0.0, 3.0, k, dtype=np.float32)   # later=better
    out = {"label": label, "exit_logits": logits}
    out.update({f"exit_features_{i}": rng.normal(size=(n, 4 + i)).astype(np.float32)
                for i in range(k)})
    return out


SETTINGS = {"exit_costs": [.25, .5, .75, 1.], "em_iters": 4, "em_tol": 0.0, "router_hidden": 8,
            "router_epochs": 2, "router_lr": 1e-2, "router_batch_size": 32,
            "thresholds": [0.0, 0.3, 0.5, 0.7, 1.0]}
POINT = {"family": "exits", "lam": 1.0, "tau": 1.0, "seed": 2}


def _run_trial(monkeypatch, store, restore_from=None):
    """The EM trial with Tune's report / get_checkpoint faked: -> (metrics, checkpoints)."""
    reports, ckpts = fake_tune(monkeypatch, restore_from)
    em.trial(POINT, SETTINGS, store, T.Session({}))
    return reports, ckpts


def test_em_trial_restored_mid_em_writes_the_same_decisions(monkeypatch):
    store = {"train": _split(120, 0), "val": _split(60, 1), "test": _split(60, 2)}
    full, ckpts = _run_trial(monkeypatch, store)
    assert [m["epoch"] for m in full] == [1, 2, 3, 4, 5] and full[-1]["done_em"] == 1
    again, again_ckpts = _run_trial(monkeypatch, store, restore_from=ckpts[1])  # after round 2
    assert [m["epoch"] for m in again] == [3, 4, 5]                    # rounds 3, 4 + final
    for key in ("router_bce", "expected_cost", "posterior_change"):
        assert [m[key] for m in again[:2]] == [m[key] for m in full[2:4]], key
    with ckpts[-1].as_directory() as a, again_ckpts[-1].as_directory() as b:
        za, zb = np.load(f"{a}/decisions.npz"), np.load(f"{b}/decisions.npz")
        assert za.files == zb.files == ["val_target", "test_target"]
        for k in za.files:
            np.testing.assert_array_equal(za[k], zb[k])
        ra = torch.load(f"{a}/state.pt", weights_only=True)["routers"]
        rb = torch.load(f"{b}/state.pt", weights_only=True)["routers"]
        assert all(torch.equal(ra[k], rb[k]) for k in ra)
