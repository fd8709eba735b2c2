"""A small, realistic results directory for tests: `write_fake_results(dir, seed=0)`.

Writes `manifest.json`, `points.parquet`, `routes.parquet` and `decisions.parquet` following the
output contract, for both families (or the ones asked for):

* experts: squeezenet / deit_s / mobilevit_s (the gater paper's latencies), the gater over
  lam x tau x 3 seeds (one trial failed), random (3 seeds), oracle, cascade (val + test).
* exits: 4 fixed exits (FLOPs costs), the EM router over lam x 3 seeds with two test thresholds
  (and val points), BranchyNet (val + test), random (3 seeds), oracle.

Per-sample correctness is simulated once per model (correlated through a shared difficulty),
every router picks a target per sample, and points/routes are computed from those decisions,
so all three tables agree exactly. Pure numpy/pandas; deterministic in `seed`.

Also `em_paper_points()` (the EM paper's Table 1 as a points frame) and
`write_xss_results(dir)` (markup in the config name, a method name and an error message).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

SEVERITIES = ("clean", "mild", "moderate", "severe")
EXPERTS = {"squeezenet": 2.14, "deit_s": 7.56, "mobilevit_s": 10.59}  # ms, cheapest first
EXPERT_ACC = {"squeezenet": (.90, .85, .45, .31), "deit_s": (.95, .94, .87, .71),
              "mobilevit_s": (.80, .78, .70, .60)}
GATER_MS = 0.82
EXITS = {"exit1": 0.23, "exit2": 0.48, "exit3": 0.74, "exit4": 1.0}  # fraction of compute
EXIT_ACC = {"exit1": (.50, .45, .35, .25), "exit2": (.70, .66, .55, .42),
            "exit3": (.91, .88, .80, .65), "exit4": (.95, .93, .86, .72)}
GATER_LAMS, GATER_TAUS, SEEDS = (0.5, 0.7, 0.9, 1.0), (0.5, 1.0), (0, 1, 2)
EM_LAMS, EM_THRESHOLDS = (0.0, 0.5, 1.0, 2.0), (0.5, 0.8)
FAILED = {"family": "experts", "method": "gater", "lam": 0.5, "tau": 1.0, "seed": 2,
          "error": "RuntimeError: worker died <b>unexpectedly</b> & left no checkpoint"}


class _Writer:
    """Accumulates points / routes / decisions rows for one fake run."""

    def __init__(self):
        self.points, self.routes, self.decisions, self.trials = [], [], [], []
        self.count = 0

    def add(self, *, family, method, split, sev, target, correct, cost, sample_id, labels,
            variant=None, trial_id=None, seed=0, lam=None, tau=None, threshold=None):
        """One operating point from per-sample decisions (arrays over samples x severities)."""
        self.count += 1
        pid = f"{family[:3]}-{method}-{self.count:04d}"
        unit = "ms" if family == "experts" else "compute"
        base = dict(point_id=pid, family=family, method=method, variant=variant,
                    trial_id=trial_id, seed=seed, lam=lam, tau=tau, threshold=threshold,
                    split=split, cost_unit=unit, status="ok", error=None)
        for name in ("all",) + SEVERITIES:
            m = np.ones(len(sev), bool) if name == "all" else sev == name
            self.points.append({**base, "severity": name, "accuracy": float(correct[m].mean()),
                                "cost": float(cost[m].mean()), "n": int(m.sum())})
            if split == "test":
                for t in np.unique(target):
                    self.routes.append({"point_id": pid, "severity": name, "target": str(t),
                                        "fraction": float(np.mean(target[m] == t))})
        if split == "test":
            self.decisions.append(pd.DataFrame({
                "point_id": pid, "sample_id": sample_id, "severity": sev, "label": labels,
                "target": target, "correct": correct, "cost": cost}))
        return pid

    def fail(self, *, family, method, lam, tau, seed, error, trial_id):
        unit = "ms" if family == "experts" else "compute"
        self.count += 1
        self.points.append(dict(
            point_id=f"{family[:3]}-{method}-{self.count:04d}", family=family, method=method,
            variant=None, trial_id=trial_id, seed=seed, lam=lam, tau=tau, threshold=None,
            split="test", severity="all", accuracy=np.nan, cost=np.nan, cost_unit=unit, n=0,
            status="failed", error=error))


def _samples(rng, n):
    """sample_id, severity, label and a shared difficulty u for n samples x 4 severities."""
    sev = np.repeat(np.array(SEVERITIES), n)
    sample_id = np.tile(np.arange(n), len(SEVERITIES))
    labels = np.tile(rng.integers(0, 6, n), len(SEVERITIES))
    return sample_id, sev, labels, rng.uniform(size=n * len(SEVERITIES))


def _correct(rng, u, sev, table):
    """Per-model bool correctness: shared difficulty u below the model's accuracy, 5% flips."""
    sev_i = np.array([SEVERITIES.index(x) for x in sev])
    out = {}
    for name, accs in table.items():
        ok = u < np.asarray(accs)[sev_i]
        flip = rng.uniform(size=len(u)) < 0.05
        out[name] = ok ^ flip
    return out


def _pick(names, choice_idx, correct, costs):
    target = np.asarray(names)[choice_idx]
    corr = np.array([correct[t][i] for i, t in enumerate(target)])
    cost = np.array([costs[t] for t in target], float)
    return target, corr, cost


def _single_models(w, method, names, correct, costs, n, common):
    """One fixed route per model (every expert / every exit alone)."""
    for name in names:
        t, c, k = _pick(names, np.full(n, names.index(name)), correct, costs)
        w.add(method=method, variant=name, target=t, correct=c, cost=k, **common)


def _oracle(names, correct, costs, n):
    """Cheapest correct model per sample, else the most expensive one."""
    idx = np.full(n, len(names) - 1)
    for k in reversed(range(len(names))):
        idx = np.where(correct[names[k]], k, idx)
    return idx


def _experts_family(w, rng, s, n_val, rng_val):
    names = sorted(EXPERTS, key=EXPERTS.get)
    sample_id, sev, labels, u = s
    correct = _correct(rng, u, sev, EXPERT_ACC)
    common = dict(family="experts", split="test", sev=sev, sample_id=sample_id, labels=labels)
    _single_models(w, "expert", names, correct, EXPERTS, len(u), common)
    sev_scale = {"clean": 1.0, "mild": 0.9, "moderate": 0.3, "severe": 0.1}
    for lam in GATER_LAMS:
        for tau in GATER_TAUS:
            for seed in SEEDS:
                trial = f"gater_lam{lam:g}_tau{tau:g}_s{seed}"
                if (lam, tau, seed) == (FAILED["lam"], FAILED["tau"], FAILED["seed"]):
                    w.fail(family="experts", method="gater", lam=lam, tau=tau, seed=seed,
                           error=FAILED["error"], trial_id=trial)
                    w.trials.append({**FAILED, "trial_id": trial, "status": "failed"})
                    continue
                g = np.random.default_rng([seed, int(lam * 100), int(tau * 10)])
                p_sq = np.clip(1.9 * (1 - lam) + 0.02 * seed, 0, 1) * np.vectorize(
                    sev_scale.get)(sev) * (1 + 0.05 * (tau - 1))
                p_sq = np.where(correct["squeezenet"], np.minimum(1, p_sq * 1.2), p_sq * 0.4)
                choice = np.where(g.uniform(size=len(u)) < p_sq, 0, 1)
                choice = np.where(g.uniform(size=len(u)) < 0.01 * lam, 2, choice)
                t, c, k = _pick(names, choice, correct, EXPERTS)
                w.add(method="gater", trial_id=trial, seed=seed, lam=lam, tau=tau, target=t,
                      correct=c, cost=k + GATER_MS, **common)
                w.trials.append({"trial_id": trial, "family": "experts", "method": "gater",
                                 "lam": lam, "tau": tau, "seed": seed, "status": "ok",
                                 "error": None})
    for seed in SEEDS:
        g = np.random.default_rng([seed, 7])
        t, c, k = _pick(names, g.integers(0, len(names), len(u)), correct, EXPERTS)
        w.add(method="random", seed=seed, target=t, correct=c, cost=k, **common)
    t, c, k = _pick(names, _oracle(names, correct, EXPERTS, len(u)), correct, EXPERTS)
    w.add(method="oracle", target=t, correct=c, cost=k, **common)
    conf = np.where(correct["squeezenet"], rng.uniform(0.4, 1, len(u)),
                    rng.uniform(0, 0.7, len(u)))
    for thr in (0.5, 0.8):
        choice = np.where(conf >= thr, 0, 1)
        t, c, _ = _pick(names, choice, correct, EXPERTS)
        k = np.where(choice == 0, EXPERTS["squeezenet"], EXPERTS["squeezenet"] + EXPERTS["deit_s"])
        w.add(method="cascade", threshold=thr, target=t, correct=c, cost=k, **common)
    _val_points(w, rng_val, n_val, family="experts", method="cascade", table=EXPERT_ACC,
                costs=EXPERTS, thresholds=(0.3, 0.5, 0.8))


def _exit_scores(rng, correct, names, shift):
    return {k: np.where(correct[k], rng.uniform(0.3, 1, len(correct[k])),
                        rng.uniform(0, 0.6, len(correct[k]))) + shift for k in names}


def _first_exit(scores, names, thr):
    idx = np.full(len(scores[names[0]]), len(names) - 1)
    for k in reversed(range(len(names) - 1)):
        idx = np.where(scores[names[k]] >= thr, k, idx)
    return idx


def _exits_family(w, rng, s, n_val, rng_val):
    names = list(EXITS)
    sample_id, sev, labels, u = s
    correct = _correct(rng, u, sev, EXIT_ACC)
    common = dict(family="exits", split="test", sev=sev, sample_id=sample_id, labels=labels)
    _single_models(w, "exit", names, correct, EXITS, len(u), common)
    for lam in EM_LAMS:
        for seed in SEEDS:
            trial = f"em_router_lam{lam:g}_tau1_s{seed}"
            g = np.random.default_rng([seed, int(lam * 10), 3])
            scores = _exit_scores(g, correct, names, 0.12 * lam)
            for thr in EM_THRESHOLDS:
                t, c, k = _pick(names, _first_exit(scores, names, thr), correct, EXITS)
                w.add(method="em_router", trial_id=trial, seed=seed, lam=lam, tau=1.0,
                      threshold=thr, target=t, correct=c, cost=k, **common)
            w.trials.append({"trial_id": trial, "family": "exits", "method": "em_router",
                             "lam": lam, "tau": 1.0, "seed": seed, "status": "ok", "error": None})
            _val_points(w, g, n_val, family="exits", method="em_router", table=EXIT_ACC,
                        costs=EXITS, thresholds=(0.3,) + EM_THRESHOLDS, lam=lam, tau=1.0,
                        seed=seed, trial_id=trial)
    entropy = {k: 1.0 - v for k, v in _exit_scores(rng, correct, names, 0.0).items()}
    for thr in (0.3, 0.6):
        idx = _first_exit({k: -v for k, v in entropy.items()}, names, -thr)
        t, c, k = _pick(names, idx, correct, EXITS)
        w.add(method="branchynet", threshold=thr, target=t, correct=c, cost=k, **common)
    _val_points(w, rng_val, n_val, family="exits", method="branchynet", table=EXIT_ACC,
                costs=EXITS, thresholds=(0.3, 0.45, 0.6))
    for seed in SEEDS:
        g = np.random.default_rng([seed, 11])
        t, c, k = _pick(names, g.integers(0, len(names), len(u)), correct, EXITS)
        w.add(method="random", seed=seed, target=t, correct=c, cost=k, **common)
    t, c, k = _pick(names, _oracle(names, correct, EXITS, len(u)), correct, EXITS)
    w.add(method="oracle", target=t, correct=c, cost=k, **common)


def _val_points(w, rng, n, *, family, method, table, costs, thresholds, **extra):
    """Validation-split points of a threshold method (what its test thresholds were chosen on)."""
    names = list(costs)
    sample_id, sev, labels, u = _samples(rng, n)
    correct = _correct(rng, u, sev, table)
    scores = _exit_scores(rng, correct, names, 0.0)
    for thr in thresholds:
        t, c, k = _pick(names, _first_exit(scores, names, thr), correct, costs)
        w.add(family=family, method=method, split="val", sev=sev, target=t, correct=c,
              cost=k, sample_id=sample_id, labels=labels, threshold=thr, **extra)


def _manifest(config_name, families, trials) -> dict:
    costs = {"experts": {k: {"latency_ms": v, "flops": int(v * 1e8), "source": "given"}
                         for k, v in EXPERTS.items()},
             "gater": {"latency_ms": GATER_MS, "flops": 3.1e7},
             "exits": {k: {"compute": v, "flops": int(v * 5.6e8)} for k, v in EXITS.items()},
             "exit_cost_mode": "flops", "latency_method": "perf_counter_ns, batch 1, median"}
    return {
        "routesweep_version": "0.1.0",
        "status": "partial" if any(t["status"] == "failed" for t in trials) else "complete",
        "created": "2025-01-01T10:00:00Z", "finished": "2025-01-01T10:05:00Z",
        "config_name": config_name,
        "config": {"name": config_name, "families": list(families),
                   "grid": {"lam": list(GATER_LAMS), "tau": list(GATER_TAUS),
                            "seeds": list(SEEDS)},
                   "data": {"dataset": "digits", "image_size": 32}},
        "versions": {"python": "3.11", "pandas": pd.__version__, "numpy": np.__version__},
        "hardware": {"device": "cpu", "cpu": "Fake CPU", "cores": 2, "memory_gb": 8.0,
                     "gpu": None},
        "costs": costs,
        "dataset": {"name": "digits", "classes": 10, "test_samples": None},
        "timings": {"features": 12.5, "trials": 240.0, "report": 3.0},
        "trials": trials,
    }


def write_fake_results(directory, *, seed=0, families=("experts", "exits"),
                       config_name="fake-run", n_samples=40, n_val=30) -> Path:
    """Write a fake but contract-conform results directory and return its path."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    w = _Writer()
    for family in families:
        fam_rng = np.random.default_rng([seed, 1 if family == "experts" else 2])
        build = _experts_family if family == "experts" else _exits_family
        build(w, fam_rng, _samples(fam_rng, n_samples), n_val, np.random.default_rng([seed, 9]))
    pd.DataFrame(w.points).to_parquet(out / "points.parquet", index=False)
    pd.DataFrame(w.routes, columns=["point_id", "severity", "target", "fraction"]).to_parquet(
        out / "routes.parquet", index=False)
    dec = pd.concat(w.decisions, ignore_index=True) if w.decisions else pd.DataFrame()
    dec.to_parquet(out / "decisions.parquet", index=False)
    manifest = _manifest(config_name, families, w.trials)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return out


def em_paper_points() -> pd.DataFrame:
    """The EM paper's Table 1 as points (exits family, whole test set, seed 0), with its
    'EM best' 0.8984 @ 0.75 and the 0.865 @ 0.69 operating point as two λ values."""
    base = dict(family="exits", variant=None, lam=None, tau=None, threshold=None, split="test",
                severity="all", cost_unit="compute", n=10000, status="ok", trial_id=None,
                seed=0)
    rows = [dict(method="exit", variant=f"exit{k + 1}", accuracy=a, cost=c)
            for k, (a, c) in enumerate([(.4359, .25), (.6635, .5), (.8984, .75), (.9497, 1.)])]
    rows += [dict(method="random", accuracy=.7501, cost=.6384),
             dict(method="branchynet", threshold=.5, accuracy=.8756, cost=.6452),
             dict(method="em_router", lam=.5, tau=1., accuracy=.8984, cost=.75),
             dict(method="em_router", lam=1., tau=1., accuracy=.865, cost=.69),
             dict(method="oracle", accuracy=.9691, cost=.4855)]
    out = pd.DataFrame([{**base, **r} for r in rows])
    out["point_id"] = [f"p{i}" for i in range(len(out))]
    return out


XSS_CONFIG = "<script>alert(1)</script>"
XSS_METHOD = "<img src=x onerror=alert(2)>"


def write_xss_results(directory) -> Path:
    """Fake results whose config name, a method name and an error message carry markup."""
    run = write_fake_results(directory, config_name=XSS_CONFIG)
    pts = pd.read_parquet(run / "points.parquet")
    pts.loc[pts["method"] == "random", "method"] = XSS_METHOD
    pts.loc[pts["status"] == "failed", "error"] = "<script>document.title='pwned'</script>"
    pts.to_parquet(run / "points.parquet")
    return run
