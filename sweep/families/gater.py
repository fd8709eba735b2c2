"""The expert family: a Gumbel-Softmax gater picks ONE frozen expert per image (METHODS.md A).

Config section `gater`; it reads the store's `experts` part (expert logits, the gater's input,
measured latencies). λ weighs the classification term of the gater's loss (λ = 1 ignores
latency), τ is the Gumbel-Softmax temperature. Cost: milliseconds per sample, gater included.
Rows: the gater's trials, every expert alone, random (a curve of cost-matched mixes, no
gater overhead), oracle, cascade.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from sweep.errors import user_errors
from sweep.families.family import Family, Words, register
from sweep.families.rows import (SPLITS, add_cost_matched_random, add_routes,
                                 add_threshold_method, base_meta, correct_targets, trial_meta)
from sweep.rules import COUNT, POS, SIZE, Choice, Flag
from trainers import baselines as B
from trainers import gater as G


@dataclass(frozen=True)
class GaterConfig:
    enabled: bool = True
    gater_size: int = 16                 # the gater's downsampled input (paper: 96)
    embed_dim: int = 64                  # channels of the conv-downsampling layer
    trunk_pretrained: bool = False       # SqueezeNet 1.1 features[:5] pretrained weights
    lr: float = 1e-3
    batch_size: int = 32
    epochs: int = 3                      # converged by epoch 2-3 on digits (val acc/cost flat)
    ce_scale: float = 3.0                # L_class = CE / ce_scale (paper: 3.0)
    eval_route: str = "argmax"           # argmax | sampled
    precision: str = "fp32"              # fp32 | bf16: autocast for the gater in training
                                         # (GPU tensor cores, CPU AMX); decisions in fp32
    trunk: str = "trained"               # trained (the paper) | frozen: the trunk's activations
                                         # cached in the store, only the tail trains (variant
                                         # "frozen trunk") | both (a grid axis)
    trunk_cache_dtype: str = "fp16"      # fp16 | fp32: the frozen trunk's cached activations
    lams: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
    taus: tuple[float, ...] = (0.5, 1.0, 2.0)
    seeds: tuple[int, ...] = (0, 1, 2)


# one rule per field of the section besides enabled / lams / taus / seeds (Family.section_rules)
RULES = {"gater_size": SIZE, "embed_dim": COUNT, "trunk_pretrained": Flag(), "lr": POS,
         "batch_size": COUNT, "epochs": COUNT, "ce_scale": POS,
         "eval_route": Choice(("argmax", "sampled")), "precision": Choice(("fp32", "bf16")),
         "trunk": Choice(("trained", "frozen", "both")),
         "trunk_cache_dtype": Choice(tuple(G.TRUNK_DTYPES))}

FROZEN = "frozen trunk"                 # the variant of a frozen-trunk trial and its rows


def variants(cfg) -> tuple:
    """gater.trunk -> the grid's variants: the paper's trained trunk is the method as is
    (variant null), a frozen one is variant "frozen trunk"; "both" sweeps the two."""
    t = cfg.gater.trunk
    return (None, FROZEN) if t == "both" else (FROZEN if t == "frozen" else None,)


def parts(cfg) -> tuple:
    """A frozen trunk's trials also read the store's `gater_trunk` part."""
    return ("gater_trunk",) if cfg.gater.trunk != "trained" else ()


def preflight(cfg) -> None:
    if cfg.gater.trunk_pretrained:
        with user_errors():
            G.pretrained_trunk_state()          # cached or downloadable, else exit 2


def extras(cfg) -> dict:
    """With `gater.trunk_pretrained`, the trunk's ImageNet weights (loaded here, once): the
    workers never download."""
    if not cfg.gater.trunk_pretrained:
        return {}
    with user_errors():
        return {"gater_trunk": G.pretrained_trunk_state()}


# ----------------------------------------------------------------------------- costs

def expert_costs(cfg, meta) -> dict:
    """{"expert_ms": [E], "gater_ms"}: measured on this device, or the config's given vector."""
    ex = cfg.experts
    measured = [meta["expert_costs"][n]["latency_ms"] for n in meta["experts"]]
    given = ex.cost_source == "given"
    return {"expert_ms": list(ex.given_latency_ms) if given else measured,
            "gater_ms": (ex.given_gater_ms if given and ex.given_gater_ms
                         else meta["gater_cost"]["latency_ms"])}


def cost_manifest(cfg, meta, costs) -> dict:
    return {"experts": {n: {"latency_ms": float(costs["expert_ms"][i]),
                            "measured_latency_ms": meta["expert_costs"][n]["latency_ms"],
                            "latency": meta["expert_costs"][n]["latency"],
                            "flops": meta["expert_costs"][n]["flops"],
                            "source": cfg.experts.cost_source}
                        for i, n in enumerate(meta["experts"])},
            "gater": {**meta["gater_cost"], "latency_ms": float(costs["gater_ms"])},
            "latency_method": meta.get("latency_method"),
            "expert_accuracy": meta["expert_accuracy"]}


# ----------------------------------------------------------------------------- the trial

def settings(cfg, costs) -> dict:
    g = cfg.gater
    return {"lr": g.lr, "batch_size": g.batch_size, "epochs": g.epochs, "ce_scale": g.ce_scale,
            "embed_dim": g.embed_dim, "trunk_pretrained": g.trunk_pretrained,
            "precision": g.precision, "eval_route": g.eval_route, "trunk_seed": cfg.data.seed,
            "expert_ms": costs["expert_ms"], "gater_ms": costs["gater_ms"]}


def new_gater(s: dict, store: dict, *, seed: int, frozen: bool = False):
    """The trial's gater: seeded init; the trunk from the store's pretrained weights when
    `trunk_pretrained` (the driver put them there; workers never download). Frozen: THE shared
    trunk whose activations the store caches (built as sweep/store/build.py builds it: the
    same weights, so the saved model is the one whose activations it trained on)."""
    pretrained = store["gater_trunk"] if s.get("trunk_pretrained") else None
    if not frozen:
        torch.manual_seed(seed)
        return G.Gater(len(s["expert_ms"]), embed_dim=s["embed_dim"], trunk_state=pretrained)
    trunk = G.frozen_trunk(seed=s["trunk_seed"], state=pretrained)
    torch.manual_seed(seed)
    gater = G.Gater(len(s["expert_ms"]), embed_dim=s["embed_dim"])
    gater.trunk.load_state_dict(trunk.state_dict())
    return gater.freeze_trunk()


def trial(point: dict, s: dict, store: dict, session) -> None:
    """Train one gater from cached expert logits, reporting + checkpointing every epoch; the
    last report carries the routes on val and test. A non-finite loss ends it as failed."""
    device, frozen = session.device, point.get("variant") == FROZEN
    inputs = "trunk_features" if frozen else "gater_input"     # frozen: the cached activations
    train, val, test = (G.GaterData.from_store(store[k], device, inputs=inputs)
                        for k in ("train", "val", "test"))
    costs = torch.tensor(s["expert_ms"], dtype=torch.float32, device=device)
    gater = new_gater(s, store, seed=point["seed"], frozen=frozen).to(device)
    opt = torch.optim.Adam([p for p in gater.parameters() if p.requires_grad], lr=s["lr"])
    gen = torch.Generator(device=device).manual_seed(point["seed"])
    state, start = session.restore(), 0
    if state:
        gater.load_state_dict(state["model"]), opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"]), (start := state["epoch"])
    t0 = time.perf_counter()
    for epoch in range(start, s["epochs"]):
        try:
            m = G.train_epoch(gater, opt, train, costs=costs, lam=point["lam"], tau=point["tau"],
                              batch_size=s["batch_size"], ce_scale=s["ce_scale"], generator=gen,
                              precision=s.get("precision", "fp32"))
        except FloatingPointError as e:
            return session.report({"status": "failed", "error": str(e), "epoch": epoch + 1})
        ev = G.evaluate(gater, val, costs_ms=s["expert_ms"], gater_ms=s["gater_ms"])
        last = epoch + 1 == s["epochs"]
        arrays = _decisions(gater, {"val": val, "test": test}, s, point, device) \
            if last or s.get("per_epoch_decisions") else None      # early stopping: each epoch
        state = {"model": gater.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(),
                 "epoch": epoch + 1}
        acc, cost = float(ev["correct"].mean()), float(ev["cost"].mean())
        session.report({**m, "epoch": epoch + 1, "val_accuracy": acc, "val_cost": cost,
                        "val_objective": val_objective(acc, cost, lam=point["lam"], s=s),
                        "final": last, "status": "ok",
                        "train_time_s": time.perf_counter() - t0}, state, arrays)


def val_objective(accuracy: float, cost: float, *, lam: float, s: dict) -> float:
    """λ·(1 − accuracy) + (1 − λ)·cost / (costliest expert + gater): the training objective's
    analogue on val decisions, lower is better (what sweep.early_stop_patience watches)."""
    return lam * (1.0 - accuracy) + (1.0 - lam) * cost / (max(s["expert_ms"]) + s["gater_ms"])


def _decisions(gater, splits, s, point, device) -> dict:
    gen = torch.Generator(device=device).manual_seed(10_000 + point["seed"])
    return {f"{k}_target": G.route(gater, d.gater_input, mode=s["eval_route"], tau=point["tau"],
                                   generator=gen).astype(np.int8)
            for k, d in splits.items()}


# ----------------------------------------------------------------------------- rows

def assemble(family, tables, store, trials, costs, cfg) -> None:
    """Every expert alone, each gater trial, random at matched expected costs (per seed), the
    oracle and the cascade."""
    names, ms, gater_ms = store["meta"]["experts"], np.asarray(costs["expert_ms"], float), \
        costs["gater_ms"]
    correct = {s: correct_targets(store[s]["expert_logits"], store[s]["label"]) for s in SPLITS}
    n_test = len(store["test"]["label"])
    base = base_meta(family, cfg)
    for e, name in enumerate(names):          # val too: the best single is chosen on val
        for s in SPLITS:
            n = len(store[s]["label"])
            tables.add(meta={**base, "method": "expert", "variant": name}, split=s,
                       target=np.full(n, e), correct=correct[s][:, e],
                       cost=np.full(n, ms[e]), target_names=names)
    for t in trials:
        if (meta := trial_meta(tables, t, base=base, method=family.method)) is None:
            continue
        add_routes(tables, meta, t["decisions"], correct=correct, names=names,
                   cost_of=lambda r: G.route_cost_ms(r, costs_ms=ms, gater_ms=gater_ms))
    # random has no gater, so it is not charged the gater's overhead (its variant says so)
    add_cost_matched_random(tables, base=base, costs=ms, correct=correct["test"], names=names,
                            seeds=sorted({t["seed"] for t in trials} or {cfg.data.seed}),
                            suffix=" ms, no gater")
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
    for s in SPLITS:
        routes[s], costs[s] = B.cascade_routes(logits=store[s]["expert_logits"], order=order,
                                               costs=ms, thresholds=np.asarray(thresholds))
    add_threshold_method(tables, meta={**base, "method": "cascade"}, routes=routes,
                         costs=costs, correct=correct, thresholds=thresholds, names=names)


FAMILY = register(Family(
    name="experts", section="gater", config=GaterConfig, method="gater", cost_unit="ms",
    methods=("expert", "random", "oracle", "cascade"),
    words=Words(lam="λ (weight on classification)", tau="τ (Gumbel temperature)",
                title="Expert family — gater over frozen experts (cost: latency, ms)"),
    store_part="experts", costs=expert_costs, settings=settings, trial=trial, assemble=assemble,
    lam_range=G.LAM_RANGE, rules=RULES, preflight=preflight, extras=extras,
    cost_manifest=cost_manifest, variants=variants, parts=parts,
    axes=("lr", "batch_size", "epochs", "ce_scale", "embed_dim", "eval_route", "precision")))
