"""Numerical faults, atomic writes under SIGKILL, and safe loading."""
import json
import multiprocessing as mp
import os
import signal
import time

import numpy as np
import pandas as pd
import pytest
import torch

import sweep.tuning.trials as T
import sweep.tuning.tuner as TT
from sweep.families import gater
from sweep.results import tables as results
from sweep.store import io as store_io
from tests.fake_run import fake_tune
from trainers import gater as G


def test_nan_loss_raises_not_a_silent_number():
    gin = torch.zeros(8, 16, 16, 3, dtype=torch.uint8)
    logits = torch.full((8, 2, 3), float("nan"))
    data = G.GaterData(gin, logits, torch.zeros(8, dtype=torch.long))
    gater = G.Gater(2, embed_dim=8)
    opt = torch.optim.Adam(gater.parameters())
    with pytest.raises(FloatingPointError, match="non-finite"):
        G.train_epoch(gater, opt, data, costs=torch.tensor([1.0, 2.0]), lam=0.5, tau=1.0,
                      generator=torch.Generator().manual_seed(0))


class _Session:
    """What a family's trial function gets from the Ray layer, kept in memory."""
    device = "cpu"

    def __init__(self):
        self.reports = []

    def restore(self):
        return None

    def report(self, metrics, state=None, arrays=None):
        self.reports.append(metrics)


def test_nan_trial_reports_failed_with_reason():
    """The gater trial ends a NaN trial as status failed with the reason (no retry)."""
    n = 40
    split = {"gater_input": np.zeros((n, 16, 16, 3), np.uint8), "label": np.zeros(n, np.int64),
             "expert_logits": np.full((n, 2, 3), np.nan, np.float32)}
    settings = {"expert_ms": [1.0, 2.0], "gater_ms": 0.1, "embed_dim": 8, "lr": 1e-3,
                "epochs": 2, "batch_size": 8, "ce_scale": 3.0, "eval_route": "argmax"}
    session = _Session()
    gater.trial({"family": "experts", "lam": 0.5, "tau": 1.0, "seed": 0}, settings,
                {"train": split, "val": split, "test": split}, session)
    last = session.reports[-1]
    assert last["status"] == "failed" and "non-finite" in last["error"]


def test_trial_restored_from_its_final_checkpoint_reports_its_metrics_again(monkeypatch):
    """A trial that finished before Tune recorded it (driver or node died) is restored from
    its final checkpoint: it re-reports that checkpoint's metrics and does not train again."""
    reports, ckpts = fake_tune(monkeypatch)
    n = 40
    split = {"gater_input": np.zeros((n, 16, 16, 3), np.uint8), "label": np.zeros(n, np.int64),
             "expert_logits": np.random.default_rng(0).normal(size=(n, 2, 3)).astype(np.float32)}
    settings = {"expert_ms": [1.0, 2.0], "gater_ms": 0.1, "embed_dim": 8, "lr": 1e-3,
                "epochs": 1, "batch_size": 8, "ce_scale": 3.0, "eval_route": "argmax"}
    config = {"point": {"family": "experts", "lam": 0.5, "tau": 1.0, "seed": 0},
              "settings": {"experts": settings}}
    trials = {"experts": gater.trial}
    T.router_trial(config, {"train": split, "val": split, "test": split}, trials)
    final = reports[-1]
    monkeypatch.setattr(TT.tune, "get_checkpoint", lambda: ckpts[-1])
    monkeypatch.setattr(TT, "_router_trial", lambda *a: pytest.fail("trained again"))
    TT.router_trial(config, {}, trials)
    again = reports[-1]
    assert again["finished_before_restore"] == 1
    assert {k: again[k] for k in final} == final and "train_time_s" in again


def test_failed_trial_keeps_its_row():
    t = results.Tables(severity={"test": np.zeros(2, np.int8)}, sample_id=np.arange(2),
                       label=np.zeros(2, np.int64))
    t.add_failed(meta={"family": "experts", "method": "gater", "seed": 0, "lam": 0.5, "tau": 1.0,
                       "trial_id": "x", "cost_unit": "ms", "error": "non-finite gater loss"})
    points, _, _ = t.frames()
    row = points.iloc[0]
    assert row.status == "failed" and np.isnan(row.accuracy) and "non-finite" in row.error


def _slow_part_writer(path):
    save = store_io.np.save

    def slow_save(*a, **k):          # ~10 s in all: the kill lands mid-write
        time.sleep(0.25)
        save(*a, **k)
    store_io.np.save = slow_save
    big = {"train": {f"a{i}": np.ones((64, 64), np.float32) for i in range(40)}}
    store_io.save_part(path, big, {"v": 2})


def _slow_file_writer(path):
    def w(tmp):
        with open(tmp, "w") as f:
            for _ in range(10_000):
                f.write("new " * 1000)
                f.flush()
                time.sleep(0.001)
    results.write_atomic(path, w)


def _kill_mid_write(target, path, watch_dir):
    ctx = mp.get_context("spawn")
    p = ctx.Process(target=target, args=(str(path),))
    p.start()
    deadline = time.time() + 60
    while time.time() < deadline and not any(n.startswith(".tmp-") for n in os.listdir(watch_dir)):
        time.sleep(0.005)
    time.sleep(0.5)
    assert p.is_alive(), "the writer finished before it could be killed"
    os.kill(p.pid, signal.SIGKILL)
    p.join()


@pytest.mark.slow
def test_killed_store_writer_leaves_previous_part_intact(tmp_path):
    path = tmp_path / "experts-abc"
    store_io.save_part(str(path), {"train": {"x": np.arange(5)}}, {"v": 1})
    _kill_mid_write(_slow_part_writer, path, tmp_path)
    assert store_io.is_complete(str(path))
    arrays, meta = store_io.load_part(str(path))
    assert meta == {"v": 1} and np.array_equal(arrays["train"]["x"], np.arange(5))
    # the half-written temporary directory is never taken for a complete part
    for name in os.listdir(tmp_path):
        if name.startswith(".tmp-"):
            assert not store_io.is_complete(str(tmp_path / name))


@pytest.mark.slow
def test_killed_table_writer_leaves_previous_file_intact(tmp_path):
    path = tmp_path / "points.parquet"
    pd.DataFrame({"a": [1, 2]}).to_parquet(path)
    _kill_mid_write(_slow_file_writer, path, tmp_path)
    assert pd.read_parquet(path)["a"].tolist() == [1, 2]


def test_checkpoints_load_without_pickle(tmp_path, monkeypatch):
    """A trial checkpoint holding a pickled object is refused, never executed."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    torch.save({"model": Evil()}, ckpt / "state.pt")
    monkeypatch.setattr(T.tune, "get_checkpoint",
                        lambda: T.tune.Checkpoint.from_directory(str(ckpt)))
    with pytest.raises(Exception, match="(?i)weights_only|unpickl|unsupported"):
        T.Session({}).restore()
    assert not marker.exists()
