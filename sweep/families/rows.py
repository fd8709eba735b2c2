"""Trials' decisions and the baselines (computed once, here on the driver) -> `Tables` rows.

Threshold methods (em_router, branchynet, cascade) are evaluated at every threshold on val; the
thresholds that are Pareto-optimal on val are the ones reported on test (`split` says which).
"""
from __future__ import annotations

import numpy as np

from trainers import baselines as B


def _correct(logits: np.ndarray, label: np.ndarray) -> np.ndarray:
    """logits [N,T,C], label [N] -> bool [N,T]: is target t right on sample n."""
    return logits.argmax(-1) == label[:, None]


def _val_curve(*, routes_val, costs_val, correct_val) -> tuple[np.ndarray, np.ndarray]:
    """-> (accuracy [T], mean cost [T]) on val for every threshold's routes [T,N]."""
    rows = np.arange(routes_val.shape[1])
    acc = np.array([correct_val[rows, r].mean() for r in routes_val.astype(np.int64)])
    return acc, costs_val.mean(1)


def _add_threshold_method(tables, *, meta, routes: dict, costs: dict, correct: dict,
                          thresholds, names, keep=None) -> None:
    """routes/costs {split: [T,N]}. Every threshold on val; on test those in `keep`
    (default: Pareto-optimal on this method's own val curve)."""
    if keep is None:
        acc, cost = _val_curve(routes_val=routes["val"], costs_val=costs["val"],
                               correct_val=correct["val"])
        keep = B.pareto_on_val(val_acc=acc, val_cost=cost)
    for split in ("val", "test"):
        for i, th in enumerate(thresholds):
            if split == "test" and not keep[i]:
                continue
            r = routes[split][i].astype(np.int64)
            tables.add(meta={**meta, "threshold": float(th)}, split=split, target=r,
                       correct=correct[split][np.arange(len(r)), r], cost=costs[split][i],
                       target_names=names)


def _trial_meta(tables, t, *, base, method) -> dict | None:
    """A trial's row metadata; a failed trial gets its failed row here and None back."""
    meta = {**base, "method": method, "trial_id": t["trial_id"], "seed": t["seed"],
            "lam": t["lam"], "tau": t["tau"]}
    if t["status"] != "ok":
        tables.add_failed(meta={**meta, "error": t["error"]})
        return None
    return meta


def expert_family(tables, store, *, trials, expert_ms, gater_ms, cfg) -> None:
    names, seed0 = store["meta"]["experts"], cfg.data.seed
    ms = np.asarray(expert_ms, float)
    correct = {s: _correct(store[s]["expert_logits"], store[s]["label"]) for s in ("val", "test")}
    n_test = len(store["test"]["label"])
    base = {"family": "experts", "cost_unit": "ms", "seed": seed0}
    for e, name in enumerate(names):
        tables.add(meta={**base, "method": "expert", "variant": name}, split="test",
                   target=np.full(n_test, e), correct=correct["test"][:, e],
                   cost=np.full(n_test, ms[e]), target_names=names)
    for t in trials:
        if (meta := _trial_meta(tables, t, base=base, method="gater")) is None:
            continue
        for split in ("val", "test"):
            r = t["decisions"][f"{split}_target"].astype(np.int64)
            tables.add(meta=meta, split=split, target=r, correct=correct[split][np.arange(len(r)), r],
                       cost=gater_ms + ms[r], target_names=names)
        mix = np.bincount(t["decisions"]["test_target"], minlength=len(names)) / n_test
        r = B.random_routes(n=n_test, probs=mix, seed=t["seed"])
        # lam/tau stay null: random is a baseline, its variant names the gater mix it copies
        tables.add(meta={**base, "method": "random", "seed": t["seed"],
                         "variant": f"mix of gater lam={t['lam']:g} tau={t['tau']:g}"},
                   split="test", target=r,
                   correct=correct["test"][np.arange(n_test), r], cost=ms[r], target_names=names)
    r = B.oracle_routes(correct=correct["test"], costs=ms, fallback="cheapest")
    tables.add(meta={**base, "method": "oracle"}, split="test", target=r,
               correct=correct["test"][np.arange(n_test), r], cost=ms[r], target_names=names)
    _cascade(tables, store, base=base, ms=ms, correct=correct, names=names,
             thresholds=cfg.sweep.cascade_thresholds)


def _cascade(tables, store, *, base, ms, correct, names, thresholds) -> None:
    """Cheapest -> most accurate (on val), stop when max softmax >= threshold."""
    acc_val, cheapest = correct["val"].mean(0), int(np.argmin(ms))
    # cheapest first, then by cost every expert more accurate (on val) than the cheapest
    order = [int(i) for i in np.argsort(ms) if i == cheapest or acc_val[i] > acc_val[cheapest]]
    routes, costs = {}, {}
    for s in ("val", "test"):
        routes[s], costs[s] = B.cascade_routes(logits=store[s]["expert_logits"], order=order,
                                               costs=ms, thresholds=np.asarray(thresholds))
    _add_threshold_method(tables, meta={**base, "method": "cascade"}, routes=routes,
                          costs=costs, correct=correct, thresholds=thresholds, names=names)


def exit_family(tables, store, *, trials, exit_costs, cfg) -> None:
    names, seed0 = store["meta"]["exits"], cfg.data.seed
    c = np.asarray(exit_costs, float)
    correct = {s: _correct(store[s]["exit_logits"], store[s]["label"]) for s in ("val", "test")}
    n = {s: len(store[s]["label"]) for s in ("val", "test")}
    base = {"family": "exits", "cost_unit": "compute", "seed": seed0}
    add = lambda meta, r, split="test": tables.add(
        meta={**base, **meta}, split=split, target=r, correct=correct[split][np.arange(len(r)), r],
        cost=c[r], target_names=names)
    for k, name in enumerate(names):
        add({"method": "exit", "variant": name}, B.fixed_routes(n=n["test"], target=k))
    for seed in sorted({t["seed"] for t in trials} or {seed0}):
        add({"method": "random", "variant": "uniform", "seed": seed},
            B.random_routes(n=n["test"], probs=np.full(len(c), 1 / len(c)), seed=seed))
    add({"method": "oracle"}, B.oracle_routes(correct=correct["test"], costs=c, fallback="last"))
    th = np.asarray(cfg.exits.branchynet_thresholds)
    routes = {s: B.branchynet_routes(exit_logits=store[s]["exit_logits"], thresholds=th)
              for s in ("val", "test")}
    _add_threshold_method(tables, meta={**base, "method": "branchynet"}, routes=routes,
                          costs={s: c[routes[s]] for s in routes}, correct=correct,
                          thresholds=th, names=names)
    _em_router(tables, trials, base=base, c=c, correct=correct, names=names,
               thresholds=cfg.exits.thresholds)


def _em_router(tables, trials, *, base, c, correct, names, thresholds) -> None:
    """EM trials; per (λ, τ) the test thresholds are the Pareto-optimal ones of the
    seed-averaged val curve, so every seed reports the same thresholds (seed statistics work)."""
    ok = [t for t in trials if t["status"] == "ok"]
    routes = {id(t): {s: t["decisions"][f"{s}_target"].astype(np.int64) for s in ("val", "test")}
              for t in ok}
    keep = {}
    for key in {(t["lam"], t["tau"]) for t in ok}:
        curves = [_val_curve(routes_val=routes[id(t)]["val"], costs_val=c[routes[id(t)]["val"]],
                             correct_val=correct["val"]) for t in ok if (t["lam"], t["tau"]) == key]
        acc, cost = np.mean([a for a, _ in curves], 0), np.mean([b for _, b in curves], 0)
        keep[key] = B.pareto_on_val(val_acc=acc, val_cost=cost)
    for t in trials:
        if (meta := _trial_meta(tables, t, base=base, method="em_router")) is None:
            continue
        r = routes[id(t)]
        _add_threshold_method(tables, meta=meta, routes=r, costs={s: c[r[s]] for s in r},
                              correct=correct, thresholds=thresholds, names=names,
                              keep=keep[(t["lam"], t["tau"])])
