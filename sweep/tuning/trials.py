"""What one Ray Tune trial does, per family: thin wrappers around the pure trainers.

Each function gets the shared store (read zero-copy from the object store), a grid point and
the resolved settings; it reports metrics each epoch / EM round with a checkpoint so a trial can
resume, and its last checkpoint holds `decisions.npz`: the routes on val and test that the
driver turns into Parquet rows. A non-finite loss ends the trial as `status: failed` with the
reason (no retry: the seed would fail again).
"""
from __future__ import annotations

import json
import os
import tempfile
import time
import warnings

import numpy as np
import torch

from ray import tune

warnings.filterwarnings("ignore", message="The given NumPy array is not writable")


def _device(settings: dict) -> str:
    return "cuda" if settings.get("gpus_per_trial", 0) > 0 and torch.cuda.is_available() else "cpu"


def _report(metrics: dict, state: dict, arrays: dict | None = None) -> None:
    """tune.report with a checkpoint written to a temporary directory: Tune persists it to
    storage during the call, so the local copy is removed right after (no /tmp build-up)."""
    with tempfile.TemporaryDirectory(prefix="ckpt-") as d:
        torch.save(state, os.path.join(d, "state.pt"))
        if arrays is not None:      # the final checkpoint: decisions + the metrics reported
            np.savez(os.path.join(d, "decisions.npz"), **arrays)
            with open(os.path.join(d, "metrics.json"), "w") as f:
                json.dump(metrics, f)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


def _restore() -> dict | None:
    ckpt = tune.get_checkpoint()
    if ckpt is None:
        return None
    with ckpt.as_directory() as d:
        return torch.load(os.path.join(d, "state.pt"), map_location="cpu", weights_only=True)


def new_gater(s: dict, store: dict, *, seed: int):
    """The trial's gater: seeded init; the trunk from the store's pretrained weights when
    `trunk_pretrained` (the driver put them there; workers never download)."""
    from trainers import gater as G
    torch.manual_seed(seed)
    trunk = store["gater_trunk"] if s.get("trunk_pretrained") else None
    return G.Gater(len(s["expert_ms"]), embed_dim=s["embed_dim"], trunk_state=trunk)


def gater_trial(point: dict, s: dict, store: dict) -> None:
    from trainers import gater as G
    device = _device(s)
    train, val = (G.GaterData.from_store(store[k], device) for k in ("train", "val"))
    test = G.GaterData.from_store(store["test"], device)
    costs = torch.tensor(s["expert_ms"], dtype=torch.float32, device=device)
    gater = new_gater(s, store, seed=point["seed"]).to(device)
    opt = torch.optim.Adam(gater.parameters(), lr=s["lr"])
    gen = torch.Generator(device=device).manual_seed(point["seed"])
    state, start = _restore(), 0
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
            return tune.report({"status": "failed", "error": str(e), "epoch": epoch + 1})
        ev = G.evaluate(gater, val, costs_ms=s["expert_ms"], gater_ms=s["gater_ms"])
        last = epoch + 1 == s["epochs"]
        arrays = _gater_decisions(G, gater, {"val": val, "test": test}, s, point) if last else None
        state = {"model": gater.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(),
                 "epoch": epoch + 1}
        _report({**m, "epoch": epoch + 1, "val_accuracy": float(ev["correct"].mean()),
                 "val_cost": float(ev["cost"].mean()), "status": "ok",
                 "train_time_s": time.perf_counter() - t0}, state, arrays)


def _gater_decisions(G, gater, splits, s, point) -> dict:
    gen = torch.Generator(device=_device(s)).manual_seed(10_000 + point["seed"])
    return {f"{k}_target": G.route(gater, d.gater_input, mode=s["eval_route"], tau=point["tau"],
                                   generator=gen).astype(np.int8)
            for k, d in splits.items()}


def _exit_arrays(split: dict, num_exits: int, device: str):
    """features list of [N,d_k] tensors and log p(y|x, exit k) [N,K] for one split."""
    feats = [torch.as_tensor(split[f"exit_features_{k}"]).to(device) for k in range(num_exits)]
    logits = torch.as_tensor(split["exit_logits"]).to(device)                 # [N,K,C]
    labels = torch.as_tensor(split["label"]).to(device)
    log_lik = torch.log_softmax(logits, -1).gather(
        2, labels.view(-1, 1, 1).expand(-1, num_exits, 1)).squeeze(2)      # [N,K]
    return feats, log_lik


def em_trial(point: dict, s: dict, store: dict) -> None:
    from trainers import em_router as EM
    device, K = _device(s), len(s["exit_costs"])
    feats, log_lik = _exit_arrays(store["train"], K, device)
    t0 = time.perf_counter()

    def on_round(i, metrics, state):
        _report({**metrics, "epoch": i + 1, "status": "ok",
                 "train_time_s": time.perf_counter() - t0}, state)

    try:
        res = EM.run_em(features=feats, log_lik=log_lik, costs=s["exit_costs"], lam=point["lam"],
                        tau=point["tau"], em_iters=s["em_iters"], tol=s["em_tol"],
                        hidden=s["router_hidden"], epochs=s["router_epochs"], lr=s["router_lr"],
                        batch_size=s["router_batch_size"], seed=point["seed"],
                        device=device, on_round=on_round, state=_restore())
    except FloatingPointError as e:
        return tune.report({"status": "failed", "error": str(e)})
    arrays = {}
    for k in ("val", "test"):
        f, _ = _exit_arrays(store[k], K, device)
        halt = EM.halting_probs(res.routers, f, device=device)
        arrays[f"{k}_target"] = EM.routes_for_thresholds(halt, s["thresholds"]).astype(np.int8)
    _report({"status": "ok", "epoch": len(res.history) + 1, "done_em": 1,
             "train_time_s": time.perf_counter() - t0},
            {"routers": res.routers.state_dict()}, arrays)


def router_trial(config: dict, store: dict) -> None:
    """The one Tune trainable: dispatches on the grid point's family."""
    s, point = config["settings"], config["point"]
    torch.set_num_threads(max(1, int(s.get("cpus_per_trial", 1))))
    (gater_trial if point["family"] == "experts" else em_trial)(point, s[point["family"]], store)
