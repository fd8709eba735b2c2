"""Two runs sharing one cache directory: writers of the same part race, readers only ever see
complete parts, and a second run waits for the first one's build instead of building again."""
import multiprocessing as mp
import os
import subprocess
import sys
import time
import types

import numpy as np
import pandas as pd
import pytest

from sweep.config import load_config
from sweep.store import build as F
from sweep.store import io as store_io

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUNDS = 40
# many small files: removing / renaming a part takes a while, so a race has a window to hit
ARRAYS = {"train": {f"a{i}": np.arange(64, dtype=np.float32) * i for i in range(24)},
          "test": {"label": np.arange(10, dtype=np.int64)}}


def _writer(w, root, barrier, done):
    for j in range(ROUNDS):
        barrier.wait()
        store_io.save_part(os.path.join(root, f"experts-{j}"), ARRAYS, {"writer": w})
        with done.get_lock():
            done.value += 1


def _reader(root, barrier, done, errors):
    """Per round: poll the part while both writers write it. Once seen complete, it must stay
    complete and load to the expected arrays (a half-written or half-deleted part would not)."""
    for j in range(ROUNDS):
        barrier.wait()
        path, seen = os.path.join(root, f"experts-{j}"), False
        while True:
            finished = done.value >= 2 * (j + 1)
            complete = store_io.is_complete(path)
            if seen and not complete:
                errors.put(f"round {j}: a complete part stopped being complete")
            if complete:
                seen = True
                try:
                    arrays, meta = store_io.load_part(path)
                    ok = all(np.array_equal(arrays[s][k], v) for s, d in ARRAYS.items()
                             for k, v in d.items()) and meta["writer"] in (0, 1)
                except (OSError, ValueError, KeyError) as e:
                    ok, arrays = False, repr(e)
                if not ok:
                    errors.put(f"round {j}: read a broken part ({str(arrays)[:80]})")
            if finished:
                if not complete:
                    errors.put(f"round {j}: no complete part after both writers")
                break


@pytest.mark.slow
def test_racing_writers_never_expose_a_broken_part(tmp_path):
    ctx = mp.get_context("spawn")
    barrier, done, errors = ctx.Barrier(3), ctx.Value("i", 0), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(w, str(tmp_path), barrier, done))
             for w in (0, 1)]
    procs.append(ctx.Process(target=_reader, args=(str(tmp_path), barrier, done, errors)))
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert not found, f"{len(found)} bad reads, e.g. {found[:3]}"
    left = [n for n in os.listdir(tmp_path) if not n.startswith("experts-")
            and not n.endswith(".lock")]
    assert not left, left                      # the losing writer removed its copy
    assert all(store_io.is_complete(str(tmp_path / f"experts-{j}")) for j in range(ROUNDS))


def test_save_keeps_a_complete_part_and_replaces_an_incomplete_one(tmp_path):
    path = str(tmp_path / "experts-k")
    assert store_io.save_part(path, {"train": {"x": np.arange(3)}}, {"v": 1})
    assert not store_io.save_part(path, {"train": {"x": np.arange(3)}}, {"v": 2})
    assert store_io.load_part(path)[1] == {"v": 1}
    os.remove(os.path.join(path, "MANIFEST.json"))           # now incomplete: replaced
    assert store_io.save_part(path, {"train": {"x": np.arange(4)}}, {"v": 3})
    arrays, meta = store_io.load_part(path)
    assert meta == {"v": 3} and arrays["train"]["x"].tolist() == [0, 1, 2, 3]
    assert sorted(n for n in os.listdir(tmp_path) if not n.endswith(".lock")) == ["experts-k"]


# ----------------------------------------------------------------- build_store: build once

def _build(cache, log_path, q):
    """build_store with the frozen-model work replaced by a slow fake that logs each build
    and stamps its pid into the part (so two builds would give two different stores)."""
    def fake(cfg, expanded, *, ncls, device):
        with open(log_path, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(1.5)
        return {"train": {"x": np.full(4, os.getpid())}}, {"built_by": os.getpid()}
    F.expand_all = lambda cfg, splits: {}
    F.PARTS.update(experts=fake, exits=fake)
    cfg = load_config(None, [f"cache_dir={cache}"])
    lines = []
    splits = {"train": types.SimpleNamespace(num_classes=10)}    # only the class count is read
    store, info = F.build_store(cfg, splits, device="cpu", log=lines.append)
    q.put((store["meta"]["built_by"], store["train"]["x"].tolist(),
           [v["cache_hit"] for v in info.values()], lines))


@pytest.mark.slow
def test_two_runs_sharing_a_cache_build_each_part_once(tmp_path):
    ctx = mp.get_context("spawn")
    q, log = ctx.Queue(), str(tmp_path / "builds.log")
    procs = [ctx.Process(target=_build, args=(str(tmp_path / "cache"), log, q)) for _ in "ab"]
    for p in procs:
        p.start()
    got = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert len(open(log).read().split()) == 2          # experts + exits, once each (not 4)
    (pid_a, x_a, hits_a, lines_a), (pid_b, x_b, hits_b, lines_b) = got
    assert pid_a == pid_b and x_a == x_b == [pid_a] * 4    # one store, the builder's
    # each part: one run built it, the other found it complete (which run builds which part
    # is up to the scheduler: the loser of the first lock may win the second)
    assert [sorted(h) for h in zip(hits_a, hits_b)] == [[False, True], [False, True]]
    assert any("waiting" in line for line in lines_a + lines_b)


# ----------------------------------------------------------------- two CLI runs at once

@pytest.mark.slow
def test_two_smoke_runs_sharing_a_cold_cache_at_once(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT}
    procs = []
    for name in "ab":
        cmd = [sys.executable, "-m", "sweep.run", "--smoke-test", "--no-report",
               "--out", str(tmp_path / name), "--set", f"cache_dir={tmp_path / 'cache'}",
               "--set", "sweep.tune_verbose=0"]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(tmp_path / f"{name}.log", "w"),
                                      stderr=subprocess.STDOUT))
    for name, p in zip("ab", procs):
        assert p.wait(timeout=900) == 0, open(tmp_path / f"{name}.log").read()[-3000:]
    key = ["point_id", "severity"]
    a, b = (pd.read_parquet(tmp_path / n / "points.parquet").sort_values(key)
            .reset_index(drop=True).drop(columns=["trial_id"]) for n in "ab")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    logs = [open(tmp_path / f"{n}.log").read() for n in "ab"]
    assert sum(log.count("[features] building") for log in logs) == 2      # each part once
