"""A small, realistic results directory for tests: `write_fake_results(dir, seed=0)`.

Only the decisions are simulated: per-sample correctness of every model (correlated through a
shared difficulty) and the target each router picks per sample. Rows, route shares, per-sample
decisions and the manifest go through the real writers (`sweep.results.tables.Tables`,
`write_tables`, `sweep.results.manifest`), so a fake directory has exactly a run's shape:

* experts: squeezenet / deit_s / mobilevit_s (the gater paper's latencies; val + test), the
  gater over lam x tau x 3 seeds (one trial failed), random (3 seeds), oracle, cascade (val +
  test).
* exits: 4 fixed exits (FLOPs costs; val + test), the EM router over lam x 3 seeds with two
  test thresholds (and val points), BranchyNet (val + test), random (3 seeds), oracle.

Deterministic in `seed`. Also `em_paper_points()` (the EM paper's Table 1 as a points frame)
and `write_xss_results(dir)` (markup in the config name, a method name and an error message).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

from sweep import families as registry
from sweep.config import SEVERITIES, Config, to_dict
from sweep.results import manifest as M
from sweep.results.tables import Tables, write_json, write_tables

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


@dataclasses.dataclass
class _Split:
    """A simulated split: n samples x 4 severities, each model's correctness per sample."""
    severity: np.ndarray          # int8 index into SEVERITIES
    sample_id: np.ndarray
    label: np.ndarray
    u: np.ndarray                 # shared difficulty in [0, 1)

    @classmethod
    def draw(cls, rng, n):
        sev = np.repeat(np.arange(len(SEVERITIES), dtype=np.int8), n)
        return cls(sev, np.tile(np.arange(n), len(SEVERITIES)),
                   np.tile(rng.integers(0, 6, n), len(SEVERITIES)),
                   rng.uniform(size=n * len(SEVERITIES)))

    def correct(self, rng, table) -> np.ndarray:
        """bool [N, T]: difficulty below the model's accuracy at the severity, 5% flips."""
        cols = [(self.u < np.asarray(accs)[self.severity]) ^ (rng.uniform(size=len(self.u))
                                                               < 0.05)
                for accs in table.values()]
        return np.stack(cols, 1)


class _Writer:
    """Routes -> rows through the real Tables; the fake only says who goes where."""

    def __init__(self, tables: Tables, splits: dict, family: str, names, costs, correct):
        self.tables, self.splits, self.names = tables, splits, list(names)
        self.costs = np.asarray(list(costs), float)
        self.correct = correct          # {split: bool [N, T]}
        self.base = {"family": family, "cost_unit": registry.get(family).cost_unit, "seed": 0}

    def add(self, route, *, split="test", cost=None, **meta):
        r = np.asarray(route, np.int64)
        self.tables.add(meta={**self.base, **meta}, split=split, target=r,
                        correct=self.correct[split][np.arange(len(r)), r],
                        cost=self.costs[r] if cost is None else cost, target_names=self.names)

    def fail(self, **meta):
        self.tables.add_failed(meta={**self.base, **meta})


def _oracle(correct: np.ndarray) -> np.ndarray:
    """Cheapest correct model per sample (targets are cheapest first), else the last one."""
    return np.where(correct.any(1), correct.argmax(1), correct.shape[1] - 1)


def _first_over(scores: np.ndarray, thr: float) -> np.ndarray:
    """scores [N, T]: the first target (not the last) scoring >= thr, else the last."""
    hit = scores[:, :-1] >= thr
    return np.where(hit.any(1), hit.argmax(1), scores.shape[1] - 1)


def _scores(rng, correct: np.ndarray, shift=0.0) -> np.ndarray:
    return np.where(correct, rng.uniform(0.3, 1, correct.shape),
                    rng.uniform(0, 0.6, correct.shape)) + shift


def _trial(family, method, lam, tau, seed, status="ok", error=None) -> dict:
    return {"trial_id": f"{method}_lam{lam:g}_tau{tau:g}_s{seed}", "family": family,
            "lam": lam, "tau": tau, "seed": seed, "status": status, "error": error,
            "restored": False, "metrics": {"train_time_s": 1.0}}


def _single_models(tables, splits, rng, family, costs: dict, acc, method):
    """A family's writer, its simulated per-model correctness per split, the test size n, and
    one row set per single model (every sample routed to it)."""
    correct = {s: sp.correct(rng, acc) for s, sp in splits.items()}
    w = _Writer(tables, splits, family, list(costs), costs.values(), correct)
    for k, name in enumerate(costs):        # on val too, as a run writes them
        for split, sp in splits.items():
            w.add(np.full(len(sp.u), k), split=split, method=method, variant=name)
    return w, correct, len(splits["test"].u)


def _experts_family(tables, splits, rng, trials) -> None:
    names = list(EXPERTS)
    w, correct, n = _single_models(tables, splits, rng, "experts", EXPERTS, EXPERT_ACC, "expert")
    for lam in GATER_LAMS:
        for tau in GATER_TAUS:
            for seed in SEEDS:
                t = _trial("experts", "gater", lam, tau, seed)
                meta = {"method": "gater", "trial_id": t["trial_id"], "seed": seed, "lam": lam,
                        "tau": tau}
                if (lam, tau, seed) == (FAILED["lam"], FAILED["tau"], FAILED["seed"]):
                    t.update(status="failed", error=FAILED["error"])
                    w.fail(**meta, error=FAILED["error"])
                    trials.append(t)
                    continue
                g = np.random.default_rng([seed, int(lam * 100), int(tau * 10)])
                for split, sp in splits.items():
                    keep = np.array([1.0, 0.9, 0.3, 0.1])[sp.severity]
                    p_sq = np.clip(1.9 * (1 - lam) + 0.02 * seed, 0, 1) * keep * (
                        1 + 0.05 * (tau - 1))
                    p_sq = np.where(correct[split][:, 0], np.minimum(1, p_sq * 1.2), p_sq * 0.4)
                    route = np.where(g.uniform(size=len(sp.u)) < p_sq, 0, 1)
                    route = np.where(g.uniform(size=len(sp.u)) < 0.01 * lam, 2, route)
                    w.add(route, split=split, cost=w.costs[route] + GATER_MS, **meta)
                trials.append(t)
    for seed in SEEDS:
        g = np.random.default_rng([seed, 7])
        w.add(g.integers(0, len(names), n), method="random", seed=seed)
    w.add(_oracle(correct["test"]), method="oracle")
    for split, thresholds in (("val", (0.3, 0.5, 0.8)), ("test", (0.5, 0.8))):
        conf = _scores(rng, correct[split][:, :1])[:, 0]
        for thr in thresholds:
            route = np.where(conf >= thr, 0, 1)
            cost = np.where(route == 0, EXPERTS["squeezenet"],
                            EXPERTS["squeezenet"] + EXPERTS["deit_s"])
            w.add(route, split=split, cost=cost, method="cascade", threshold=thr)


def _exits_family(tables, splits, rng, trials) -> None:
    names = list(EXITS)
    w, correct, n = _single_models(tables, splits, rng, "exits", EXITS, EXIT_ACC, "exit")
    for lam in EM_LAMS:
        for seed in SEEDS:
            t = _trial("exits", "em_router", lam, 1.0, seed)
            meta = {"method": "em_router", "trial_id": t["trial_id"], "seed": seed, "lam": lam,
                    "tau": 1.0}
            g = np.random.default_rng([seed, int(lam * 10), 3])
            for split, thresholds in (("val", (0.3,) + EM_THRESHOLDS), ("test", EM_THRESHOLDS)):
                scores = _scores(g, correct[split], 0.12 * lam)
                for thr in thresholds:
                    w.add(_first_over(scores, thr), split=split, threshold=thr, **meta)
            trials.append(t)
    for split, thresholds in (("val", (0.3, 0.45, 0.6)), ("test", (0.3, 0.6))):
        entropy = 1.0 - _scores(rng, correct[split])
        for thr in thresholds:
            w.add(_first_over(-entropy, -thr), split=split, method="branchynet", threshold=thr)
    for seed in SEEDS:
        g = np.random.default_rng([seed, 11])
        w.add(g.integers(0, len(names), n), method="random", variant="uniform", seed=seed)
    w.add(_oracle(correct["test"]), method="oracle")


def _manifest(config_name, fams, trials) -> dict:
    costs = {"experts": {k: {"latency_ms": v, "flops": int(v * 1e8), "source": "given"}
                         for k, v in EXPERTS.items()},
             "gater": {"latency_ms": GATER_MS, "flops": 3.1e7},
             "exits": {k: {"compute": v, "flops": int(v * 5.6e8)} for k, v in EXITS.items()},
             "exit_cost_mode": "flops", "latency_method": "perf_counter_ns, batch 1, median"}
    cfg = dataclasses.replace(Config(), name=config_name)
    manifest = {"routesweep_version": M.VERSION, "schema_version": M.SCHEMA_VERSION,
                "status": "running", "created": "2025-01-01T10:00:00",
                "config_name": config_name, "config": to_dict(cfg),
                "families": M.family_block([registry.get(f) for f in fams]),
                "versions": {"python": "3.11", "pandas": pd.__version__,
                             "numpy": np.__version__},
                "hardware": {"device": "cpu", "cpu": "Fake CPU", "cores": 2, "memory_gb": 8.0,
                             "gpu": None},
                "costs": costs,
                "dataset": {"name": "digits", "classes": [str(c) for c in range(6)],
                            "severities": list(SEVERITIES)},
                "timings": {"features_s": 12.5, "sweep_s": 240.0, "report_s": 3.0}}
    return M.finished(manifest, trials, when="2025-01-01T10:05:00")


def write_fake_results(directory, *, seed=0, families=("experts", "exits"),
                       config_name="fake-run", n_samples=40, n_val=30) -> Path:
    """Write a fake but contract-conform results directory and return its path."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 9])
    splits = {"val": _Split.draw(rng, n_val), "test": _Split.draw(rng, n_samples)}
    tables = Tables(severity={s: sp.severity for s, sp in splits.items()},
                    sample_id=splits["test"].sample_id, label=splits["test"].label)
    trials = []
    for family in families:
        build = _experts_family if family == "experts" else _exits_family
        build(tables, splits, np.random.default_rng([seed, 1 if family == "experts" else 2]),
              trials)
    write_tables(str(out), *tables.frames())
    write_json(str(out / "manifest.json"), _manifest(config_name, families, trials))
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


def as_schema_1(run: Path) -> Path:
    """The same results as a schema-1 run wrote them: no schema_version, no families."""
    manifest = json.loads((run / "manifest.json").read_text())
    for key in ("schema_version", "families"):
        manifest.pop(key)
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run
