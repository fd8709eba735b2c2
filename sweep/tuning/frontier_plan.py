"""Adaptive λ placement (`sweep.search: frontier`): where the val frontier has its largest gap.

Pure Python (no Ray): `sweep/tuning/search.py` adapts it to Tune's Searcher API.

One plan per family. The family's grid at one λ is the `template`: its *settings* (τ x
variants x axes) times its seeds. A *configuration* is one (λ, setting); its val point is the
mean over the seeds run of it. The plan explores with ONE training seed per configuration, the
grid's seeds in turn from the `seed`-th (the search seed; in turn, so no one seed's luck
steers the search), and then

1. runs the coarse grid: `coarse` λ values evenly spaced over [min λ, max λ] of the family's
   configured grid (both ends included), each with every setting, as one batch;
2. then, once every outstanding trial is in, refines ONE gap: on the val frontier of every
   configuration so far (cost minimised, accuracy maximised; sorted by cost), each pair of
   neighbouring points has the area Δcost x Δaccuracy (the hypervolume a point in between
   could add at most); the pair with the largest area (ties: the lower λ) gets the midpoint of
   their λ, run with the settings of the two points (one or two trials: where the frontier is,
   not every setting). Two settings of ONE λ (e.g. τ 2 and τ 0.5 of λ 0.75 can be far apart
   in cost) are split by moving each half way to the next placed λ towards the other's cost
   (the side of λ where cost rises is read from the results: up for the gater, down for the
   EM router);
3. replicates instead: the frontier's configurations, largest hypervolume contribution first,
   get the grid's other seeds, one configuration per batch, when the largest gap is at most
   `tol` x the frontier's hypervolume (against the costliest point and accuracy 0), when no
   pair has a split left (λ closer than `min_step`, or run already), or when refining would
   leave too little budget to replicate every configuration of the frontier (the new ones
   included): the frontier reported is never one seed's luck;
4. stops when the next batch would exceed `budget` trials, or nothing is left to run.

With `replicate=False` step 3 never runs: every configuration stays on its one seed (as
Optuna's trials do) and the whole budget goes to refining; the frontier reported is then single
trained models, chosen on val, not seed means.

Deterministic: the same seed and results give the same sequence of points (no random draw).
"""
from __future__ import annotations

import numpy as np

DIGITS = 6          # λ values are rounded to this many decimals (stable names and keys)


def _setting(point: dict) -> tuple:
    """A point without its λ and seed: τ, variant, axes (hashable, order-free)."""
    return tuple(sorted((k, repr(v)) for k, v in point.items() if k not in ("lam", "seed")))


def pareto(points) -> list:
    """The non-dominated (cost, accuracy, λ, ...) tuples, sorted by cost (ties: higher
    accuracy, then the rest of the tuple)."""
    out = []
    for p in sorted(points, key=lambda p: (p[0], -p[1], *p[2:])):
        if not out or p[1] > out[-1][1]:
            out.append(p)
    return out


def hypervolume(front, ref=None) -> float:
    """Area dominated by the frontier (sorted by cost) within [0, ref] x [0, accuracy]; ref:
    the cost of reference (default: the frontier's costliest point)."""
    if not front:
        return 0.0
    ref = max(p[0] for p in front) if ref is None else ref
    return float(sum((ref - p[0]) * (p[1] - prev) for p, prev in
                     zip(front, [0.0] + [q[1] for q in front[:-1]])))


def contributions(front) -> list:
    """Each frontier point's exclusive hypervolume (what removing it alone would lose), the
    reference cost one mean cost gap beyond the costliest point (so that point counts too)."""
    costs = [p[0] for p in front]
    ref = max(costs) + (max(costs) - min(costs)) / max(1, len(front) - 1) if front else 0.0
    hv = hypervolume(front, ref)
    return [hv - hypervolume(front[:i] + front[i + 1:], ref) for i in range(len(front))]


def _beyond(lam, lams, step, *, min_step):
    """The midpoint between λ and the nearest placed λ on the side `step` (+1 above, -1
    below), or None when there is none or it is within min_step."""
    side = [x for x in lams if (x - lam) * step > min_step]
    if not side:
        return None
    return round((lam + min(side, key=lambda x: abs(x - lam))) / 2, DIGITS)


def _splits(p0, p1, lams, *, up, min_step) -> list:
    """The (λ, setting) that could land between neighbours p0 (cheaper) and p1 on the
    frontier: their λ midpoint with both settings; when their λ are equal (two settings, e.g.
    τ, of one λ), each one moved half way to the next placed λ towards the other's cost (up:
    the side of λ where cost rises)."""
    (_, _, l0, s0), (_, _, l1, s1) = p0, p1
    if abs(l1 - l0) > min_step:
        mid = round((l0 + l1) / 2, DIGITS)
        return [(mid, s) for s in dict.fromkeys((s0, s1))]
    moved = [(_beyond(l0, lams, up, min_step=min_step), s0),
             (_beyond(l1, lams, -up, min_step=min_step), s1)]
    return [m for m in moved if m[0] is not None]


def largest_gap(front, done, *, lams=(), up=1, min_step=1e-3) -> tuple:
    """(area, [(λ, setting)]) of the widest gap between frontier neighbours (Δcost x
    Δaccuracy) that has a split (`_splits`) not yet in `done`; (0, []) if none. Ties: the
    split with the lower λ."""
    best = (0.0, [])
    for p0, p1 in zip(front, front[1:]):
        todo = [x for x in _splits(p0, p1, lams, up=up, min_step=min_step) if x not in done]
        area = (p1[0] - p0[0]) * (p1[1] - p0[1])
        if todo and (area > best[0] or (area == best[0] and best[1] and
                                        min(todo)[0] < min(best[1])[0])):
            best = (area, todo)
    return best


class FrontierPlan:
    """The λ placement of one family (module doc)."""

    def __init__(self, template: list, *, lams, coarse: int, budget=0, tol=1e-3, min_step=1e-3,
                 seed=0, replicate=True):
        points = [{k: v for k, v in p.items() if k != "lam"} for p in template]
        self.seeds = list(dict.fromkeys(p.get("seed") for p in points))
        self.turn = seed                                         # the next exploring seed
        self.settings = {_setting(p): {k: v for k, v in p.items() if k != "seed"}
                         for p in points}                        # setting -> its point fields
        lo, hi = float(min(lams)), float(max(lams))
        grid = np.linspace(lo, hi, max(1, coarse)) if hi > lo else np.array([lo])
        self.todo = [[(round(float(x), DIGITS), s, self._explorer()) for s in self.settings]
                     for x in dict.fromkeys(grid.tolist())]     # batches of (λ, setting, seed)
        self.budget = budget or len(points) * len(lams)
        self.tol, self.min_step, self.replicate = tol, min_step, replicate
        self.runs, self.outstanding, self.finished = 0, 0, False
        self.ran: set = set()                    # (λ, setting, seed) handed out
        self.results: dict = {}                  # (λ, setting) -> [val points per seed]

    def next_points(self) -> list:
        """The points to run now (empty while results are outstanding or when done)."""
        if self.finished or (self.outstanding and not self.todo):
            return []                    # the coarse batches go out together; then one by one
        if not self.todo:
            batch = self._next_batch()
            if not batch:
                self.finished = True
                return []
            self.todo.append(batch)
        batch = self.todo.pop(0)
        if self.runs + len(batch) > self.budget:
            self.finished = True
            return []
        self.ran.update(batch)
        self.runs += len(batch)
        self.outstanding += len(batch)
        return [{**self.settings[s], "lam": lam, "seed": seed} for lam, s, seed in batch]

    def add(self, point: dict, val_points) -> None:
        """One trial's result: its val (cost, accuracy) points (None: the trial failed)."""
        self.outstanding -= 1
        if val_points:
            key = (round(float(point["lam"]), DIGITS), _setting(point))
            self.results.setdefault(key, []).append(np.asarray(val_points, float).reshape(-1, 2))

    def val_front(self) -> list:
        """The frontier of every configuration's seed-mean val points: (cost, accuracy, λ,
        setting)."""
        pts = []
        for (lam, s), runs in self.results.items():
            mean = np.mean([p for p in runs if p.shape == runs[0].shape], axis=0)
            pts += [(float(c), float(a), lam, s) for c, a in mean]
        return pareto(pts)

    def _next_batch(self) -> list:
        """A refining batch (a new λ in the largest gap), else a replicating one, else []."""
        front = self.val_front()
        done = {(lam, s) for lam, s, _ in self.ran}
        area, todo = largest_gap(front, done, lams=sorted({lam for lam, _ in done}),
                                 up=self._up(), min_step=self.min_step)
        # refine only while the budget still covers the seeds the frontier lacks, the new
        # configurations' included: the frontier found is never left on one seed
        missing = self._missing(front)
        reserve = len(missing) + len(todo) * (len(self.seeds) - 1) if self.replicate else 0
        if todo and area > self.tol * hypervolume(front) and \
                self.runs + len(todo) + reserve <= self.budget:
            return [(lam, s, self._explorer()) for lam, s in todo]
        return [m for m in missing if m[:2] == missing[0][:2]]     # one configuration

    def _explorer(self):
        """The seed of the next exploring trial: the grid's seeds in turn."""
        self.turn += 1
        return self.seeds[(self.turn - 1) % len(self.seeds)]

    def _up(self) -> int:
        """+1 when cost rises with λ in the results so far (the gater: λ weighs accuracy),
        -1 when it falls (the EM router: λ weighs exit cost): the mean cost at the largest λ
        against the smallest."""
        by_lam: dict = {}
        for (lam, _), runs in self.results.items():
            by_lam.setdefault(lam, []).extend(float(np.mean(p[:, 0])) for p in runs)
        if len(by_lam) < 2:
            return 1
        return 1 if np.mean(by_lam[max(by_lam)]) >= np.mean(by_lam[min(by_lam)]) else -1

    def _missing(self, front) -> list:
        """(λ, setting, seed) the frontier's configurations lack, the configuration with the
        largest hypervolume contribution first (a configuration once: the EM router's curve
        puts several points of one on the frontier)."""
        if not self.replicate:
            return []                    # replicate=False: every configuration on one seed
        order = np.argsort(-np.asarray(contributions(front)), kind="stable")
        configs = dict.fromkeys((front[i][2], front[i][3]) for i in order)
        return [(lam, s, seed) for lam, s in configs for seed in self.seeds
                if (lam, s, seed) not in self.ran]
