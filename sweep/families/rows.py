"""How decisions become table rows: the helpers every family's `assemble` uses.

`tables` is a `sweep.results.tables.Tables` (passed in; `add` turns one decision set into rows).
A decision set is a route (target index per sample) on val or test with its correctness and
per-sample cost. Threshold methods (em_router, branchynet, cascade) are evaluated at every
threshold on val; the thresholds that are Pareto-optimal on val are the ones reported on test
(`split` says which).
"""
from __future__ import annotations

import numpy as np

from sweep.families import axes as AX
from trainers import baselines as B

SPLITS = ("val", "test")
COST_LEVELS = 11        # cost-matched random: levels from the cheapest to the costliest target


def correct_targets(logits: np.ndarray, label: np.ndarray) -> np.ndarray:
    """logits [N,T,C], label [N] -> bool [N,T]: is target t right on sample n."""
    return logits.argmax(-1) == label[:, None]


def base_meta(family, cfg) -> dict:
    """The columns every row of a family shares; seed = the data seed for rows without one."""
    return {"family": family.name, "cost_unit": family.cost_unit, "seed": cfg.data.seed}


def val_curve(*, routes_val, costs_val, correct_val) -> tuple[np.ndarray, np.ndarray]:
    """-> (accuracy [T], mean cost [T]) on val for every threshold's routes [T,N]."""
    rows = np.arange(routes_val.shape[1])
    acc = np.array([correct_val[rows, r].mean() for r in routes_val.astype(np.int64)])
    return acc, costs_val.mean(1)


def add_threshold_method(tables, *, meta, routes: dict, costs: dict, correct: dict,
                         thresholds, names, keep=None) -> None:
    """routes/costs {split: [T,N]}. Every threshold on val; on test those in `keep`
    (default: Pareto-optimal on this method's own val curve)."""
    if keep is None:
        acc, cost = val_curve(routes_val=routes["val"], costs_val=costs["val"],
                              correct_val=correct["val"])
        keep = B.pareto_on_val(val_acc=acc, val_cost=cost)
    for split in SPLITS:
        for i, th in enumerate(thresholds):
            if split == "test" and not keep[i]:
                continue
            r = routes[split][i].astype(np.int64)
            tables.add(meta={**meta, "threshold": float(th)}, split=split, target=r,
                       correct=correct[split][np.arange(len(r)), r], cost=costs[split][i],
                       target_names=names)


def trial_meta(tables, t, *, base, method) -> dict | None:
    """A trial's row metadata; a failed trial gets its failed row here and None back. A point
    of `sweep.axes` adds one column per axis (its dotted key) and its combination to
    `variant` (after the family's own variant, e.g. "weighted router_lr=0.01")."""
    combo = t.get("axes") or {}
    variant = " ".join(v for v in (t.get("variant"), AX.label(combo)) if v) or None
    meta = {**base, "method": method, "trial_id": t["trial_id"], "seed": t["seed"],
            "lam": t["lam"], "tau": t["tau"], "variant": variant, **combo}
    if t["status"] != "ok":
        tables.add_failed(meta={**meta, "error": t["error"]})
        return None
    return meta


def add_routes(tables, meta, decisions: dict, *, correct: dict, cost_of, names) -> None:
    """One trial's routes `{split}_target` [N] on val and test; cost_of(route) -> cost [N]."""
    for split in SPLITS:
        r = decisions[f"{split}_target"].astype(np.int64)
        tables.add(meta=meta, split=split, target=r, correct=correct[split][np.arange(len(r)), r],
                   cost=cost_of(r), target_names=names)


def add_cost_matched_random(tables, *, base, costs, correct, names, seeds, suffix="") -> None:
    """Random routing as a curve: at COST_LEVELS expected costs from the cheapest target to the
    costliest, the mix of the two targets adjacent in cost that has exactly that expected cost
    (trainers.baselines.cost_matched_mix), drawn once per seed on test. A random router has no
    router: each sample pays its target's cost only. costs [T], correct bool [N, T] (test).
    variant 'cost-matched <level><suffix>', e.g. 'cost-matched 2.1 ms, no gater'."""
    c, n = np.asarray(costs, np.float64), len(correct)
    for level in B.cost_levels(costs=c, n=COST_LEVELS):
        probs = B.cost_matched_mix(costs=c, target=level)
        for seed in seeds:
            r = B.random_routes(n=n, probs=probs, seed=seed)
            tables.add(meta={**base, "method": "random", "seed": seed,
                             "variant": f"cost-matched {level:.4g}{suffix}"},
                       split="test", target=r, correct=correct[np.arange(n), r], cost=c[r],
                       target_names=names)


def routed_rows(*, logits: str, names: str, cost: str):
    """An `assemble` for a family whose trials route every sample to one target of a store
    part and add no baselines: targets store["meta"][names], correctness from
    store[split][logits], a route's cost per sample costs[cost][target]."""
    def assemble(family, tables, store, trials, costs, cfg) -> None:
        correct = {s: correct_targets(store[s][logits], store[s]["label"]) for s in SPLITS}
        c = np.asarray(costs[cost], float)
        for t in trials:
            meta = trial_meta(tables, t, base=base_meta(family, cfg), method=family.method)
            if meta is not None:
                add_routes(tables, meta, t["decisions"], correct=correct, cost_of=lambda r: c[r],
                           names=store["meta"][names])
    return assemble
