"""Soak the failure paths: N smoke sweeps, each losing one Ray worker mid-trial, vs a reference.

    nice -n 10 python scripts/soak.py                    # N=20, max_failures=2
    python scripts/soak.py --n 3 --set exits.em_iters=6  # extra --set go to every run

One unfailed reference run (`python -m sweep.run --smoke-test` plus SETS), then N runs with
`--set sweep.max_failures=MAX_FAILURES`. In each, after a random delay, ONE Ray worker process
that is running a trial (its title is `ray::ImplicitFunc.train`; only processes descended from
that run's own driver) is SIGKILLed. Tune retries the trial from its last checkpoint (epoch or
EM round). Every run must exit 0 with manifest status "complete" and a points.parquet equal to
the reference's (trial ids aside: they are random per experiment). SETS default to 3 gater
epochs and 3 EM rounds (the smoke test has 1 each), so most kills land after a checkpoint.

Prints one line per run and the count, e.g. "20/20 identical, kills landed mid-trial in 19 runs
(12 resumed from a checkpoint)"; exit 0 when all N are identical and complete. Not a test (CI
does not run it): ~1-3 min per run on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pandas as pd
import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETS = ["gater.epochs=3", "exits.em_iters=3", "exits.em_tol=0"]
TRIAL_TITLE = "ray::ImplicitFunc.train"       # a Tune function trial executing (setproctitle)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20, help="runs with a worker kill (default 20)")
    p.add_argument("--max-failures", type=int, default=2, help="sweep.max_failures (>= 1)")
    p.add_argument("--max-delay", type=float, default=20.0,
                   help="kill after U(0, this) s from the first trial start (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seeds the kill times and victims")
    p.add_argument("--set", action="append", default=None,
                   help=f"key=value for every run (default: {' '.join(SETS)})")
    p.add_argument("--workdir", help="where runs go (default: a temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep every run's directory")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per killed run")
    p.add_argument("--ref-timeout", type=float, default=7200,
                   help="seconds for the reference run (it builds the feature store cold)")
    return p.parse_args(argv)


def start(out: str, cache: str, sets: list[str], log: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "sweep.run", "--smoke-test", "--no-report", "--out", out,
           "--set", f"cache_dir={cache}", "--set", "sweep.tune_verbose=0"]
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def trial_workers(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The driver's descendants that are executing a trial right now."""
    out = []
    for q in procs:
        try:
            if q.is_running() and " ".join(q.cmdline()).startswith(TRIAL_TITLE):
                out.append(q)
        except psutil.Error:
            pass
    return out


def kill_one_mid_trial(p: subprocess.Popen, rng: random.Random, max_delay: float, seen: dict):
    """Wait for a trial to run, wait U(0, max_delay) s, SIGKILL one worker that is running a
    trial then. -> seconds after the first trial started, or None if the run ended first."""
    t0 = None
    while p.poll() is None:
        procs = descendants(p.pid)
        seen.update({q.pid: q for q in procs})
        if t0 is None and trial_workers(procs):
            t0, delay = time.monotonic(), rng.uniform(0.0, max_delay)
        if t0 is not None and time.monotonic() - t0 >= delay:
            busy = trial_workers(procs)
            if busy:
                victim = rng.choice(busy)
                try:
                    victim.send_signal(signal.SIGKILL)
                    return time.monotonic() - t0
                except psutil.Error:
                    pass
        time.sleep(0.05)
    return None


def finish(p: subprocess.Popen, timeout: float, seen: dict) -> int:
    """Wait for the run; then end any process of ITS tree that outlived it (by PID)."""
    try:
        rc = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        seen.update({q.pid: q for q in descendants(p.pid)})
        p.kill()
        rc = p.wait()
    time.sleep(1.0)
    for q in seen.values():
        try:
            if q.is_running():
                q.kill()
        except psutil.Error:
            pass
    return rc


def points(out: str) -> pd.DataFrame:
    df = pd.read_parquet(os.path.join(out, "points.parquet"))
    return df.sort_values(["point_id", "severity"]).reset_index(drop=True).drop(
        columns=["trial_id"])


def manifest(out: str) -> dict:
    try:
        with open(os.path.join(out, "manifest.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def run_once(work: str, name: str, cache: str, sets: list[str], timeout: float,
             kill=None) -> dict:
    out, seen = os.path.join(work, name), {}
    t = time.monotonic()
    p = start(out, cache, sets, out + ".log")
    killed_at = kill(p, seen) if kill else None
    rc = finish(p, timeout, seen)
    m = manifest(out)
    trials = m.get("trials", [])
    return {"out": out, "rc": rc, "status": m.get("status"), "killed_at": killed_at,
            "restored": sum(bool(x.get("restored")) for x in trials),
            "failed": sum(x.get("status") != "ok" for x in trials), "wall": time.monotonic() - t}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.n < 1 or args.max_failures < 1:
        print("soak: --n and --max-failures must be >= 1", file=sys.stderr)
        return 2
    sets = SETS if args.set is None else args.set
    work = args.workdir or tempfile.mkdtemp(prefix="routesweep-soak-")
    os.makedirs(work, exist_ok=True)
    cache = os.path.join(work, "cache")
    rng = random.Random(args.seed)
    print(f"soak: {args.n} runs in {work}; --smoke-test {' '.join(sets)}, "
          f"max_failures={args.max_failures}", flush=True)
    ref = run_once(work, "reference", cache, sets, args.ref_timeout)
    if ref["rc"] != 0 or ref["status"] != "complete":
        print(f"soak: the reference run failed (rc {ref['rc']}, status {ref['status']}); "
              f"see {ref['out']}.log", file=sys.stderr)
        return 1
    want = points(ref["out"])
    print(f"reference: {len(want)} point rows, {ref['wall']:.0f} s", flush=True)
    identical = landed = resumed = 0
    for i in range(args.n):
        kill = lambda p, seen: kill_one_mid_trial(p, rng, args.max_delay, seen)
        r = run_once(work, f"run{i:02d}", cache, sets + [f"sweep.max_failures={args.max_failures}"],
                     args.timeout, kill=kill)
        same = False
        if r["rc"] == 0 and r["status"] == "complete":
            try:
                pd.testing.assert_frame_equal(want, points(r["out"]), check_exact=True)
                same = True
            except (AssertionError, OSError, ValueError) as e:
                print(f"  run{i:02d}: points differ: {str(e).splitlines()[0]}")
        identical += same
        landed += r["killed_at"] is not None
        resumed += r["killed_at"] is not None and r["restored"] > 0
        when = "no kill (ended first)" if r["killed_at"] is None else \
            f"killed a trial worker {r['killed_at']:.1f} s after the first trial started"
        print(f"run{i:02d}: rc {r['rc']}, {r['status']}, {'identical' if same else 'DIFFERENT'}, "
              f"{when}, {r['restored']} trial(s) resumed from a checkpoint, {r['failed']} failed, "
              f"{r['wall']:.0f} s", flush=True)
        if same and not args.keep:
            shutil.rmtree(r["out"], ignore_errors=True)
    print(f"{identical}/{args.n} identical, kills landed mid-trial in {landed} runs "
          f"({resumed} resumed from a checkpoint)", flush=True)
    if not args.keep and identical == args.n and not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if identical == args.n else 1


if __name__ == "__main__":
    sys.exit(main())
