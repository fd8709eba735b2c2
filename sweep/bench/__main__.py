"""`python -m sweep.bench`: how fast routesweep is, each comparison in ONE run on ONE machine.

    python -m sweep.bench                          # everything; default grid (~10 min, 2 cores)
    python -m sweep.bench --profile paper --out results/bench_gpu.json      # on a GPU machine
    python -m sweep.bench --sections 1,3 --grid smoke --run-dir results/RUN
    python -m sweep.bench --smoke-test             # seconds-sized version (tests run this)

1. cached vs Algorithm 1 gater training, paper shape and tiny profile (sweep/bench/gater.py)
2. orchestration: slot busy fraction and Ray's per-trial overhead (sweep/bench/orchestration.py)
3. store sharing: memory N concurrent trials add on one node (sweep/bench/orchestration.py)
4. feature building: caching pass vs raw inference; a run's phases (sweep/bench/features.py)
5. routed inference at batch 1, CUDA graphs, trials packed per GPU (sweep/bench/routed.py)
6. search: hypervolume against trials for grid, frontier (replicated / one seed) and optuna
   (sweep/bench/search.py; needs Ray and optuna; plot in FILE-search.html)

Machines are noisy: every number is a median over repeats, comparisons are ratios of runs
interleaved on the same machine, and the JSON names the machine (`device`). Writes FILE (JSON:
`cached_vs_algorithm1_speedup`, `slot_busy_fraction`, `device` at the top) and FILE.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata as metadata
import importlib.util
import os
import platform
import sys
import time
import traceback

import psutil
import torch

from sweep.bench import features as bench_features
from sweep.bench import gater as bench_gater
from sweep.bench import routed as bench_routed
from sweep.fs import write_atomic, write_json
from sweep.results.manifest import cpu_model

SECTIONS = {1: "cached_vs_algorithm1", 2: "orchestration", 3: "store_sharing",
            4: "feature_building", 5: "routed_inference", 6: "search"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m sweep.bench", description=__doc__.splitlines()[0])
    p.add_argument("--profile", choices=("tiny", "paper"), default=None,
                   help="expert zoo for sections 4-5 (default: paper on a GPU, tiny on CPU); "
                        "section 1 always measures both")
    p.add_argument("--out", help="JSON file (default results/bench-<timestamp>.json)")
    p.add_argument("--grid", choices=("default", "smoke"), default="default",
                   help="section 2: the default run's grid on its real store, or the smoke grid")
    p.add_argument("--run-dir", help="a finished run's results dir: section 4 reads its phases")
    p.add_argument("--sections", default="1,2,3,4,5,6", help="comma-separated subset of 1-6")
    p.add_argument("--store-mb", type=float, default=256.0, help="section 3's store size")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads in this process (default on CPU: 1, a trial's CPUs)")
    p.add_argument("--smoke-test", action="store_true", help="tiny sizes, smoke grid (< 1 min)")
    args = p.parse_args(argv)
    raw = args.sections
    try:
        args.sections = sorted({int(x) for x in raw.split(",") if x.strip()})
    except ValueError:
        args.sections = []
    if not args.sections or not set(args.sections) <= set(SECTIONS):
        p.error(f"--sections must be a comma-separated subset of 1-6, got {raw!r}")
    return args


# ---------------------------------------------------------------- the machine
def describe_machine(device: str) -> dict:
    m = {"cpu": cpu_model(), "cores": os.cpu_count(),
         "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
         "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
         "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
         "platform": platform.platform(), "python": platform.python_version(),
         "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    try:
        m["ray"] = metadata.version("ray")
    except metadata.PackageNotFoundError:
        m["ray"] = None
    gpu = f"GPU {m['gpu']}" if m["gpu"] else "no GPU"
    m["text"] = (f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; {gpu}; torch "
                 f"{m['torch']} ({m['torch_threads']} thread(s) in the driver); {m['platform']}")
    return m


# ---------------------------------------------------------------- sections
def _has_ray() -> bool:
    return importlib.util.find_spec("ray") is not None


def _orchestration():
    """Sections 2-3 (sweep/bench/orchestration.py) reach Ray through the Ray layer; imported
    only when they run: Ray is heavy and may be missing where the GPU sections run."""
    from sweep.bench import orchestration
    return orchestration


def _run_section(k: int, args, device: str, profile: str, log):
    smoke = args.smoke_test
    if k in (2, 3, 6) and not _has_ray():
        return {"skipped": "ray is not installed on this machine (sections 2-3, 6 need it)"}
    if k == 6:
        if importlib.util.find_spec("optuna") is None:
            return {"skipped": "optuna is not installed (pip install optuna)"}
        from sweep.bench import search as bench_search   # runs whole sweeps: loaded when used
        return bench_search.run(smoke=smoke, log=log)
    if k == 1:
        return bench_gater.run(smoke=smoke, device=device, log=log)
    if k == 2:
        return _orchestration().orchestration("smoke" if smoke else args.grid, log=log)
    if k == 3:
        return _orchestration().store_sharing(store_mb=16 if smoke else args.store_mb,
                                              ns=(1, 2) if smoke else (1, 2, 4), log=log)
    if k == 4:
        return bench_features.run(profile, device=device, smoke=smoke, run_dir=args.run_dir,
                                  log=log)
    return bench_routed.run(profile, device=device, smoke=smoke, log=log)


def _get(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def headline(sections: dict) -> dict:
    """The top-level numbers (None where the section did not run)."""
    s = sections
    return {
        "cached_vs_algorithm1_speedup": _get(s, "cached_vs_algorithm1", "paper", "speedup"),
        "cached_vs_algorithm1_flop_ratio": _get(s, "cached_vs_algorithm1", "paper",
                                                "flop_ratio"),
        "cached_vs_algorithm1_trunk_only_bound": _get(s, "cached_vs_algorithm1", "paper",
                                                      "trunk_only_bound"),
        "cached_vs_algorithm1_speedup_bf16": _get(s, "cached_vs_algorithm1", "paper", "bf16",
                                                  "speedup"),
        "cached_vs_algorithm1_speedup_tiny": _get(s, "cached_vs_algorithm1", "tiny", "speedup"),
        "frozen_trunk_vs_algorithm1_speedup": _get(s, "cached_vs_algorithm1", "paper", "frozen",
                                                   "speedup"),
        "slot_busy_fraction": _get(s, "orchestration", "slot_busy_fraction"),
        "ray_overhead_s_per_trial": _get(s, "orchestration", "overhead_s_per_trial"),
        "store_added_per_trial_fraction": _get(s, "store_sharing", "max_uss_added_fraction"),
        "caching_pass_efficiency": _get(s, "feature_building", "caching_pass", "efficiency"),
        "gater_share_of_cheapest_expert": _get(s, "routed_inference", "eager",
                                               "gater_share_of_cheapest_expert"),
        "gater_share_of_cheapest_expert_cuda_graphs": _get(
            s, "routed_inference", "cuda_graphs", "gater_share_of_cheapest_expert"),
        "packing_4_per_gpu_vs_1": next((r["vs_one"] for r in _get(
            s, "routed_inference", "packing", "rows") or [] if r["k"] == 4), None),
        "gpu_available": _get(s, "routed_inference", "available"),
        "frontier_test_gap_to_full_grid": _get(s, "search", "frontier_test_gap_to_full_grid")}


# ---------------------------------------------------------------- the table
def _f(x, fmt):
    return "n/a" if x is None else format(x, fmt)


def _met(x, ok):
    return "n/a" if x is None else ("yes" if ok(x) else "**no**")


def _rows_1(s) -> list:
    """Section 1: per shape, the fp32 pair and the bf16 pair, each path's samples/s with its
    achieved GFLOP/s. No target: the paper shape's ">= 100x" was withdrawn (issue 15)."""
    def speed(r, path, fmt):                    # "samples/s (GFLOP/s)" of one timed path
        return (f"{_f(_get(r, path, 'samples_per_s'), fmt)} "
                f"({_f(_get(r, 'achieved_gflops', path), '.1f')} GFLOP/s)")

    out = []
    for shape in ("paper", "tiny"):
        r = _get(s, "cached_vs_algorithm1", shape) or {}
        sp, fr, tb = r.get("speedup"), r.get("flop_ratio"), r.get("trunk_only_bound")
        out.append((f"1. cached vs Algorithm 1, {shape} shape (samples/s "
                    f"{speed(r, 'cached', '.0f')} vs {speed(r, 'algorithm1', '.1f')}; "
                    f"FLOP ratio {_f(fr, '.0f')}x; the trunk alone, any head: "
                    f"{_f(tb, '.0f')}x, {_f(_get(r, 'achieved_gflops', 'trunk_only'), '.1f')} "
                    f"GFLOP/s)", _f(sp, ".1f") + "x", "-", "-"))
        b = r.get("bf16") or {}
        out.append((f"1. the same with `gater.precision: bf16` (experts autocast too), {shape} "
                    f"shape (samples/s {speed(b, 'cached', '.0f')} vs "
                    f"{speed(b, 'algorithm1', '.1f')}; cached "
                    f"{_f(b.get('cached_vs_fp32_cached'), '.2f')}x the fp32 one)",
                    _f(b.get("speedup"), ".1f") + "x", "-", "-"))
        if r.get("frozen"):
            out.append(_row_frozen(shape, r["frozen"]))
    return out


def _row_frozen(shape: str, f: dict) -> tuple:
    """`gater.trunk: frozen` against Algorithm 1 (target at the paper shape: >= 140x)."""
    sp, mem = f.get("speedup"), f.get("bytes_per_sample") or {}
    return (f"1. `gater.trunk: frozen` ({f.get('cache_dtype', '?')} activations cached), "
            f"{shape} shape (samples/s {_f(f.get('samples_per_s'), '.0f')} "
            f"({_f(f.get('achieved_gflops'), '.1f')} GFLOP/s); "
            f"{_f(f.get('vs_cached'), '.2f')}x the cached trainer; FLOP ratio "
            f"{_f(f.get('flop_ratio'), '.0f')}x; memory per sample {_f(mem.get('frozen'), ',')}"
            f" B vs {_f(mem.get('trained'), ',')} B, {_f(f.get('memory_vs_cached'), '.1f')}x)",
            _f(sp, ".1f") + "x", ">= 140x" if shape == "paper" else "-",
            _met(sp, lambda v: v >= 140) if shape == "paper" else "-")


def _rows_2_3(s) -> list:
    o, st = s.get("orchestration") or {}, s.get("store_sharing") or {}
    busy, noop = o.get("slot_busy_fraction"), _get(o, "noop", "overhead_s_per_trial")
    grid = (f"{o['trials']} trials, {o['slots']} slots, wall {o['wall_s']:.0f} s"
            if o else "not run")
    add = st.get("max_uss_added_fraction")
    return [(f"2. slot busy fraction, {o.get('grid', '?')} grid ({grid})", _f(busy, ".1%"),
             ">= 90 %", _met(busy, lambda v: v >= 0.9)),
            ("2. Ray overhead per trial (slot time not in trials; no-op trials)",
             f"{_f(o.get('overhead_s_per_trial'), '.2f')} s; {_f(noop, '.2f')} s", "-", "-"),
            (f"3. memory an extra trial adds reading the store (USS; store "
             f"{_f(st.get('store_mb'), '.0f')} MB; copying control "
             f"{_f(st.get('copy_control_uss_added_fraction'), '.0%')})", _f(add, ".1%"),
             "<= 10 %", _met(add, lambda v: v <= 0.1))]


def _rows_4_5(s) -> list:
    fb, ro = s.get("feature_building") or {}, s.get("routed_inference") or {}
    cp, ph = fb.get("caching_pass") or {}, _get(fb, "run_phases", "phases_s") or {}
    eff, e = cp.get("efficiency"), ro.get("eager") or {}
    g = ro.get("cuda_graphs") or {}
    pack = {r["k"]: r for r in _get(ro, "packing", "rows") or []}
    share = g.get("gater_share_of_cheapest_expert", e.get("gater_share_of_cheapest_expert"))
    rows = [(f"4. caching pass vs raw inference ({cp.get('profile', '?')}, "
             f"{_f(cp.get('caching_images_per_s'), '.0f')} vs "
             f"{_f(cp.get('raw_images_per_s'), '.0f')} img/s)", _f(eff, ".0%"), ">= 80 %",
             _met(eff, lambda v: v >= 0.8)),
            ("4. run phases (s)", ", ".join(f"{k} {v:.3g}" for k, v in ph.items()) or "n/a",
             "-", "-"),
            (f"5. gater / cheapest expert at batch 1 ({'CUDA graphs' if g else 'eager'}, "
             f"{e.get('gater_ms', 0):.3f} ms eager)", _f(share, ".0%"), "< 10 % (GPU)",
             _met(share, lambda v: v < 0.1) if ro.get("available") else "n/a (no GPU)"),
            ("5. routed inference real / accounted T_gater + C_i (mean ms)",
             _f(e.get("real_over_accounted"), ".2f") + "x", "-", "-")]
    four = pack.get(4)
    rows.append(("5. 4 gater trials per GPU vs 1 (trials/hour)",
                 _f(four["vs_one"], ".2f") + "x" if four else "n/a (no GPU)", ">= 3x",
                 _met(four["vs_one"], lambda v: v >= 3) if four else "n/a"))
    return rows


def _rows_6(s) -> list:
    r = s.get("search") or {}
    if not r.get("final"):
        return []
    f, gap, d = r["final"], r.get("frontier_test_gap_to_full_grid"), \
        r.get("frontier_minus_optuna_test_at_budget")
    rows = [(f"6. {k}: normalised HV of val-chosen points, val / test ({n} trials"
             f"{', mean of search seeds ' + str(r['search_seeds']) if k != 'grid' else ''})",
             f"{_f(v['val'], '.4f')} / {_f(v['test'], '.4f')}", "-", "-")
            for k, v, n in ((k, v, r["grid_trials"] if k == "grid" else
                             r["frontier_trials"] if k == "frontier" else
                             (r.get("other_searches") or {}).get(k, {}).get("trials",
                                                                            r["budget"]))
                            for k, v in f.items())]
    rows += [(f"6. frontier vs the full grid, test HV ({r['frontier_trials']} of "
              f"{r['grid_trials']} trials)", _f(gap, ".2%") + " below",
              "<= 0.5 % with <= 50 % of the trials",
              _met(gap, lambda v: r["targets_met"]["within_0.5pct_of_grid_with_half_its_trials"])),
             (f"6. frontier minus optuna, test HV at {r['budget']} trials", _f(d, "+.4f"), "> 0",
              _met(d, lambda v: v > 0))]
    for k, o in (r.get("other_searches") or {}).items():
        rows.append((f"6. {k} vs the full grid, test HV ({o['trials']} trials); minus optuna at "
                     f"{r['budget']}", f"{_f(o['test_gap_to_full_grid'], '.2%')} below; "
                     f"{_f(o['minus_optuna_test_at_budget'], '+.4f')}", "-", "-"))
    pairs = r.get("grid_seed_pairs") or {}
    if pairs.get("test_hv"):
        shown = ", ".join(f"{k}: {v:.4f}" for k, v in pairs["test_hv"].items())
        rows.append((f"6. the metric's noise: the full grid's test HV on each pair of its seeds "
                     f"({shown}), spread / full", _f(pairs.get("spread_of_full"), ".2%"),
                     "-", "-"))
    return rows


def markdown(result: dict) -> str:
    s = result["sections"]
    head = (f"Machine: {result['device']}  \nDate: {result['created']}; "
            f"`python -m sweep.bench {' '.join(result['argv'])}`".rstrip() + "\n\n")
    lines = ["| measurement | value | target | met |", "|---|---|---|---|"]
    ran = {k for k, name in SECTIONS.items() if name in s or name in result["errors"]}
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in
              _rows_1(s) + _rows_2_3(s) + _rows_4_5(s) + _rows_6(s)
              if int(a.split(".")[0]) in ran]
    errs = "".join(f"\nsection {k} failed: {v.splitlines()[-1]}\n"
                   for k, v in result["errors"].items())
    return head + "\n".join(lines) + "\n" + errs


# ---------------------------------------------------------------- main
def default_out() -> str:
    return os.path.join("results", dt.datetime.now().strftime("bench-%Y%m%d-%H%M%S.json"))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.threads or device == "cpu":
        torch.set_num_threads(args.threads or 1)
    profile = args.profile or ("paper" if device == "cuda" else "tiny")
    out = args.out or default_out()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    log = lambda msg: print(msg, flush=True)
    machine = describe_machine(device)
    result = {"device": machine["text"], "machine": machine, "argv": argv, "profile": profile,
              "created": dt.datetime.now().isoformat(timespec="seconds"), "sections": {},
              "errors": {}, "seconds": {}}
    try:
        for k in args.sections:
            t0 = time.perf_counter()
            try:
                result["sections"][SECTIONS[k]] = _run_section(k, args, device, profile, log)
            except Exception:                           # keep the other sections' numbers
                result["errors"][SECTIONS[k]] = traceback.format_exc(limit=8)
                log(f"[bench] section {k} failed:\n{result['errors'][SECTIONS[k]]}")
            result["seconds"][SECTIONS[k]] = time.perf_counter() - t0
    finally:
        if "ray" in sys.modules:
            _orchestration().shutdown()
    return _write(result, out, log)


def _write(result: dict, out: str, log) -> int:
    for k, v in (result["sections"].get("routed_inference") or {}).items():
        if k.endswith("_error"):  # a failed part of section 5 (graphs, packing): exit 1 too
            result["errors"][f"routed_inference.{k.removesuffix('_error')}"] = v
    result.update(headline(result["sections"]))
    write_json(out, result)
    md = markdown(result)
    md_path = os.path.splitext(out)[0] + ".md"

    def w(p):
        with open(p, "w") as f:
            f.write(md)
    write_atomic(md_path, w)
    if (result["sections"].get("search") or {}).get("curves"):
        from sweep.bench.search import figure
        html = os.path.splitext(out)[0] + "-search.html"
        figure(result["sections"]["search"]).write_html(html, include_plotlyjs=True)
        log(f"[bench] wrote {html}")
    log("\n" + md + f"\n[bench] wrote {out} and {md_path}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
