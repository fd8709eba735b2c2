"""Train the `tiny` expert profile on the built-in digits and print what each expert is worth.

    python scripts/calibrate_tiny.py                         # the registry's tiny profile
    python scripts/calibrate_tiny.py --set deit.epochs=6 --set squeezenet.input_size=96
    python scripts/calibrate_tiny.py --levels '{"severe": {"blur": 2.0, "noise": 0.4}}'

Per expert: test accuracy per severity (clean / mild / moderate / severe; each corrupted copy
is blurred or noised by a seeded coin flip), batch-1 CPU latency (median, p10-p90), FLOPs
(2 per MAC) and wall-clock training time, all under `torch.set_num_threads(--threads)`.
Experts with `train_on_corrupted` train on the train split x every severity; the rest on clean.

Result with the registry's tiny profile (seed 0, splits seed 0, 2 threads of an idle 2-core
x86 VM; torch 2.14, timm 1.0.31). Base 48 px; levels = trainers.experts.TINY_DATA.

    expert      in   train   clean  mild   moder. severe  lat ms (p10-p90)  MFLOPs  train s
    squeezenet  48   clean   96.9%  90.8%  75.5%  48.5%   1.01 (1.00-1.15)   17.1   11.8
    mobilevit   32   c+corr  97.5%  97.8%  96.7%  90.0%   3.83 (3.77-3.96)   11.7   15.5
    deit        16   clean   96.7%  94.7%  76.0%  34.8%   2.13 (2.00-2.26)   14.4   17.1
    total training time 44.4 s. Expert seeds 1 and 2: SqueezeNet 95.5/97.5% clean -> 37.9/46.8%
    severe, MobileViT 90.0/92.8% severe, DeiT 95.8/94.2% clean.
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sweep.data.corruptions import SEVERITIES, expand_severities, reference_levels  # noqa: E402
from sweep.data.datasets import load_splits  # noqa: E402
from sweep.errors import UserError  # noqa: E402
from trainers.cost import count_flops, measure_latency_ms  # noqa: E402
from trainers.experts import (PROFILES, TINY_DATA, build_expert, expert_logits,  # noqa: E402
                              spec_from_dict, spec_to_dict, train_expert)

TINY_BASE_SIZE, TINY_LEVELS = TINY_DATA["image_size"], TINY_DATA["levels"]
TRAIN_CORRUPTION_SEED, TEST_CORRUPTION_SEED = 0, 2   # different pixels for train and test


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="tiny", choices=sorted(PROFILES))
    p.add_argument("--base-size", type=int, default=TINY_BASE_SIZE)
    p.add_argument("--levels", default=None, help="JSON {severity: {blur, noise}}; "
                   "'reference' = sweep.corruptions.reference_levels(base size)")
    p.add_argument("--set", action="append", default=[], metavar="EXPERT.FIELD=VALUE")
    p.add_argument("--only", default=None, help="comma-separated expert names")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="expert init/training seed")
    p.add_argument("--split-seed", type=int, default=0, help="load_splits seed")
    p.add_argument("--repeats", type=int, default=100, help="latency repeats")
    p.add_argument("--json", default=None, help="also write the table here")
    return p.parse_args(argv)


def resolve_specs(profile: str, overrides: list[str], only: str | None):
    """The profile's specs with 'name.field=value' overrides (values parsed as Python)."""
    specs = {s.name: s for s in PROFILES[profile]}
    for item in overrides:
        key, _, raw = item.partition("=")
        name, _, fld = key.partition(".")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        if name not in specs:
            raise SystemExit(f"--set {item}: no expert '{name}' in this profile ({list(specs)})")
        specs[name] = spec_from_dict({**spec_to_dict(specs[name]), fld: value})
    keep = only.split(",") if only else list(specs)
    return [specs[n] for n in keep]


def resolve_levels(arg: str | None, base_size: int) -> dict:
    if arg == "reference":
        return reference_levels(base_size)
    return json.loads(arg) if arg else TINY_LEVELS


def accuracy_per_severity(logits: np.ndarray, test: dict) -> dict[str, float]:
    correct = logits.argmax(1) == test["label"]
    return {sev: float(correct[test["severity"] == i].mean()) for i, sev in enumerate(SEVERITIES)}


def calibrate_one(spec, splits, train_all, test, seed, repeats) -> dict:
    """Build, train (timed), evaluate per severity, measure latency and FLOPs of one expert."""
    num_classes = len(splits["train"].class_names)
    src = train_all if spec.train_on_corrupted else {"images": splits["train"].images,
                                                     "label": splits["train"].labels}
    t0 = time.perf_counter()
    model = build_expert(spec, num_classes=num_classes, seed=seed)
    model = train_expert(model, spec, images=src["images"], labels=src["label"], seed=seed)
    train_s = time.perf_counter() - t0
    logits = expert_logits(model, images=test["images"], input_size=spec.input_size)
    shape = (1, 3, spec.input_size, spec.input_size)
    lat = measure_latency_ms(model, input_shape=shape, device="cpu", repeats=repeats)
    return dict(name=spec.name, arch=spec.arch, input_size=spec.input_size,
                train_on_corrupted=spec.train_on_corrupted, n_train=int(len(src["label"])),
                train_s=train_s, acc=accuracy_per_severity(logits, test),
                latency=lat, flops=count_flops(model, input_shape=shape),
                params=sum(p.numel() for p in model.parameters()))


def print_table(rows: list[dict], levels: dict, base_size: int) -> None:
    print(f"digits, base {base_size} px, levels {json.dumps(levels)}")
    print(f"{'expert':11s} {'in':>3s} {'train':>7s} " + " ".join(f"{s:>8s}" for s in SEVERITIES)
          + f" {'lat ms (p10-p90)':>20s} {'MFLOPs':>8s} {'params':>7s} {'train s':>7s}")
    for r in rows:
        lat, trained_on = r["latency"], "c+corr" if r["train_on_corrupted"] else "clean"
        print(f"{r['name']:11s} {r['input_size']:3d} {trained_on:>7s} "
              + " ".join(f"{100 * r['acc'][s]:7.1f}%" for s in SEVERITIES)
              + f" {lat['median_ms']:7.2f} ({lat['p10_ms']:.2f}-{lat['p90_ms']:.2f})"
              + f" {r['flops'] / 1e6:8.1f} {r['params'] / 1e3:6.0f}k {r['train_s']:7.1f}")
    print(f"total training time: {sum(r['train_s'] for r in rows):.1f} s "
          f"on {torch.get_num_threads()} threads")


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    specs = resolve_specs(args.profile, args.set, args.only)
    levels = resolve_levels(args.levels, args.base_size)
    splits, _ = load_splits("digits", image_size=args.base_size, seed=args.split_seed)
    tr, te = splits["train"], splits["test"]
    train_all = expand_severities(tr.images, tr.labels, severities=SEVERITIES, levels=levels,
                                  seed=TRAIN_CORRUPTION_SEED)
    test = expand_severities(te.images, te.labels, severities=SEVERITIES, levels=levels,
                             seed=TEST_CORRUPTION_SEED)
    rows = [calibrate_one(s, splits, train_all, test, args.seed, args.repeats) for s in specs]
    print_table(rows, levels, args.base_size)
    if args.json:
        Path(args.json).write_text(json.dumps(dict(levels=levels, base_size=args.base_size,
                                                   rows=rows), indent=1))


if __name__ == "__main__":
    try:
        main()
    except UserError as e:
        sys.exit(f"error: {e}")
