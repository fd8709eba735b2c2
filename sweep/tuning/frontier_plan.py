"""Adaptive λ placement (`sweep.search: frontier`): where the val frontier has its largest gap.

Pure Python (no Ray): `sweep/tuning/search.py` adapts it to Tune's Searcher API.

One plan per family. A *batch* is every grid point of the family at one λ (its τ × seeds ×
variants × axes: `template`, the family's grid at one λ with λ replaced). The plan

1. runs the coarse grid first: `coarse` λ values evenly spaced over [min λ, max λ] of the
   family's configured grid (both ends included), as one batch each;
2. then, once every outstanding batch is in, places ONE new λ: the val frontier of everything
   so far (each configuration's seed-mean val points, `val_points`; cost minimised, accuracy
   maximised) sorted by cost; between each pair of neighbouring frontier points that come from
   different λ, the gap's area (Δcost × Δaccuracy, the hypervolume a point in between could
   add at most); the new λ is the midpoint of the λ pair with the largest area (ties: the
   lower λ);
3. stops when the next batch would exceed `budget` trials, when the largest gap is at most
   `tol` × the frontier's hypervolume (against the costliest point and accuracy 0), or when no
   pair of neighbours differs in λ by more than `min_step`.

Deterministic: the same results give the same λ sequence (no random draw at all).
"""
from __future__ import annotations

import numpy as np

DIGITS = 6          # λ values are rounded to this many decimals (stable names and keys)


def _key(point: dict) -> tuple:
    """A configuration without its seed (the seeds' val points are averaged)."""
    return tuple(sorted((k, repr(v)) for k, v in point.items() if k != "seed"))


def pareto(points) -> list:
    """The non-dominated (cost, accuracy, λ) triples, sorted by cost (ties: higher accuracy)."""
    out = []
    for c, a, lam in sorted(points, key=lambda p: (p[0], -p[1], p[2])):
        if not out or a > out[-1][1]:
            out.append((c, a, lam))
    return out


def hypervolume(front) -> float:
    """Area dominated by the frontier (sorted by cost) within [0, max cost] x [0, accuracy]."""
    if not front:
        return 0.0
    ref = max(c for c, _, _ in front)
    return float(sum((ref - c) * (a - prev) for (c, a, _), prev in
                     zip(front, [0.0] + [a for _, a, _ in front[:-1]])))


def largest_gap(front, done_lams, *, min_step) -> tuple:
    """(area, λ between) of the widest gap between neighbours of different λ; (0, None)."""
    best = (0.0, None)
    for (c0, a0, l0), (c1, a1, l1) in zip(front, front[1:]):
        lam = round((l0 + l1) / 2, DIGITS)
        if abs(l1 - l0) <= min_step or lam in done_lams:
            continue
        area = (c1 - c0) * (a1 - a0)
        if area > best[0] or (area == best[0] and best[1] is not None and lam < best[1]):
            best = (area, lam)
    return best


class FrontierPlan:
    """The λ placement of one family (module doc)."""

    def __init__(self, template: list, *, lams, coarse=3, budget=0, tol=1e-3, min_step=1e-3):
        self.template = [{k: v for k, v in p.items() if k != "lam"} for p in template]
        lo, hi = float(min(lams)), float(max(lams))
        grid = np.linspace(lo, hi, max(1, coarse)) if hi > lo else np.array([lo])
        self.todo = [round(float(x), DIGITS) for x in dict.fromkeys(grid.tolist())]
        self.budget = budget or len(self.template) * len(lams)
        self.tol, self.min_step = tol, min_step
        self.runs, self.outstanding, self.lams, self.finished = 0, 0, [], False
        self.results: dict = {}          # configuration key -> {"lam", "points": [per seed]}

    def next_points(self) -> list:
        """The points to run now (empty while results are outstanding or when done)."""
        if self.finished or (self.outstanding and not self.todo):
            return []                    # the coarse batches go out together; then one by one
        if not self.todo:
            lam = self._next_lam()
            if lam is None:
                self.finished = True
                return []
            self.todo.append(lam)
        lam = self.todo.pop(0)
        if self.runs + len(self.template) > self.budget:
            self.finished = True
            return []
        batch = [{**p, "lam": lam} for p in self.template]
        self.lams.append(lam)
        self.runs += len(batch)
        self.outstanding += len(batch)
        return batch

    def add(self, point: dict, val_points) -> None:
        """One trial's result: its val (cost, accuracy) points (None: the trial failed)."""
        self.outstanding -= 1
        if val_points:
            entry = self.results.setdefault(_key(point), {"lam": point["lam"], "points": []})
            entry["points"].append(np.asarray(val_points, float).reshape(-1, 2))

    def val_front(self) -> list:
        """The frontier of every configuration's seed-mean val points: (cost, accuracy, λ)."""
        pts = []
        for entry in self.results.values():
            same = [p for p in entry["points"] if p.shape == entry["points"][0].shape]
            mean = np.mean(same, axis=0)
            pts += [(float(c), float(a), entry["lam"]) for c, a in mean]
        return pareto(pts)

    def _next_lam(self):
        front = self.val_front()
        area, lam = largest_gap(front, set(self.lams), min_step=self.min_step)
        if lam is None or area <= self.tol * hypervolume(front):
            return None
        return lam
