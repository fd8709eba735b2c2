"""`python -m sweep.run`: config -> data -> feature store -> Ray Tune -> Parquet -> report.

    python -m sweep.run                                  # embedded digits default, both families
    python -m sweep.run --smoke-test                     # tiny grid, 1 epoch (tests run this)
    python -m sweep.run --verbose                        # + Tune's tables (default: one line)
    python -m sweep.run --config configs/paper_gater_intel.yaml --set data.root=/data/intel
    python -m sweep.run --address auto --out s3-mounted/run1
    python -m sweep.run --resume results/run1            # after a crash: finish what is unfinished

Exit codes: 0 complete; 2 bad input (one line on stderr, before any compute, nothing written);
3 partial: the run finished but some trials failed (their rows in points.parquet have status
"failed" and the error; manifest status "partial"); 130 interrupted (Ctrl-C; the run is
resumable); 1 any other error.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys

from sweep import console
from sweep.config import load_config, preflight
from sweep.errors import UserError
from sweep.fs import check_storage
from sweep.results.outdir import check_out

SMOKE = ["gater.lams=[0.5,1.0]", "gater.taus=[1.0]", "gater.seeds=[0]", "gater.epochs=1",
         "exits.lams=[0.0,2.0]", "exits.taus=[1.0]", "exits.seeds=[0]", "exits.em_iters=1",
         "exits.router_epochs=1", "exits.epochs=1", "exits.head_epochs=2",
         "experts.max_epochs=1", "experts.latency_repeats=5"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m sweep.run", description=__doc__.splitlines()[0],
        epilog="exit codes: 0 complete, 2 bad input, 3 partial (some trials failed: rows with "
               "status 'failed' in points.parquet, manifest status 'partial'), 130 "
               "interrupted, 1 other errors")
    p.add_argument("--config", help="YAML config (defaults: the embedded digits run)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set gater.lams=[0.7,1.0] (repeatable)")
    p.add_argument("--out", help="results directory (default results/<timestamp>)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out that holds a routesweep run (anything else is "
                        "refused); the new run is built beside it, in OUT.new-<time>, and "
                        "replaces it only once complete")
    p.add_argument("--address", help="Ray cluster address (else RAY_ADDRESS, else local)")
    p.add_argument("--smoke-test", action="store_true", help="tiny grid, 1 epoch")
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    p.add_argument("--verbose", action="store_true",
                   help="Tune's status tables and each trial's config and result, the Ray "
                        "workers' output and Ray's notices (default: one live line of the "
                        "trials); the console only, not the config")
    p.add_argument("--resume", metavar="RESULTS_DIR",
                   help="finish an interrupted run: re-run only unfinished / errored trials. "
                        "TRUSTS RESULTS_DIR: Ray Tune unpickles (runs as code) files of its "
                        "experiment; they are checked against RESULTS_DIR/tune-sha256.json, "
                        "which the run kept current, and a mismatch is refused (exit 2)")
    p.add_argument("--features-on", choices=("auto", "driver", "cluster"), default="auto",
                   help="where the feature store is built: Ray tasks on the cluster (auto: "
                        "when sweep.gpus_per_trial > 0 and the cluster has GPUs) or the driver")
    return p.parse_args(argv)


def resolve_out(args) -> str:
    """--out (default results/<timestamp>), checked before any compute
    (sweep/results/outdir.py)."""
    out = args.out or os.path.join("results", dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
    check_out(out, args.overwrite)
    return out


def _fail(e: UserError) -> int:
    print(f"routesweep: error: {e}", file=sys.stderr)
    return 2


def _given_config(args):
    """The config from --config / --smoke-test / --set, or None when none of them is given."""
    sets = (SMOKE if args.smoke_test else []) + args.set
    if args.resume and not (args.config or sets):
        return None
    return load_config(args.config, sets)


def _interrupted(e: KeyboardInterrupt) -> int:
    """Ctrl-C: one line (what stopped, where the run is), exit 130."""
    what = " ".join(str(e).split()) or "interrupted"
    notes = [n.removeprefix("routesweep: ") for n in getattr(e, "__notes__", [])]
    print("routesweep: " + "; ".join([what] + notes), file=sys.stderr)
    return 130


def _outcome(manifest: dict) -> int:
    """0 for a complete run; 3, with one line on stderr, for a partial one."""
    if manifest.get("status") == "complete":
        return 0
    failed = [t for t in manifest.get("trials", []) if t.get("status") != "ok"]
    print(f"routesweep: partial run: {len(failed)} of {len(manifest.get('trials', []))} "
          f"trials failed (rows with status 'failed' and the error in points.parquet); "
          f"exit code 3", file=sys.stderr)
    return 3


def _resume(args) -> int:
    if args.out or args.overwrite:
        return _fail(UserError("--resume writes into RESULTS_DIR; drop --out / --overwrite"))
    from sweep.resume import resume_run        # heavy (Ray, torch, the report): needed from here
    try:
        manifest = resume_run(args.resume, given=_given_config(args), address=args.address,
                              report=not args.no_report)
    except UserError as e:
        return _fail(e)
    except KeyboardInterrupt as e:
        return _interrupted(e)
    return _outcome(manifest)


def main(argv=None) -> int:
    args = parse_args(argv)
    console.set_verbose(args.verbose)
    if args.resume:
        return _resume(args)
    try:
        cfg = _given_config(args)
        out = resolve_out(args)
        check_storage(cfg.sweep.storage_path)
        preflight(cfg)
    except UserError as e:
        return _fail(e)
    from sweep.pipeline import run_pipeline    # heavy (Ray, the report): the input is checked
    try:
        manifest = run_pipeline(cfg, out=out, overwrite=args.overwrite, address=args.address,
                                report=not args.no_report, features_on=args.features_on)
    except UserError as e:
        return _fail(e)
    except KeyboardInterrupt as e:
        return _interrupted(e)
    return _outcome(manifest)


if __name__ == "__main__":
    sys.exit(main())
