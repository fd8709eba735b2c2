"""The exit family: EM-trained routers decide where a frozen multi-exit ResNet-18 stops
(METHODS.md B).

Config section `exits` (its backbone keys also define the store's `exits` part). λ weighs each
exit's cost against the likelihood in the E-step (λ = 0 ignores cost), τ is the E-step
temperature. Cost: fraction of the full backbone's compute. Rows: the EM trials (every router
threshold on val, the val-Pareto ones on test), every exit alone, random, oracle, BranchyNet.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from sweep.families import axes as AX
from sweep.families.family import Family, Words, register
from sweep.families.rows import (SPLITS, add_cost_matched_random, add_threshold_method,
                                 base_meta, correct_targets, trial_meta, val_curve)
from sweep.rules import COUNT, FRACTION, NONNEG, POS, Choice, Flag, Grid, Num
from trainers import baselines as B
from trainers import em_router as EM
from trainers.multiexit import AUGMENTATIONS


@dataclass(frozen=True)
class ExitsConfig:
    enabled: bool = True
    width: int = 16                      # ResNet-18 base width (paper: 64)
    input_size: int | None = 32          # backbone resolution (None = data.image_size)
    stem: str = "auto"                   # auto (cifar at <= 64 px) | cifar | imagenet
    epochs: int = 5
    lr: float = 0.05                     # SGD, momentum 0.9, cosine schedule
    batch_size: int = 128
    augment: tuple[str, ...] = ("crop",)
    train_on_corrupted: bool = True
    head_hidden: int = 128
    head_epochs: int = 30
    exit_cost: str = "flops"             # flops | uniform
    lams: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
    taus: tuple[float, ...] = (0.5, 1.0, 2.0)
    seeds: tuple[int, ...] = (0, 1, 2)
    m_step: str = "paper"                # paper | weighted (exact EM) | both (a grid axis)
    em_iters: int = 5
    em_tol: float = 1e-3
    router_hidden: int = 64
    router_epochs: int = 5
    router_lr: float = 1e-3
    router_batch_size: int = 256
    thresholds: tuple[float, ...] = tuple(round(0.02 * i, 2) for i in range(0, 51))
    branchynet_thresholds: tuple[float, ...] = tuple(round(0.1 * i, 2) for i in range(0, 24))


# one rule per field of the section besides enabled / lams / taus / seeds (Family.section_rules)
RULES = {"width": COUNT, "input_size": Num(8, 1024, optional=True),
         "stem": Choice(("auto", "cifar", "imagenet")), "epochs": COUNT, "lr": POS,
         "batch_size": COUNT, "augment": Grid(Choice(AUGMENTATIONS), empty_ok=True),
         "train_on_corrupted": Flag(), "head_hidden": COUNT, "head_epochs": COUNT,
         "exit_cost": Choice(("flops", "uniform")), "m_step": Choice((*EM.M_STEPS, "both")),
         "em_iters": COUNT, "em_tol": NONNEG,
         "router_hidden": COUNT, "router_epochs": COUNT, "router_lr": POS,
         "router_batch_size": COUNT, "thresholds": Grid(FRACTION),
         "branchynet_thresholds": Grid(NONNEG)}


# ----------------------------------------------------------------------------- costs

def exit_costs(cfg, meta) -> dict:
    """{"exit_costs": [K]}: fraction of the full forward, by FLOPs or uniform (exits.exit_cost)."""
    return {"exit_costs": meta["exit_costs"][cfg.exits.exit_cost]}


def cost_manifest(cfg, meta, costs) -> dict:
    return {"exits": {n: {"compute": float(costs["exit_costs"][k]), "flops": meta["exit_flops"][k],
                          "compute_uniform": meta["exit_costs"]["uniform"][k],
                          "compute_flops": meta["exit_costs"]["flops"][k]}
                      for k, n in enumerate(meta["exits"])},
            "exit_cost_mode": cfg.exits.exit_cost, "exit_accuracy": meta["exit_accuracy"]}


# ----------------------------------------------------------------------------- the trial

def settings(cfg, costs) -> dict:
    e = cfg.exits
    return {"exit_costs": costs["exit_costs"], "em_iters": e.em_iters, "em_tol": e.em_tol,
            "router_hidden": e.router_hidden, "router_epochs": e.router_epochs,
            "router_lr": e.router_lr, "router_batch_size": e.router_batch_size,
            "thresholds": list(e.thresholds)}


def variants(cfg) -> tuple:
    """exits.m_step -> the grid's variants: the paper's M-step is the method as is (variant
    null, as before), the exact one is variant "weighted"; "both" sweeps the two."""
    m = cfg.exits.m_step
    return (None, "weighted") if m == "both" else (None if m == "paper" else m,)


def _exit_arrays(split: dict, num_exits: int, device: str):
    """features list of [N,d_k] tensors and log p(y|x, exit k) [N,K] for one split."""
    feats = [torch.as_tensor(split[f"exit_features_{k}"]).to(device) for k in range(num_exits)]
    log_lik = EM.log_likelihood(exit_logits=torch.as_tensor(split["exit_logits"]).to(device),
                                labels=torch.as_tensor(split["label"]).to(device))   # [N,K]
    return feats, log_lik


def trial(point: dict, s: dict, store: dict, session) -> None:
    """EM rounds on the train split, reporting + checkpointing every round; the last report
    carries the routes on val and test at every router threshold."""
    device, K = session.device, len(s["exit_costs"])
    feats, log_lik = _exit_arrays(store["train"], K, device)
    t0 = time.perf_counter()

    def on_round(i, metrics, state):
        session.report({**metrics, "epoch": i + 1, "status": "ok",
                        "train_time_s": time.perf_counter() - t0}, state)

    try:
        res = EM.run_em(features=feats, log_lik=log_lik, costs=s["exit_costs"], lam=point["lam"],
                        tau=point["tau"], em_iters=s["em_iters"], tol=s["em_tol"],
                        hidden=s["router_hidden"], epochs=s["router_epochs"], lr=s["router_lr"],
                        batch_size=s["router_batch_size"], seed=point["seed"],
                        device=device, on_round=on_round, state=session.restore(),
                        m_step=point.get("variant") or "paper")
    except FloatingPointError as e:
        return session.report({"status": "failed", "error": str(e)})
    arrays = {}
    for k in SPLITS:
        f, _ = _exit_arrays(store[k], K, device)
        halt = EM.halting_probs(res.routers, f, device=device)
        arrays[f"{k}_target"] = EM.routes_for_thresholds(halt, s["thresholds"]).astype(np.int8)
    session.report({"status": "ok", "epoch": len(res.history) + 1, "done_em": 1,
                    "train_time_s": time.perf_counter() - t0,
                    **_val_objectives(_val_points(store["val"], arrays["val_target"], s))},
                   {"routers": res.routers.state_dict()}, arrays)


def _val_objectives(points: list) -> dict:
    """val_points (every threshold) and, for a search with one point per trial, the most
    accurate of them (the cheapest among ties) as val_accuracy / val_cost."""
    cost, acc = min(points, key=lambda p: (-p[1], p[0]))
    return {"val_points": points, "val_accuracy": acc, "val_cost": cost}


def _val_points(val: dict, routes, s: dict) -> list:
    """[[val cost, val accuracy]] at every threshold: what `sweep.search: frontier` reads."""
    costs = np.asarray(s["exit_costs"], float)
    acc, cost = val_curve(routes_val=routes, costs_val=costs[routes.astype(np.int64)],
                          correct_val=correct_targets(val["exit_logits"], val["label"]))
    return [[float(c), float(a)] for c, a in zip(cost, acc)]


# ----------------------------------------------------------------------------- rows

def assemble(family, tables, store, trials, costs, cfg) -> None:
    """Every exit alone, random (uniform as in the paper, and cost-matched at each cost level;
    per seed), oracle, BranchyNet, then the EM trials."""
    names = store["meta"]["exits"]
    c = np.asarray(costs["exit_costs"], float)
    correct = {s: correct_targets(store[s]["exit_logits"], store[s]["label"]) for s in SPLITS}
    n = {s: len(store[s]["label"]) for s in SPLITS}
    base = base_meta(family, cfg)
    add = lambda meta, r, split="test": tables.add(
        meta={**base, **meta}, split=split, target=r, correct=correct[split][np.arange(len(r)), r],
        cost=c[r], target_names=names)
    for k, name in enumerate(names):          # val too: the best single is chosen on val
        for s in SPLITS:
            add({"method": "exit", "variant": name}, B.fixed_routes(n=n[s], target=k), split=s)
    for seed in sorted({t["seed"] for t in trials} or {cfg.data.seed}):
        add({"method": "random", "variant": "uniform", "seed": seed},
            B.random_routes(n=n["test"], probs=np.full(len(c), 1 / len(c)), seed=seed))
    add_cost_matched_random(tables, base=base, costs=c, correct=correct["test"], names=names,
                            seeds=sorted({t["seed"] for t in trials} or {cfg.data.seed}))
    add({"method": "oracle"}, B.oracle_routes(correct=correct["test"], costs=c, fallback="last"))
    th = np.asarray(cfg.exits.branchynet_thresholds)
    routes = {s: B.branchynet_routes(exit_logits=store[s]["exit_logits"], thresholds=th)
              for s in SPLITS}
    add_threshold_method(tables, meta={**base, "method": "branchynet"}, routes=routes,
                         costs={s: c[routes[s]] for s in routes}, correct=correct,
                         thresholds=th, names=names)
    _em_router(tables, trials, base=base, method=family.method, c=c, correct=correct,
               names=names, thresholds=cfg.exits.thresholds)


def _em_router(tables, trials, *, base, method, c, correct, names, thresholds) -> None:
    """EM trials; per (λ, τ, variant) the test thresholds are the Pareto-optimal ones of the
    seed-averaged val curve, so every seed reports the same thresholds (seed statistics work)."""
    setting = lambda t: (t["lam"], t["tau"], t.get("variant"),         # the M-step is a variant
                         AX.label(t.get("axes") or {}))                   # sweep.axes: another
    ok = [t for t in trials if t["status"] == "ok"]
    routes = {id(t): {s: t["decisions"][f"{s}_target"].astype(np.int64) for s in SPLITS}
              for t in ok}
    keep = {}
    for key in {setting(t) for t in ok}:
        curves = [val_curve(routes_val=routes[id(t)]["val"], costs_val=c[routes[id(t)]["val"]],
                            correct_val=correct["val"]) for t in ok if setting(t) == key]
        acc, cost = np.mean([a for a, _ in curves], 0), np.mean([b for _, b in curves], 0)
        keep[key] = B.pareto_on_val(val_acc=acc, val_cost=cost)
    for t in trials:
        if (meta := trial_meta(tables, t, base=base, method=method)) is None:
            continue
        r = routes[id(t)]
        add_threshold_method(tables, meta=meta, routes=r, costs={s: c[r[s]] for s in r},
                             correct=correct, thresholds=thresholds, names=names,
                             keep=keep[setting(t)])


FAMILY = register(Family(
    name="exits", section="exits", config=ExitsConfig, method="em_router", cost_unit="compute",
    methods=("exit", "random", "oracle", "branchynet"),
    words=Words(lam="λ (weight on exit cost)", tau="τ (E-step temperature)",
                title="Exit family — EM router over a multi-exit backbone "
                      "(cost: fraction of full compute)"),
    store_part="exits", costs=exit_costs, settings=settings, trial=trial, assemble=assemble,
    lam_range=EM.LAM_RANGE, rules=RULES, cost_manifest=cost_manifest, variants=variants,
    axes=("em_iters", "em_tol", "router_hidden", "router_epochs", "router_lr",
          "router_batch_size")))
