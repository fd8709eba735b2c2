"""EM routing over a frozen multi-exit backbone (seeds/003, METHODS.md B).

Exit identity z is latent. With r = P(z=k | x, y):
  E-step   r = softmax_k((log p(y|x,k) + log p(k|x) - lam * cost_k) / tau)       (tau=1: paper)
  targets  t_k = r_k / sum_{j>=k} r_j   (P(halt at k | not halted before)), t_K = 1
  M-step   routers s_k(x) on exit k's pooled features, BCE(sigmoid(s_k), t_k) with soft targets;
           m_step "paper" (default): every sample weighs 1 (the paper's text); "weighted":
           sample n's term for router k weighs w_k = sum_{j>=k} r_j, its posterior mass of
           reaching exit k (exact EM: w_k t_k = r_k, w_k (1 - t_k) = sum_{j>k} r_j, so the
           weighted BCE is the expected complete-data log-likelihood of the halting decisions)
  prior    p(k|x) = sigmoid(s_k) prod_{j<k} (1 - sigmoid(s_j)), the last exit always halts
Round 0 uses the uniform prior 1/K; each later E-step uses the prior implied by the routers just
fitted. Inference: exit at the first k with sigmoid(s_k) >= threshold, else the last exit.

Choices the paper leaves open (defaults here, all keyword arguments):
* K - 1 routers: the last exit always halts, so it gets no router (its halt logit is +inf);
* routers warm-start from the previous round; a fresh Adam each round; minibatch order of round r
  comes from a generator seeded with (seed, r), so a resumed run repeats an uninterrupted one;
* routers are FeatureMLPs (features standardised with train statistics) with one hidden layer;
* convergence: mean over samples and exits of |r_new - r_old| < tol (checked from round 1 on).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from trainers.multiexit import FeatureMLP, as_tensors, seeded

# E-step: lam weighs the exit cost against the likelihood, so any lam >= 0 (0 ignores cost);
# tau, the E-step temperature, is > 0 (1 is the paper).
LAM_RANGE = (0.0, None)
# M-step: "paper" = unweighted BCE on t_k (the paper's text); "weighted" = exact EM (reach_mass).
M_STEPS = ("paper", "weighted")


# ----------------------------------------------------------------------------- E-step maths

def _np(x) -> np.ndarray:
    """numpy float64 view of an array, list or (any-device) tensor."""
    if torch.is_tensor(x):
        x = x.detach().cpu().numpy()
    return np.asarray(x, np.float64)


def e_step(*, log_lik, log_prior, costs, lam: float, tau: float = 1.0) -> np.ndarray:
    """Posterior over exits, float64 [N, K] (rows sum to 1), in log space.

    log_lik [N, K]: log p(y|x, z=k) (exit k's log-softmax at the true label);
    log_prior [N, K] or [K]: log p(z=k|x); costs [K]: relative cost of exit k.
    """
    a = (_np(log_lik) + _np(log_prior) - lam * _np(costs)) / tau              # [N, K]
    return np.exp(a - _logsumexp(a))


def _logsumexp(a: np.ndarray) -> np.ndarray:
    """Row-wise logsumexp [N, K] -> [N, 1]; rows that are all -inf give -inf."""
    m = np.max(a, axis=1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return m + np.log(np.sum(np.exp(a - m), axis=1, keepdims=True))


def conditional_targets(*, posterior) -> np.ndarray:
    """r [N, K] -> t [N, K], t_k = r_k / sum_{j>=k} r_j; t = 1 where that tail is 0 (the sample
    has surely halted earlier, so t_k is irrelevant) and in the last column (always halts)."""
    r = _np(posterior)
    tail = np.cumsum(r[:, ::-1], axis=1)[:, ::-1]                               # sum_{j>=k} r_j
    t = np.divide(r, tail, out=np.ones_like(r), where=tail > 0)
    t[:, -1] = 1.0
    return np.clip(t, 0.0, 1.0)


def reach_mass(*, posterior) -> np.ndarray:
    """r [N, K] -> w [N, K], w_k = sum_{j>=k} r_j: the posterior mass of reaching exit k (the
    weight of sample n in router k's BCE under exact EM; w_0 = 1 for a normalised r).

    E.g. r = (0.9, 0.05, 0.05) -> w = (1, 0.1, 0.05): router 1 barely sees this sample."""
    r = _np(posterior)
    return np.ascontiguousarray(np.cumsum(r[:, ::-1], axis=1)[:, ::-1])   # torch: no neg strides


def m_step_weights(*, posterior, m_step: str) -> np.ndarray | None:
    """The per-sample, per-router BCE weights of an M-step [N, K], or None ("paper": all 1)."""
    if m_step not in M_STEPS:
        raise ValueError(f"unknown m_step {m_step!r}; choose {' or '.join(M_STEPS)}")
    return None if m_step == "paper" else reach_mass(posterior=posterior)


def _log_sigmoid(s: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -s)


def implied_log_prior(*, halt_logits) -> np.ndarray:
    """s [N, K] -> log p(z=k|x) [N, K] = log sigma(s_k) + sum_{j<k} log(1 - sigma(s_j)).

    The last column of s is ignored (sigma(s_K) := 1), so every row sums to 1 exactly in
    probability space. log(1 - sigma(s)) = log sigma(-s) keeps it stable for large |s|."""
    s = _np(halt_logits)
    log_halt = _log_sigmoid(s)
    log_go_on = _log_sigmoid(-s)
    log_halt[:, -1] = 0.0
    reach = np.concatenate([np.zeros((len(s), 1)), np.cumsum(log_go_on[:, :-1], axis=1)], axis=1)
    return log_halt + reach


def log_likelihood(*, exit_logits, labels) -> torch.Tensor:
    """exit_logits [N, K, C], labels [N] (arrays or tensors) -> log p(y|x, z=k) [N, K]: each
    exit's log-softmax at the true label, a tensor in the logits' dtype on their device."""
    z = torch.as_tensor(exit_logits)
    y = torch.as_tensor(labels, device=z.device)
    return torch.log_softmax(z, -1).gather(2, y.view(-1, 1, 1).expand(-1, z.shape[1], 1)).squeeze(2)


# ----------------------------------------------------------------------------- routers

class Routers(nn.Module):
    """K - 1 small MLPs, router k on exit k's pooled features [B, d_k] -> halt logit s_k.

    forward(list of K [B, d_k]) -> s [B, K]; the last column is +inf (the last exit halts)."""

    def __init__(self, dims: list[int], *, hidden: int = 64, seed: int = 0):
        super().__init__()
        self.num_exits = len(dims)
        self.mlps = seeded(seed, lambda: nn.ModuleList(
            FeatureMLP(d, hidden, 1) for d in dims[:-1]))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        n = len(features[0])
        last = torch.full((n, 1), math.inf, device=features[0].device)
        return torch.cat([m(f) for m, f in zip(self.mlps, features)] + [last], dim=1)


@torch.no_grad()
def halt_logits(routers: Routers, features, *, batch_size: int = 16384,
                device: str = "cpu") -> np.ndarray:
    """K arrays [N, d_k] -> s float64 [N, K] (last column +inf)."""
    routers.eval().to(device)
    feats = as_tensors(features, device)
    out = [routers([f[i:i + batch_size] for f in feats]).cpu()
           for i in range(0, len(feats[0]), batch_size)]
    return torch.cat(out).double().numpy()


def halting_probs(routers: Routers, features, *, batch_size: int = 16384,
                  device: str = "cpu") -> np.ndarray:
    """K arrays [N, d_k] -> sigma(s_k) float64 [N, K] = P(halt at k | reached k); last column 1."""
    s = halt_logits(routers, features, batch_size=batch_size, device=device)
    return np.exp(_log_sigmoid(s))


def fit_routers(routers: Routers, *, features: list[torch.Tensor], targets, epochs: int,
                lr: float, batch_size: int, seed: int, weight_decay: float = 0.0,
                weights=None) -> float:
    """M-step: BCE-with-logits against soft targets t [N, K] (last column excluded), Adam.

    weights [N, K] or None: each term of the BCE times its weight (m_step_weights; None = 1,
    the paper), still averaged over the batch's N x (K-1) terms. Trains in place (warm start);
    returns the mean (weighted) BCE per router over the last epoch."""
    t = torch.as_tensor(_np(targets)[:, :-1], dtype=torch.float32,
                        device=features[0].device)                                # [N, K-1]
    if t.shape[1] == 0:
        return 0.0
    w = None if weights is None else torch.as_tensor(
        _np(weights)[:, :-1], dtype=torch.float32, device=t.device)              # [N, K-1]
    routers.train()
    opt = torch.optim.Adam(routers.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(int(seed))
    for _ in range(epochs):
        total = 0.0
        for idx in torch.randperm(len(t), generator=gen).split(batch_size):
            s = routers([f[idx] for f in features])[:, :-1]                      # [B, K-1]
            i = idx.to(t.device)
            loss = F.binary_cross_entropy_with_logits(s, t[i], None if w is None else w[i])
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
            total += loss.item() * len(idx)
    routers.eval()
    return total / len(t)


# ----------------------------------------------------------------------------- EM loop

@dataclass
class EMResult:
    routers: Routers
    history: list[dict] = field(default_factory=list)   # one metrics dict per round
    posterior: np.ndarray | None = None                 # last E-step, float64 [N, K]
    converged: bool = False


def _round_seed(seed: int, round_idx: int) -> int:
    """Independent, reproducible seed for round r (minibatch order)."""
    return int(np.random.SeedSequence([int(seed), int(round_idx)]).generate_state(1)[0])


def _round_metrics(r: int, post, prev, costs, bce, log_prior) -> dict:
    change = float(np.mean(np.abs(post - prev))) if prev is not None else float("nan")
    prior = np.exp(log_prior)
    out = {"round": int(r), "posterior_change": change, "router_bce": float(bce),
           "expected_cost": float(np.mean(post @ costs)),          # under the E-step posterior
           "router_expected_cost": float(np.mean(prior @ costs))}  # under the fitted prior
    # scalars only (Tune loggers): mean posterior mass per exit
    out.update({f"posterior_mass_{k}": float(m) for k, m in enumerate(post.mean(0))})
    return out


def _new_routers(feats: list[torch.Tensor], *, hidden: int, seed: int, device: str) -> Routers:
    """Seeded routers whose input standardisation is measured on the routing features."""
    routers = Routers([f.shape[1] for f in feats], hidden=hidden, seed=seed).to(device)
    for m, f in zip(routers.mlps, feats):
        m.set_standardization(f)
    return routers


def _resume(res: EMResult, state: dict | None, feats, k: int, n: int, device: str):
    """-> (first round, previous posterior or None, log prior [N, K]) from a saved round."""
    if state is None:
        return 0, None, np.full((n, k), -math.log(k))                      # uniform prior 1/K
    res.routers.load_state_dict(state["routers"])
    res.history, res.converged = list(state.get("history", [])), bool(state.get("converged"))
    start = int(state["round"])
    if start == 0:
        return 0, None, np.full((n, k), -math.log(k))
    s = halt_logits(res.routers, feats, device=device)
    post = state.get("posterior")
    return start, None if post is None else _np(post), implied_log_prior(halt_logits=s)


def _snapshot(r: int, res: EMResult, post: np.ndarray) -> dict:
    """What a checkpoint needs to resume after round r: tensors and plain Python values only,
    so `torch.load(weights_only=True)` reads it back (no numpy: it refuses ndarrays and numpy
    scalars). Copied, since training goes on; float64 posterior -> float64 tensor is exact."""
    weights = {k: v.detach().cpu().clone() for k, v in res.routers.state_dict().items()}
    return {"round": r + 1, "routers": weights, "posterior": torch.from_numpy(post.copy()),
            "history": [dict(h) for h in res.history], "converged": bool(res.converged)}


def run_em(*, features, log_lik, costs, lam: float, tau: float = 1.0, em_iters: int = 10,
           tol: float = 1e-3, hidden: int = 64, epochs: int = 5, lr: float = 1e-3,
           batch_size: int = 256, seed: int = 0, weight_decay: float = 0.0, device: str = "cpu",
           m_step: str = "paper",
           on_round: Callable[[int, dict, dict], None] | None = None,
           state: dict | None = None) -> EMResult:
    """EM with router-parametrised prior. features: K arrays [N, d_k]; log_lik [N, K].
    m_step: "paper" (unweighted BCE on t_k) or "weighted" (exact EM, see reach_mass).

    After each round, `on_round(round_idx, metrics, state)`; `state` = {"round": next round,
    "routers": state_dict, "posterior": that round's posterior (float64 tensor [N, K]),
    "history", "converged"} holds only tensors and plain Python values (a weights_only
    checkpoint) and can be passed back as `state=` to resume exactly where that round ended.
    """
    validate_em_args(em_iters=em_iters, costs=costs, tol=tol, hidden=hidden, epochs=epochs, lr=lr,
                     batch_size=batch_size, m_step=m_step)
    feats = as_tensors(features, device)
    ll, c = _np(log_lik), _np(costs)
    if ll.shape != (len(feats[0]), len(feats)) or len(c) != len(feats):
        raise ValueError(f"log_lik {ll.shape}, {len(c)} costs and {len(feats)} feature arrays "
                        f"of {len(feats[0])} samples do not agree")
    res = EMResult(_new_routers(feats, hidden=hidden, seed=seed, device=device))
    start, prev, log_prior = _resume(res, state, feats, len(c), len(ll), device)
    for r in range(start, em_iters):
        if res.converged:
            break
        post = e_step(log_lik=ll, log_prior=log_prior, costs=c, lam=lam, tau=tau)   # [N, K]
        bce = fit_routers(res.routers, features=feats, targets=conditional_targets(posterior=post),
                          epochs=epochs, lr=lr, batch_size=batch_size,
                          seed=_round_seed(seed, r), weight_decay=weight_decay,
                          weights=m_step_weights(posterior=post, m_step=m_step))
        log_prior = implied_log_prior(halt_logits=halt_logits(res.routers, feats, device=device))
        metrics = _round_metrics(r, post, prev, c, bce, log_prior)
        res.converged = metrics["converged"] = bool(r > 0 and metrics["posterior_change"] < tol)
        res.history.append(metrics)
        prev = post
        if on_round is not None:
            on_round(r, metrics, _snapshot(r, res, post))
    res.posterior = prev
    return res


# ----------------------------------------------------------------------------- inference

def route_by_threshold(*, halt_probs, threshold: float) -> np.ndarray:
    """halt_probs [N, K] -> exit index int64 [N]: first k < K-1 with p_k >= threshold, else K-1.

    threshold 0 -> exit 0 for every sample; threshold > 1 -> the last exit."""
    return routes_for_thresholds(halt_probs, [threshold])[0]


def routes_for_thresholds(halt_probs, thresholds) -> np.ndarray:
    """halt_probs [N, K], thresholds [T] -> exit index int64 [T, N], all thresholds at once."""
    p = _np(halt_probs)[:, :-1]                                # [N, K-1]
    thr = _np(thresholds).reshape(-1)
    hit = p[None, :, :] >= thr[:, None, None]                                     # [T, N, K-1]
    last = p.shape[1]
    if last == 0:
        return np.zeros((len(thr), len(p)), np.int64)
    return np.where(hit.any(axis=2), hit.argmax(axis=2), last).astype(np.int64)


# ----------------------------------------------------------------------------- validation

def _finite_list(name: str, values) -> np.ndarray:
    v = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if v.ndim != 1 or len(v) == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be a non-empty list of finite numbers, got {values!r}")
    return v


def validate_em_args(*, em_iters=None, thresholds=None, costs=None, num_exits=None,
                     backbone_stages=None, tol=None, hidden=None, epochs=None, lr=None,
                     batch_size=None, m_step=None) -> None:
    """Raise ValueError for the first bad EM argument; arguments left None are not checked.
    thresholds may be a single value or a grid (list). lam and tau are checked where the grid
    is (LAM_RANGE; tau > 0)."""
    if thresholds is not None:
        thr = _finite_list("thresholds", thresholds)
        if np.any((thr < 0) | (thr > 1)):
            raise ValueError(f"router thresholds must lie in [0, 1], got {list(thr)}")
    if em_iters is not None and (int(em_iters) != em_iters or em_iters < 1):
        raise ValueError(f"em_iters must be an integer >= 1, got {em_iters}")
    if costs is not None:
        c = _finite_list("exit costs", costs)
        if np.any(np.diff(c) <= 0) or c[0] <= 0 or c[-1] > 1:
            raise ValueError(f"exit costs must be strictly increasing and in (0, 1], got {list(c)}")
    if num_exits is not None and backbone_stages is not None and num_exits != backbone_stages:
        raise ValueError(f"{num_exits} exits do not match the backbone's {backbone_stages} stages")
    if costs is not None and num_exits is not None and len(np.atleast_1d(costs)) != num_exits:
        raise ValueError(f"{len(np.atleast_1d(costs))} exit costs for {num_exits} exits")
    _validate_training(tol=tol, hidden=hidden, epochs=epochs, lr=lr, batch_size=batch_size)
    if m_step is not None and m_step not in M_STEPS:
        raise ValueError(f"m_step must be one of {', '.join(M_STEPS)}, got {m_step!r}")


def _validate_training(*, tol, hidden, epochs, lr, batch_size) -> None:
    if tol is not None and not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"em tol must be >= 0, got {tol}")
    for name, v in (("router hidden", hidden), ("router epochs", epochs),
                    ("router batch_size", batch_size)):
        if v is not None and (int(v) != v or v < 1):
            raise ValueError(f"{name} must be an integer >= 1, got {v}")
    if lr is not None and not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"router lr must be > 0, got {lr}")
