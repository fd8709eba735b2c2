"""sweep.results.tables: decisions -> points / routes / decisions rows, hand-counted on tiny
splits (2-6 samples), and the point_id format. Fast: no store, no Ray, no training."""
import numpy as np
import pandas as pd
import pytest

from sweep.results.tables import POINT_COLUMNS, Tables, point_id, write_tables


def test_point_id_format():
    assert point_id(family="experts", method="gater", seed=0, lam=0.7, tau=1.0,
                    split="test") == "experts/gater/-/s0/lam0.7/tau1/test"
    # variant named, threshold as 'th', every None left out, :g keeps 0.25 and 1e-05 short
    assert point_id(family="exits", method="branchynet", variant="v", seed=3, threshold=0.25,
                    split="val") == "exits/branchynet/v/s3/th0.25/val"
    assert point_id(family="f", method="m", seed=1, lam=1e-5, split="s") == "f/m/-/s1/lam1e-05/s"
    # lam 0 is a value, not None: kept
    assert point_id(family="f", method="m", seed=0, lam=0.0, tau=2.5, threshold=0.5,
                    split="s") == "f/m/-/s0/lam0/tau2.5/th0.5/s"


def _tables():
    """test split: 6 samples, severities clean, clean, severe, severe, severe, clean;
    val: 2 samples, clean only. Sample ids 10..15, labels 0..5."""
    sev = {"test": np.array([0, 0, 3, 3, 3, 0], np.int8), "val": np.array([0, 0], np.int8)}
    return Tables(severity=sev, sample_id=np.arange(10, 16), label=np.arange(6))


META = {"family": "experts", "method": "gater", "seed": 2, "lam": 0.5, "tau": 1.0,
        "trial_id": "t", "cost_unit": "ms"}


def _add_test(t, **meta):
    # targets 0 1 1 0 0 1 over 2 names; correct 1 0 1 1 0 0; cost 1 2 3 4 5 6
    t.add(meta={**META, **meta}, split="test", target=[0, 1, 1, 0, 0, 1],
          correct=[1, 0, 1, 1, 0, 0], cost=[1, 2, 3, 4, 5, 6], target_names=["a", "b"])


def test_add_points_per_severity_and_all():
    t = _tables()
    _add_test(t)
    points, _, _ = t.frames()
    pid = "experts/gater/-/s2/lam0.5/tau1/test"
    assert points["point_id"].tolist() == [pid] * 3
    # 'all' first, then the levels in SEVERITIES order, only those present (no mild, moderate)
    assert points["severity"].tolist() == ["all", "clean", "severe"]
    assert points["n"].tolist() == [6, 3, 3]
    # clean = samples 0,1,5: correct 1,0,0 cost 1,2,6; severe = 2,3,4: correct 1,1,0 cost 3,4,5
    assert points["accuracy"].tolist() == pytest.approx([0.5, 1 / 3, 2 / 3])
    assert points["cost"].tolist() == pytest.approx([3.5, 3.0, 4.0])
    row = points.iloc[0]
    assert (row["family"], row["method"], row["seed"], row["lam"], row["tau"]) == (
        "experts", "gater", 2, 0.5, 1.0)
    assert (row["split"], row["status"], row["trial_id"], row["cost_unit"]) == (
        "test", "ok", "t", "ms")
    assert row["variant"] is None and np.isnan(row["threshold"]) and row["error"] is None


def test_add_meta_overrides_defaults_but_not_split():
    t = _tables()
    t.add(meta={**META, "variant": "v", "threshold": 0.3, "status": "odd", "split": "val"},
          split="test", target=[0] * 6, correct=[1] * 6, cost=[1] * 6, target_names=["a"])
    points, _, _ = t.frames()
    row = points.iloc[0]
    assert (row["variant"], row["threshold"], row["status"], row["split"]) == (
        "v", 0.3, "odd", "test")
    assert row["point_id"] == "experts/gater/v/s2/lam0.5/tau1/th0.3/test"


def test_add_route_shares():
    t = _tables()
    _add_test(t)
    _, routes, _ = t.frames()
    assert routes.columns.tolist() == ["point_id", "severity", "target", "fraction"]
    got = {(r.severity, r.target): r.fraction for r in routes.itertuples()}
    # all: targets 0 1 1 0 0 1 -> a 3/6, b 3/6; clean (0,1,5): 0 1 1; severe (2,3,4): 1 0 0
    assert got == pytest.approx({("all", "a"): .5, ("all", "b"): .5,
                                 ("clean", "a"): 1 / 3, ("clean", "b"): 2 / 3,
                                 ("severe", "a"): 2 / 3, ("severe", "b"): 1 / 3})
    assert list(got)[:2] == [("all", "a"), ("all", "b")]
    assert set(routes["point_id"]) == {"experts/gater/-/s2/lam0.5/tau1/test"}


def test_add_one_sample_split_and_int_costs():
    # one sample: its route is the whole share (1 / 1, not halved); integer costs become floats
    t = Tables(severity={"test": np.array([2], np.int8)}, sample_id=np.array([7]),
               label=np.array([1]))
    t.add(meta=META, split="test", target=[1], correct=[True], cost=[3],
          target_names=["a", "b"])
    points, routes, dec = t.frames()
    assert points["severity"].tolist() == ["all", "moderate"] and points["n"].tolist() == [1, 1]
    assert routes["fraction"].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert dec["cost"].dtype == np.float64 and dec["cost"].tolist() == [3.0]


def test_add_unused_target_gets_zero_share():
    t = _tables()
    t.add(meta=META, split="val", target=[1, 1], correct=[1, 0], cost=[2.0, 4.0],
          target_names=["a", "b", "c"])
    points, routes, dec = t.frames()
    assert routes["target"].tolist() == ["a", "b", "c"] * 2        # all, clean
    assert routes["fraction"].tolist() == [0.0, 1.0, 0.0] * 2
    assert points["accuracy"].tolist() == [0.5, 0.5] and points["cost"].tolist() == [3.0, 3.0]
    assert points["point_id"].tolist() == ["experts/gater/-/s2/lam0.5/tau1/val"] * 2
    assert len(dec) == 0  # decisions are kept for the test split only


def test_add_test_split_keeps_decisions():
    t = _tables()
    _add_test(t)
    _, _, dec = t.frames()
    assert dec.columns.tolist() == ["point_id", "sample_id", "severity", "label", "target",
                                    "correct", "cost"]
    assert dec["sample_id"].tolist() == [10, 11, 12, 13, 14, 15]
    assert dec["label"].tolist() == [0, 1, 2, 3, 4, 5]
    assert dec["severity"].tolist() == ["clean", "clean", "severe", "severe", "severe", "clean"]
    assert dec["target"].tolist() == ["a", "b", "b", "a", "a", "b"]
    assert dec["correct"].dtype == bool
    assert dec["correct"].tolist() == [True, False, True, True, False, False]
    assert dec["cost"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert set(dec["point_id"]) == {"experts/gater/-/s2/lam0.5/tau1/test"}
    # two points: both sets of decisions, stacked with a fresh index
    _add_test(t, seed=3)
    _, _, dec = t.frames()
    assert len(dec) == 12 and dec.index.tolist() == list(range(12))


def test_add_failed_row():
    t = _tables()
    t.add_failed(meta={**META, "error": "boom"})
    points, routes, dec = t.frames()
    assert len(points) == 1 and routes.empty and dec.empty
    row = points.iloc[0]
    assert row["point_id"] == "experts/gater/-/s2/lam0.5/tau1/test"
    assert (row["split"], row["severity"], row["n"], row["status"], row["error"]) == (
        "test", "all", 0, "failed", "boom")
    assert np.isnan(row["accuracy"]) and np.isnan(row["cost"])
    assert row["variant"] is None and np.isnan(row["threshold"])
    assert points.columns.tolist() == POINT_COLUMNS      # no other keys than the contract's
    # the meta's variant / threshold win over the defaults
    t = _tables()
    t.add_failed(meta={**META, "variant": "v", "threshold": 0.4})
    row = t.frames()[0].iloc[0]
    assert (row["variant"], row["threshold"]) == ("v", 0.4)
    assert row["point_id"] == "experts/gater/v/s2/lam0.5/tau1/th0.4/test"


def test_frames_columns_and_dtypes():
    t = _tables()
    _add_test(t, extra="x")
    points, _, _ = t.frames()
    # the contract's columns in order, then the extra meta keys
    assert points.columns.tolist() == POINT_COLUMNS + ["extra"]
    assert str(points["seed"].dtype) == "int64" and str(points["n"].dtype) == "int64"
    for c in ("lam", "tau", "threshold", "accuracy", "cost"):
        assert str(points[c].dtype) == "float64", c


def test_frames_empty():
    points, routes, dec = _tables().frames()
    assert points.columns.tolist() == POINT_COLUMNS and len(points) == 0
    assert str(points["seed"].dtype) == "int64" and str(points["lam"].dtype) == "float64"
    assert routes.columns.tolist() == ["point_id", "severity", "target", "fraction"]
    assert dec.columns.tolist() == ["point_id", "sample_id", "severity", "label", "target",
                                    "correct", "cost"]
    assert routes.empty and dec.empty


def test_write_tables_round_trip(tmp_path):
    t = _tables()
    _add_test(t)
    frames = t.frames()
    write_tables(str(tmp_path), *frames)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "decisions.parquet", "points.parquet", "routes.parquet"]
    for name, df in zip(("points", "routes", "decisions"), frames):
        back = pd.read_parquet(tmp_path / f"{name}.parquet")
        assert back.columns.tolist() == df.columns.tolist(), name  # index=False: no extra column
        assert len(back) == len(df)
    back = pd.read_parquet(tmp_path / "points.parquet")
    assert back["accuracy"].tolist() == pytest.approx([0.5, 1 / 3, 2 / 3])
    # a filtered frame's index is not written: read back, rows are numbered from 0
    points = frames[0]
    write_tables(str(tmp_path), points[points["severity"] != "all"], *frames[1:])
    back = pd.read_parquet(tmp_path / "points.parquet")
    assert back.index.tolist() == [0, 1] and back.columns.tolist() == points.columns.tolist()
