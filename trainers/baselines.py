"""Baseline routes for both families, pure numpy (no torch), keyword-only.

A "route" is an int64 array of target indices (an exit k for the exit family, an expert e for the
expert family), one per sample; threshold sweeps return [T, N]. Accuracy and cost of a route are
then `correct[arange(N), route]` and `costs[route]` (the cascade also returns its own cost, as it
pays for every expert it ran).
"""
from __future__ import annotations

import numpy as np

FALLBACKS = ("last", "cheapest")


def fixed_routes(*, n: int, target: int) -> np.ndarray:
    """Every sample to `target` (one exit / one expert alone): int64 [N]."""
    if int(target) != target or target < 0:
        raise ValueError(f"fixed route target must be a non-negative index, got {target}")
    return np.full(int(n), int(target), dtype=np.int64)


def random_routes(*, n: int, probs, seed: int) -> np.ndarray:
    """Each sample to target t with probability probs[t], drawn from default_rng(seed): int64 [N].

    Exit family: uniform probs (the paper's random). Both families: cost_matched_mix, one mix
    per cost level (cost_levels), so random is a curve at matched expected cost."""
    p = np.asarray(probs, np.float64)
    if p.ndim != 1 or len(p) == 0 or np.any(~np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(f"random routing probabilities must be >= 0 with a positive sum, got {probs}")
    return np.random.default_rng(seed).choice(len(p), size=int(n), p=p / p.sum()).astype(np.int64)


def cost_levels(*, costs, n: int) -> np.ndarray:
    """n >= 2 evenly spaced target costs [n] from the cheapest to the costliest target, both
    included (the two ends are those targets alone)."""
    c = _costs(costs)
    if int(n) != n or n < 2:
        raise ValueError(f"cost levels need n >= 2, got {n}")
    return np.linspace(c.min(), c.max(), int(n))


def cost_matched_mix(*, costs, target) -> np.ndarray:
    """costs [T], target cost -> probs [T] whose expected cost sum_t p_t c_t is `target`.

    It mixes the two targets adjacent in cost around `target` (c_lo < target < c_hi:
    p_hi = (target - c_lo) / (c_hi - c_lo), p_lo = 1 - p_hi), which is what random routing at a
    given expected cost needs and the least spread any mix can have. A target at a target's
    cost is that target alone (equal costs: the lower index). Targets outside
    [min(costs), max(costs)] are refused (ValueError): no mix reaches them, none is clipped.
    E.g. costs (1, 4, 2), target 3 -> (0, 0.5, 0.5)."""
    c = _costs(costs)
    t = float(target)
    if not np.isfinite(t) or t < c.min() or t > c.max():
        raise ValueError(f"target cost {target} lies outside the targets' costs "
                         f"[{c.min():g}, {c.max():g}]: no random mix reaches it")
    p = np.zeros(len(c))
    hit = np.flatnonzero(c == t)
    if len(hit):
        p[hit[0]] = 1.0
        return p
    below, above = np.flatnonzero(c < t), np.flatnonzero(c > t)
    lo = below[np.argmax(c[below])]          # argmax / argmin: the lower index among equals
    hi = above[np.argmin(c[above])]
    p[hi] = (t - c[lo]) / (c[hi] - c[lo])
    p[lo] = 1.0 - p[hi]
    return p


def _costs(costs) -> np.ndarray:
    c = np.asarray(costs, np.float64)
    if c.ndim != 1 or len(c) == 0 or not np.all(np.isfinite(c)):
        raise ValueError(f"costs must be a non-empty list of finite numbers, got {costs!r}")
    return c


def oracle_routes(*, correct, costs, fallback: str = "last") -> np.ndarray:
    """correct bool [N, T], costs [T] -> int64 [N]: the cheapest target that is correct.

    Samples no target gets right go to `fallback`: 'last' = index T-1 (the full backbone for the
    exit family, as the paper's oracle), 'cheapest' = argmin cost (the minimum-cost oracle).
    Equal costs: the lower index wins."""
    ok, c = np.asarray(correct, bool), np.asarray(costs, np.float64)
    if ok.ndim != 2 or ok.shape[1] != len(c):
        raise ValueError(f"oracle needs correct [N, T] and costs [T]; got {ok.shape}, {c.shape}")
    if fallback not in FALLBACKS:
        raise ValueError(f"unknown oracle fallback '{fallback}'; choose {' or '.join(FALLBACKS)}")
    order = np.argsort(c, kind="stable")                                        # cheapest first
    ok_sorted = ok[:, order]                                                     # [N, T]
    first = order[ok_sorted.argmax(axis=1)]
    none = len(c) - 1 if fallback == "last" else int(order[0])
    return np.where(ok_sorted.any(axis=1), first, none).astype(np.int64)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax_entropy(*, logits) -> np.ndarray:
    """logits [..., C] -> entropy of the softmax in nats [...] (0 = certain, log C = uniform)."""
    logp = _log_softmax(logits)
    return -(np.exp(logp) * logp).sum(axis=-1)


def _first_hit(hit: np.ndarray, last: int) -> np.ndarray:
    """hit bool [T, N, L] -> int64 [T, N]: first position along L that is True, else `last`."""
    if hit.shape[2] == 0:
        return np.full(hit.shape[:2], last, np.int64)
    return np.where(hit.any(axis=2), hit.argmax(axis=2), last).astype(np.int64)


def branchynet_routes(*, exit_logits, thresholds) -> np.ndarray:
    """exit_logits [N, K, C], thresholds [T] (nats) -> exit int64 [T, N].

    Exit at the first k whose softmax entropy < threshold, else the last exit: threshold 0 gives
    the last exit for all samples, a threshold above log C gives exit 0 for all."""
    ent = softmax_entropy(logits=exit_logits)[:, :-1]                            # [N, K-1]
    thr = np.asarray(thresholds, np.float64).reshape(-1)
    return _first_hit(ent[None] < thr[:, None, None], ent.shape[1])


def cascade_routes(*, logits, order, costs, thresholds) -> tuple[np.ndarray, np.ndarray]:
    """Run experts in `order` (cheapest -> most accurate) and stop at the first whose max softmax
    >= threshold, else at the last in order. Every expert run is paid for.

    logits [N, E, C], order [L] expert indices, costs [E], thresholds [T] ->
    (chosen expert int64 [T, N], cost float64 [T, N] = sum of the costs of the experts run)."""
    z, c = np.asarray(logits), np.asarray(costs, np.float64)
    o = np.asarray(order, np.int64).reshape(-1)
    if len(o) == 0 or len(set(o.tolist())) != len(o) or o.min() < 0 or o.max() >= z.shape[1]:
        raise ValueError(f"cascade order must list distinct expert indices < {z.shape[1]}, got {order}")
    if len(c) != z.shape[1]:
        raise ValueError(f"cascade needs one cost per expert: {len(c)} costs, {z.shape[1]} experts")
    conf = np.exp(_log_softmax(z[:, o]).max(axis=-1))[:, :-1]                  # [N, L-1]
    thr = np.asarray(thresholds, np.float64).reshape(-1)
    stop = _first_hit(conf[None] >= thr[:, None, None], len(o) - 1)              # [T, N] position
    return o[stop], np.cumsum(c[o])[stop]


def pareto_on_val(*, val_acc, val_cost) -> np.ndarray:
    """bool mask [T]: operating points not dominated on val (no other point has accuracy >= and
    cost <= with one strict). Of exact (acc, cost) duplicates only the first index is kept, so
    each distinct val point is reported once on test."""
    acc, cost = np.asarray(val_acc, np.float64), np.asarray(val_cost, np.float64)
    if acc.shape != cost.shape or acc.ndim != 1:
        raise ValueError(f"val_acc and val_cost must be 1-d of equal length: {acc.shape}, {cost.shape}")
    keep = np.zeros(len(acc), bool)
    best = -np.inf
    for i in np.lexsort((np.arange(len(acc)), -acc, cost)):     # cost up, then acc down, then index
        if acc[i] > best:
            keep[i], best = True, acc[i]
    return keep
