"""Bench section 6: the hypervolume each search reaches against its number of trials.

Three searches of the gater family (the EM router off), each a real sweep through
`sweep.pipeline.run_pipeline` on the default data (the smoke data with --smoke-test) into a
temporary directory, report off:

* `grid`: the configured grid (λ x τ x seed), in grid order, all N of its trials;
* `frontier`: `sweep.search: frontier` with B = N // 2 trials, search seeds 0, 1, 2 (`SEEDS`:
  the seed its exploring trials train with);
* `frontier_one_seed`: the same with `sweep.replicate: false` (every configuration on one
  seed, as Optuna's trials are: single trained models, not seed means);
* `optuna`: `sweep.search: optuna` with the same B, sampler seeds 0, 1, 2.

After the first k trials of a run (in the order Tune created them), the score is the
normalised hypervolume (against the costliest expert and accuracy 0) of the configurations
chosen on val: the val Pareto set of the seed means of those k trials, scored on val and on
their test means. A curve per search (frontier, optuna: the mean over the search seeds) and a
plot
(`FILE-search.html`, FILE being the bench's JSON).

Targets (issue 14): frontier's test hypervolume within 0.5 % of the full grid's with at most
half its trials, and above optuna's at the same budget. The metric's own noise beside them: the
full grid's test hypervolume scored on each pair of its three seeds (`seed_pairs`).
"""
from __future__ import annotations

import itertools
import json
import os
import tempfile

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.frontier import SINGLE_METHODS, pareto_mask
from analysis.scores import normalised_hypervolume
from sweep.config import load_config

SEEDS = (0, 1, 2)
# the searches at the budget besides the grid: name -> their config keys
SEARCHES = {"frontier": ["sweep.search=frontier"],
            "frontier_one_seed": ["sweep.search=frontier", "sweep.replicate=false"],
            "optuna": ["sweep.search=optuna"]}
SMOKE = ["gater.lams=[0.5,0.75,1.0]", "gater.taus=[1.0]", "gater.seeds=[0,1]",
         "gater.epochs=1", "experts.max_epochs=1", "experts.latency_repeats=5"]


def _configs(smoke: bool) -> tuple:
    """(grid config, its trial count, the searches' budget)."""
    base = ["exits.enabled=false", "name=bench_search"] + (SMOKE if smoke else [])
    grid = load_config(None, base)
    n = len(grid.gater.lams) * len(grid.gater.taus) * len(grid.gater.seeds)
    return base, n, max(len(grid.gater.taus) * len(grid.gater.seeds), n // 2)


def _run(sets: list, out: str) -> str:
    from sweep.pipeline import run_pipeline        # heavy: Ray, the report (bench loads lazily)
    run_pipeline(load_config(None, sets), out=out, report=False)
    return out


def _load(run_dir: str) -> tuple:
    """(the gater's ok rows on the whole test / val set, the costliest single model's cost,
    the ok trials in the order Tune created them)."""
    points = pd.read_parquet(os.path.join(run_dir, "points.parquet"))
    trials = [t["trial_id"] for t in json.load(open(os.path.join(run_dir, "manifest.json")))
              ["trials"] if t["status"] == "ok"]
    ok = points[(points["status"] == "ok") & (points["severity"] == "all")]
    ref = ok.loc[ok["method"].isin(SINGLE_METHODS), "cost"].max()
    return ok[ok["method"] == "gater"], ref, trials


def _score(rows: pd.DataFrame, ref: float) -> tuple:
    """(val HV, test HV) of the val-chosen configurations of these rows (seed means)."""
    val, test = (rows[rows["split"] == s].groupby(["lam", "tau"])[["cost", "accuracy"]].mean()
                 for s in ("val", "test"))
    chosen = val[pareto_mask(cost=val["cost"], accuracy=val["accuracy"])]
    test = test.reindex(chosen.index).dropna()
    return tuple(normalised_hypervolume(cost=f["cost"], accuracy=f["accuracy"], ref_cost=ref)
                 for f in (chosen, test))


def curve(run_dir: str) -> dict:
    """{"val": [HV after k trials], "test": [...]} of one run (module doc)."""
    routers, ref, trials = _load(run_dir)
    scores = [_score(routers[routers["trial_id"].isin(trials[:k])], ref)
              for k in range(1, len(trials) + 1)]
    return {"val": [v for v, _ in scores], "test": [t for _, t in scores]}


def seed_pairs(run_dir: str) -> dict:
    """The metric's own noise: the test HV of the full grid scored on each pair of its seeds
    ({"0+1": HV, ...}): how far the same grid moves when one training seed is left out."""
    routers, ref, _ = _load(run_dir)
    seeds = sorted(routers["seed"].dropna().unique())
    return {f"{a:g}+{b:g}": _score(routers[routers["seed"].isin([a, b])], ref)[1]
            for a, b in itertools.combinations(seeds, 2)}


def _mean(curves: list) -> dict:
    """The mean curve of a search's runs, each padded with its last value to the longest (a
    search that stopped early keeps what it found); "trials": each run's own count."""
    n = max(len(c["test"]) for c in curves)
    pad = lambda v: list(v) + [v[-1]] * (n - len(v)) if v else [np.nan] * n   # noqa: E731
    return {**{k: np.mean([pad(c[k]) for c in curves], axis=0).tolist() for k in ("val", "test")},
            "trials": [len(c["test"]) for c in curves]}


def run(*, smoke: bool, log=print) -> dict:
    base, n, budget = _configs(smoke)
    searches = {"grid": [base]} | {
        name: [base + [f"sweep.max_trials={budget}", f"sweep.search_seed={s}", *sets]
               for s in SEEDS] for name, sets in SEARCHES.items()}
    curves = {}
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        for name, runs in searches.items():
            got = []
            for i, sets in enumerate(runs):
                log(f"[bench] search: {name} run {i + 1}/{len(runs)}")
                got.append(curve(_run(sets, os.path.join(tmp, f"{name}-{i}"))))
            curves[name] = {"mean": _mean(got), "runs": got}
            if name == "grid":
                pairs = seed_pairs(os.path.join(tmp, "grid-0"))
    out = summarise(curves, n=n, budget=budget)
    full = out["final"]["grid"]["test"]
    out["grid_seed_pairs"] = {"test_hv": pairs, "spread_of_full": (
        (max(pairs.values()) - min(pairs.values())) / full if pairs and full else None)}
    return out


def _trials(mean: dict) -> int:
    """The most trials a run of the search ran (hand-made curves: the curve's length)."""
    return max(mean.get("trials") or [len(mean["test"])])


def summarise(curves: dict, *, n: int, budget: int) -> dict:
    """The section's numbers from the curves: final val / test HV per search, frontier vs the
    full grid and vs optuna at the budget, and whether the targets are met."""
    final = {k: {s: v["mean"][s][-1] if v["mean"][s] else None for s in ("val", "test")}
             for k, v in curves.items()}
    grid_test, front_test = final["grid"]["test"], final["frontier"]["test"]
    at_b = lambda k: curves[k]["mean"]["test"][min(budget, len(curves[k]["mean"]["test"])) - 1]  # noqa: E731
    gap = (grid_test - front_test) / grid_test if grid_test else None
    used = _trials(curves["frontier"]["mean"])
    others = {k: {"trials": _trials(v["mean"]),
                  "test_gap_to_full_grid": (grid_test - final[k]["test"]) / grid_test
                  if grid_test else None, "minus_optuna_test_at_budget": at_b(k) - at_b("optuna")}
              for k, v in curves.items() if k not in ("grid", "frontier", "optuna")}
    return {"grid_trials": n, "budget": budget, "search_seeds": list(SEEDS), "final": final,
            "frontier_trials": used, "frontier_test_gap_to_full_grid": gap,
            "frontier_minus_optuna_test_at_budget": at_b("frontier") - at_b("optuna"),
            "other_searches": others,
            "targets_met": {"within_0.5pct_of_grid_with_half_its_trials":
                            gap is not None and gap <= 0.005 and used <= n / 2,
                            "beats_optuna_at_equal_budget": at_b("frontier") > at_b("optuna")},
            "curves": {k: {s: v["mean"][s] for s in ("val", "test")} for k, v in curves.items()}}


def figure(section: dict):
    """Plotly: HV on val (dashed) and test (solid) against trials, one colour per search."""
    colors = {"grid": "#4D4D4D", "frontier": "#0072B2", "frontier_one_seed": "#56B4E9",
              "optuna": "#E69F00"}
    fig = go.Figure()
    for name, c in section["curves"].items():
        for split, dash in (("test", "solid"), ("val", "dash")):
            fig.add_trace(go.Scatter(x=list(range(1, len(c[split]) + 1)), y=c[split],
                                     name=f"{name} ({split})", mode="lines",
                                     line=dict(color=colors.get(name), dash=dash)))
    fig.update_layout(template="plotly_white", xaxis_title="trials",
                      yaxis_title="normalised hypervolume (val-chosen points)",
                      title="Hypervolume reached against trials (frontier, optuna: mean of 3 seeds)")
    return fig
