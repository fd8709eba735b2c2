"""What N concurrent trials add in memory when they read one store from the object store (the
benchmark's section 3; sweep/bench/orchestration.py turns it into fractions of the store).

N Ray actors on one node get the store through the object store (ray.put once, passed by
reference as `tune.with_parameters` does) and touch every array through `torch.as_tensor`
views as the trials do; psutil's USS/PSS/RSS before and after say what each one added.
"""
from __future__ import annotations

import warnings

import numpy as np
import psutil
import ray
import torch


def _memory() -> dict:
    m = psutil.Process().memory_full_info()
    return {"uss": m.uss, "pss": m.pss, "rss": m.rss}


class StoreReader:
    """One trial's view of the store (as a Ray actor). `touch` reads every array through
    torch.as_tensor views, as GaterData.from_store / the EM trial do, and keeps them."""

    def __init__(self):
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        torch.set_num_threads(1)
        torch.ones(8).sum()                  # torch's lazy init before the baseline
        self.views = None

    def memory(self) -> dict:
        return _memory()

    def touch(self, store: dict, copy: bool = False) -> float:
        views, total = [], 0.0
        for split, arrays in store.items():
            if split == "meta":
                continue
            for a in arrays.values():
                t = torch.as_tensor(np.array(a) if copy else np.asarray(a))   # view unless copy
                flat = t.reshape(-1)                                          # still a view
                step = max(1, 4096 // t.element_size())                      # one per page
                total += float(flat[::step].double().sum())  # reads every page, allocates ~0
                views.append(t)
        self.views = views
        return total


def _readers(n: int):
    actor = ray.remote(num_cpus=0)(StoreReader)   # memory, not CPU: all N at once
    readers = [actor.remote() for _ in range(n)]
    ray.get([r.memory.remote() for r in readers])  # started
    return readers


def _round(ref, n: int, *, copy=False) -> dict:
    """N readers: memory before, touch all, memory after (all N holding their views)."""
    readers = _readers(n)
    before = ray.get([r.memory.remote() for r in readers])
    ray.get([r.touch.remote(ref, copy) for r in readers])
    after = ray.get([r.memory.remote() for r in readers])
    for r in readers:
        ray.kill(r)
    mb = lambda b: b / 2**20
    return {"n": n, "copy": copy,
            "uss_added_mb": [mb(a["uss"] - b["uss"]) for a, b in zip(after, before)],
            "pss_added_mb": [mb(a["pss"] - b["pss"]) for a, b in zip(after, before)],
            "rss_added_mb": [mb(a["rss"] - b["rss"]) for a, b in zip(after, before)],
            "process_uss_mb": [mb(b["uss"]) for b in before]}


def reader_rounds(store: dict, ns=(1, 2, 4)) -> tuple[list[dict], dict]:
    """-> (one round per N in ns, a control round of 1 reader that COPIES the store)."""
    ref = ray.put(store)                               # once, as tune.with_parameters does
    rounds = [_round(ref, n) for n in ns]
    control = _round(ref, 1, copy=True)
    del ref
    return rounds, control
