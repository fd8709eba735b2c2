"""analysis/m_step.py: paper vs weighted M-step, chosen on val per (λ, budget), shown on test."""
import numpy as np
import pandas as pd
import pytest

from analysis.m_step import TITLE, m_step_markdown, m_step_table, m_step_text

# (variant, threshold, split, accuracy, cost); λ = 1, τ = 1, severity all.
# weighted thr .7 is best on val within 0.5 but has no test row: it cannot be chosen.
ROWS = [(None, .5, "val", .80, .40), (None, .5, "test", .78, .41),
        (None, .9, "val", .90, .90), (None, .9, "test", .88, .90),
        ("weighted", .5, "val", .85, .45), ("weighted", .5, "test", .83, .44),
        ("weighted", .7, "val", .87, .48),
        ("weighted", .9, "val", .91, .95), ("weighted", .9, "test", .90, .94)]


def agg(rows=ROWS, lam=1.0):
    out = pd.DataFrame([{"family": "exits", "method": "em_router", "variant": v, "lam": lam,
                         "tau": 1.0, "threshold": th, "split": sp, "severity": "all",
                         "accuracy": a, "cost": c} for v, th, sp, a, c in rows])
    out["setting_id"] = [f"{v}|{lam}|{th}" for v, th in zip(out["variant"], out["threshold"])]
    out["label"] = [f"em_router {v or ''} thr={th}" for v, th in
                    zip(out["variant"], out["threshold"])]
    return out.astype({"variant": object}).where(out.notna(), None)


def test_m_step_table_by_hand():
    t = m_step_table(agg(), budgets=(0.25, 0.5, 1.0))
    assert t["budget"].tolist() == [0.25, 0.5, 1.0] and set(t["lam"]) == {1.0}
    assert t.loc[0, ["paper_accuracy", "weighted_accuracy"]].isna().all()    # nothing fits
    np.testing.assert_allclose(t.loc[1, ["paper_accuracy", "paper_cost", "weighted_accuracy",
                                         "weighted_cost"]].astype(float), [.78, .41, .83, .44])
    np.testing.assert_allclose(t.loc[2, ["paper_accuracy", "weighted_accuracy"]].astype(float),
                               [.88, .90])
    np.testing.assert_allclose(t["accuracy_diff"].iloc[1:].astype(float), [.05, .02])
    assert t.loc[1, "weighted_setting"] == "em_router weighted thr=0.5"


def test_the_choice_reads_val_only():
    """Permuting the test numbers changes the numbers shown, never which setting is shown."""
    rows = [(v, th, sp, a, c) if sp == "val" else (v, th, sp, 1 - a, 1 - c)
            for v, th, sp, a, c in ROWS]
    a, b = m_step_table(agg()), m_step_table(agg(rows))
    assert a["paper_setting"].tolist() == b["paper_setting"].tolist()
    assert a["weighted_setting"].tolist() == b["weighted_setting"].tolist()


def test_ties_on_val_go_to_the_lower_val_cost():
    rows = ROWS + [(None, .6, "val", .80, .30), (None, .6, "test", .70, .31)]
    t = m_step_table(agg(rows), budgets=(0.5,))
    assert t.loc[0, "paper_accuracy"] == .70


def test_one_m_step_alone_gives_no_table():
    only_paper = [r for r in ROWS if r[0] is None]
    assert m_step_table(agg(only_paper)).empty
    assert m_step_text(m_step_table(agg(only_paper))) == ""
    assert m_step_markdown(m_step_table(agg(only_paper))) == ""


def test_text_and_markdown_show_percent_and_signed_points():
    t = m_step_table(agg(), budgets=(0.25, 0.5))
    text = m_step_text(t)
    assert "78.0 %" in text and "83.0 %" in text and "+5.0 pts" in text and "≤ 25 %" in text
    assert "–" in text                                       # the empty budget
    md = m_step_markdown(t)
    assert md.startswith("## EM router: paper M-step vs exact") and "| 1 | ≤ 50 % |" in md


def test_other_methods_and_severities_are_ignored():
    extra = agg().assign(method="branchynet")
    sev = agg().assign(severity="clean", accuracy=0.0)
    t = m_step_table(pd.concat([agg(), extra, sev], ignore_index=True), budgets=(0.5,))
    assert t.loc[0, "paper_accuracy"] == pytest.approx(.78)


@pytest.mark.slow                                  # builds the whole report (~5 s)
def test_summary_and_report_show_the_comparison_only_when_both_ran(tmp_path):
    """A fake run whose EM rows are copied as the weighted M-step: the table's title is in the
    terminal summary, the report and tables.md; the run as it is (paper only) shows none."""
    from analysis.io import load
    from analysis.report import build_html, write_tables
    from analysis.summary import summary_text
    from analysis.tables import build_tables
    from tests.fake_results import write_fake_results
    data = load(write_fake_results(tmp_path / "run"))
    assert TITLE not in summary_text(data)
    p = data["points"]
    em = p[p["method"] == "em_router"].assign(variant="weighted")
    em["point_id"] = em["point_id"] + "-w"
    d = data["decisions"]
    dw = d[d["point_id"].isin(set(p.loc[p["method"] == "em_router", "point_id"]))]
    data = {**data, "points": pd.concat([p, em], ignore_index=True),
            "decisions": pd.concat([d, dw.assign(point_id=dw["point_id"] + "-w")],
                                   ignore_index=True)}
    assert TITLE in summary_text(data)
    tables = build_tables(data)
    assert len(tables["m_step"]) and TITLE in build_html(tables)[0]
    (md,) = write_tables(tables, tmp_path, formats=("md",))
    assert TITLE in md.read_text()
