"""`python -m sweep.run`: config -> data -> feature store -> Ray Tune -> Parquet -> report.

    python -m sweep.run                                  # embedded digits default, both families
    python -m sweep.run --smoke-test                     # tiny grid, 1 epoch (tests run this)
    python -m sweep.run --config configs/paper_gater_intel.yaml --set data.root=/data/intel
    python -m sweep.run --address auto --out s3-mounted/run1

Bad input -> one line on stderr, exit code 2, before any compute and without writing.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time

from sweep.errors import UserError

SMOKE = ["gater.lams=[0.5,1.0]", "gater.taus=[1.0]", "gater.seeds=[0]", "gater.epochs=1",
         "exits.lams=[0.0,2.0]", "exits.taus=[1.0]", "exits.seeds=[0]", "exits.em_iters=1",
         "exits.router_epochs=1", "exits.epochs=1", "exits.head_epochs=2",
         "experts.max_epochs=1", "experts.latency_repeats=5"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m sweep.run", description=__doc__.splitlines()[0])
    p.add_argument("--config", help="YAML config (defaults: the embedded digits run)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set gater.lams=[0.7,1.0] (repeatable)")
    p.add_argument("--out", help="results directory (default results/<timestamp>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--address", help="Ray cluster address (else RAY_ADDRESS, else local)")
    p.add_argument("--smoke-test", action="store_true", help="tiny grid, 1 epoch")
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    return p.parse_args(argv)


def resolve_out(args) -> str:
    out = args.out or os.path.join("results", dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out '{out}' exists and is not a directory")
    if os.path.isdir(out) and os.listdir(out) and not args.overwrite:
        raise UserError(f"--out '{out}' already exists; choose another --out or pass --overwrite")
    parent = os.path.dirname(os.path.abspath(out))
    probe = parent
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.access(probe, os.W_OK):
        raise UserError(f"cannot write results under '{probe}'; choose a writable --out")
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        from sweep.config import load_config
        cfg = load_config(args.config, (SMOKE if args.smoke_test else []) + args.set)
        out = resolve_out(args)
        from sweep.validate import preflight
        preflight(cfg)
    except UserError as e:
        print(f"routesweep: error: {e}", file=sys.stderr)
        return 2
    from sweep.pipeline import run_pipeline
    try:
        run_pipeline(cfg, out=out, overwrite=args.overwrite, address=args.address,
                     report=not args.no_report)
    except UserError as e:
        print(f"routesweep: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
