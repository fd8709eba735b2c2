"""report.html carries plotly.js and the figures compressed (analysis/embed.py): the rounding
by hand, the round trip, and on a fake run a page under 3 MB that still holds every point.
(That the browser draws it: tests/test_analysis_browser.py.)"""
import base64
import math

import numpy as np
import pytest

from analysis import load
from analysis.embed import DIGITS, _round, figures_in, pack, unpack
from analysis.report import build_html
from analysis.tables import build_tables
from tests.fake_results import write_fake_results

MB = 1_000_000


def test_round_floats_and_binary_arrays_by_hand():
    assert DIGITS == 5
    raw = np.array([1.23456789, 0.000123456789, math.nan, 12345.678])
    spec = {"x": {"dtype": "f8", "bdata": base64.b64encode(raw.tobytes()).decode()},
            "y": [0.123456789, 2, "a"], "z": {"w": 7.0 / 3}, "s": "0.123456789", "t": True}
    assert _round(spec) == {"x": [1.2346, 0.00012346, None, 12346.0],
                            "y": [0.12346, 2, "a"], "z": {"w": 2.3333},
                            "s": "0.123456789", "t": True}
    shaped = {"dtype": "i1", "bdata": base64.b64encode(bytes([1, 2, 3, 4])).decode(),
              "shape": "2, 2"}
    assert _round(shaped) == [[1, 2], [3, 4]]


def test_pack_is_a_deterministic_round_trip():
    text = "plotly ✓ " * 1000
    assert unpack(pack(text)) == text and pack(text) == pack(text)
    assert len(pack(text)) < len(text) / 10


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = write_fake_results(tmp_path_factory.mktemp("embed") / "run")
    return load(out)


def test_the_page_is_small_and_keeps_every_point(run):
    page, _ = build_html(build_tables(run))
    assert len(page.encode("utf-8")) <= 3 * MB
    drawn = set()
    for spec in figures_in(page):
        for trace in spec["data"]:
            if trace.get("type") == "scatter" and isinstance(trace.get("x"), list):
                drawn |= {(x, y) for x, y in zip(trace["x"], trace["y"])
                          if isinstance(x, float) and isinstance(y, float)}
    points = run["points"]
    points = points[(points["split"] == "test") & (points["status"] == "ok")]
    key = lambda v: float(f"{v:.{DIGITS}g}")  # noqa: E731
    missing = [(r.method, r.severity, r.seed) for r in points.itertuples()
               if (key(r.cost), key(r.accuracy)) not in drawn]
    assert not missing, missing[:5]


def test_a_long_table_shows_its_head_and_folds_every_row():
    import pandas as pd
    from analysis.embed import HEAD_ROWS, folded_in
    from analysis.report import _Figures
    page = _Figures()
    frame = pd.DataFrame({"Configuration": [f"c{i}" for i in range(40)],
                          "Acc (%)": [f"{i}.00" for i in range(40)]})
    shown = page.table(frame)
    assert shown.count("<tr>") == HEAD_ROWS + 1 and "all 40 rows" in shown   # + the header
    assert "c9" in shown and "c10" not in shown
    [full] = folded_in(page.scripts())
    assert full.count("<tr>") == 41 and "c39" in full
    short = page.table(frame.head(HEAD_ROWS + 5))          # short enough: no fold
    assert "<details" not in short and short.count("<tr>") == HEAD_ROWS + 6


def test_ties_merge_into_their_first_row():
    import pandas as pd
    from analysis.markup import merge_ties
    frame = pd.DataFrame({"Severity": ["overall"] * 4, "Configuration": ["a", "b", "c", "d"],
                          "Acc (%)": ["1", "2", "1", "1"], "Cost": ["x", "y", "x", "z"]})
    out = merge_ties(frame)
    assert out["Configuration"].tolist() == ["a (+1 tied)", "b", "d"]
    assert out["Cost"].tolist() == ["x", "y", "z"]
    routing = pd.DataFrame({"λ": ["0.5", "0.6", "0.7"], "τ": ["1", "2", "1"],
                            "Acc (%)": ["1", "1", "2"], "Lat (ms)": ["1", "1", "2"]})
    assert merge_ties(routing)["λ"].tolist() == ["0.5 (+1 tied)", "0.7"]   # λ, τ name rows
    assert merge_ties(routing)["τ"].tolist() == ["1", "1"]
