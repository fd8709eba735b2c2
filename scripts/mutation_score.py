"""Mutation score per module, from a finished `mutmut run` (README "Mutation testing").

    mutmut run --max-children 2          # ~30 min on 2 cores; resumable, writes mutants/
    python scripts/mutation_score.py     # the table below; --survivors lists what lived

score = killed / (mutants - equivalent): a mutant "killed" made a test fail (timeouts and
crashes count as killed, as in mutmut). Survivors and mutants no test reaches count against
the score. Equivalent mutants (same behaviour as the original: no test can kill them) are
listed in scripts/mutation_equivalents.txt, one per line with its reason, and don't count.
Exit 1 when a module is below --min (default 90 %).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EQUIVALENTS = os.path.join(ROOT, "scripts", "mutation_equivalents.txt")
KILLED = {1, 3, 24, -24, 36, 37, 152, 255, -11, -9}      # mutmut's killed/timeout/crash codes


def equivalents(path: str = EQUIVALENTS) -> dict[str, str]:
    """name -> reason, from lines `name  # reason` (a missing reason is an error)."""
    out = {}
    for n, line in enumerate(open(path, encoding="utf-8") if os.path.exists(path) else [], 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, reason = line.partition("#")
        if not sep or not reason.strip():
            raise SystemExit(f"{path}:{n}: an equivalent mutant needs '# reason'")
        out[name.strip()] = reason.strip()
    return out


def results(mutants_dir: str) -> dict[str, dict[str, int | None]]:
    """module path -> {mutant name: exit code}, from mutmut's .meta files."""
    out = {}
    for meta in sorted(glob.glob(os.path.join(mutants_dir, "**", "*.py.meta"), recursive=True)):
        module = os.path.relpath(meta, mutants_dir)[:-len(".meta")]
        out[module] = json.load(open(meta))["exit_code_by_key"]
    return out


def score(codes: dict[str, int | None], equiv: dict[str, str]) -> Counter:
    """Counts of killed / survived / equivalent / unchecked mutants of one module."""
    c = Counter()
    for name, code in codes.items():
        c["equivalent" if name in equiv else "unchecked" if code is None
          else "killed" if code in KILLED else "survived"] += 1
    return c


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mutants", default=os.path.join(ROOT, "mutants"))
    p.add_argument("--min", type=float, default=90.0, help="the lowest score that passes (%%)")
    p.add_argument("--survivors", action="store_true", help="list the surviving mutants")
    args = p.parse_args(argv)
    equiv, by_module = equivalents(), results(args.mutants)
    if not by_module:
        print(f"no mutmut results under {args.mutants}: run `mutmut run` first", file=sys.stderr)
        return 2
    print("| module | mutants | equivalent | killed | survived | score |")
    print("|---|---:|---:|---:|---:|---:|")
    low, total = [], Counter()
    for module, codes in by_module.items():
        c = score(codes, equiv)
        total += c
        counted = c["killed"] + c["survived"]
        pct = 100.0 * c["killed"] / counted if counted else float("nan")
        low += [module] if not pct >= args.min or c["unchecked"] else []
        note = f" ({c['unchecked']} not run yet)" if c["unchecked"] else ""
        print(f"| {module} | {len(codes)} | {c['equivalent']} | {c['killed']} | "
              f"{c['survived']} | {pct:.1f} %{note} |")
    counted = total["killed"] + total["survived"]
    print(f"| **all** | {sum(total.values())} | {total['equivalent']} | {total['killed']} | "
          f"{total['survived']} | {100.0 * total['killed'] / max(counted, 1):.1f} % |")
    if args.survivors:
        for codes in by_module.values():
            for name, code in codes.items():
                if name not in equiv and code is not None and code not in KILLED:
                    print(name)
    unknown = set(equiv) - {n for codes in by_module.values() for n in codes}
    if unknown:
        print(f"note: {len(unknown)} listed equivalents are not mutants any more "
              f"(the code moved): {sorted(unknown)[:5]}", file=sys.stderr)
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())
