"""Every choice of an operating point reads val, never test (analysis/selection.py).

Hand-worked choices on a small frame, then the law on a fake run: turning every test number
upside down (accuracy -> 1 - accuracy, each test decision's correctness flipped, i.e. the test
labels permuted so that right becomes wrong) changes no choice anywhere: the summary's per-λ
and per-budget points, the baselines' '(best on val)', the settings tested for significance,
the reference single model, the figure's per-λ settings.
"""
import numpy as np
import pandas as pd
import pytest

from analysis import load
from analysis.figures import severity_figure
from analysis.frontier import reference_models
from analysis.selection import at_budgets, best_on_val, candidates, full_cost, val_frontier
from analysis.stats import aggregate_seeds, seed_means, significance_table
from analysis.summary import at_budget_table, best_per_lam, summary_text
from analysis.tables import baseline_table, build_tables
from tests.fake_results import write_fake_results

# setting: (λ, threshold, val accuracy, val cost, test accuracy, test cost); test numbers are
# chosen to rank the other way round, so a choice made on test would differ everywhere
EM = {"A": (0.0, 0.5, .70, .20, .95, .21), "B": (0.5, 0.5, .80, .45, .90, .44),
      "C": (1.0, 0.5, .85, .70, .60, .72), "D": (2.0, 0.5, .90, .95, .50, .93)}
NOT_ON_TEST = ("E", (4.0, 0.9, .99, .30))   # best on val, but no test row: never chosen


def _points() -> pd.DataFrame:
    base = dict(family="exits", method="em_router", variant=None, tau=1.0, severity="all",
                cost_unit="compute", n=100, status="ok", seed=0, trial_id=None)
    rows = []
    for name, (lam, thr, va, vc, ta, tc) in EM.items():
        rows += [dict(base, lam=lam, threshold=thr, split="val", accuracy=va, cost=vc),
                 dict(base, lam=lam, threshold=thr, split="test", accuracy=ta, cost=tc),
                 dict(base, lam=lam, threshold=thr, split="test", accuracy=ta - .1, cost=tc,
                      severity="severe")]
    lam, thr, va, vc = NOT_ON_TEST[1]
    rows.append(dict(base, lam=lam, threshold=thr, split="val", accuracy=va, cost=vc))
    rows += [dict(base, method="exit", variant=f"exit{k}", lam=None, tau=None, threshold=None,
                  split="test", accuracy=.5 + .1 * k, cost=.25 * k) for k in (1, 2, 3, 4)]
    out = pd.DataFrame(rows)
    out["point_id"] = [f"p{i}" for i in range(len(out))]
    return out


def _lams(means, ids) -> list:
    by_id = means.drop_duplicates("setting_id").set_index("setting_id")["lam"]
    return [None if i is None else by_id[i] for i in ids]


def test_candidates_are_val_rows_of_settings_reported_on_test():
    val = candidates(seed_means(_points()))
    assert sorted(val["lam"]) == [0.0, 0.5, 1.0, 2.0]            # E (λ=4) has no test row
    assert set(val["split"]) == {"val"} and set(val["severity"]) == {"all"}


def test_best_on_val_by_hand():
    means = seed_means(_points())
    assert _lams(means, best_on_val(means)) == [2.0]              # D: .90 on val (.50 on test)
    assert _lams(means, best_on_val(means, by=["lam"])) == [0.0, 0.5, 1.0, 2.0]
    # a tie on val accuracy goes to the lower val cost
    pts = _points()
    pts.loc[(pts["split"] == "val") & (pts["lam"] == 1.0), "accuracy"] = .90
    assert _lams(seed_means(pts), best_on_val(seed_means(pts))) == [1.0]   # C: .70 < .95


def test_at_budgets_by_hand():
    means = seed_means(_points())
    # val costs A .20, B .45, C .70, D .95 (E .30 has no test row)
    assert _lams(means, at_budgets(means, [0.1, 0.25, 0.5, 0.75, 1.0])) == [
        None, 0.0, 0.5, 1.0, 2.0]
    assert _lams(means, at_budgets(means, [0.45])) == [0.5]        # exactly at the budget fits


def test_at_budget_table_reports_the_val_choice_on_test():
    means = seed_means(_points())
    assert full_cost(means, cost_unit="compute") == 1.0
    table = at_budget_table(means, family="exits", method="em_router", severities=["severe"],
                            cost_unit="compute", budgets=(0.1, 0.25, 0.5, 0.75, 1.0))
    assert table["budget"].tolist() == ["10%", "25%", "50%", "75%", "100%"]
    assert np.isnan(table["lam"].iloc[0])                          # nothing fits 10 %
    got = table.iloc[1:]
    assert got["lam"].tolist() == [0.0, 0.5, 1.0, 2.0]
    assert got["val_accuracy"].tolist() == pytest.approx([.70, .80, .85, .90])
    assert got["accuracy"].tolist() == pytest.approx([.95, .90, .60, .50])   # test
    assert got["cost"].tolist() == pytest.approx([.21, .44, .72, .93])      # test
    assert got["acc severe"].tolist() == pytest.approx([.85, .80, .50, .40])
    # in ms, full compute is the costliest single model's cost
    assert full_cost(means.assign(cost=means["cost"] * 4), cost_unit="ms") == pytest.approx(4.0)


def test_val_frontier_by_hand():
    means = seed_means(_points())
    pts = _points()
    pts.loc[(pts["split"] == "val") & (pts["lam"] == 1.0), "accuracy"] = .79   # C dominated by B
    assert sorted(_lams(means, val_frontier(means))) == [0.0, 0.5, 1.0, 2.0]
    assert sorted(_lams(seed_means(pts), val_frontier(seed_means(pts)))) == [0.0, 0.5, 2.0]


# --- the law on a fake run: test numbers never change a choice -----------------------------

@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return load(write_fake_results(tmp_path_factory.mktemp("selection") / "run"))


def _flip_test(data: dict) -> dict:
    """Every test number upside down: test accuracy -> 1 - accuracy, and each test decision's
    correctness flipped (its label permuted to a wrong one); val untouched."""
    points = data["points"].copy()
    test = points["split"] == "test"
    points.loc[test, "accuracy"] = 1 - points.loc[test, "accuracy"]
    decisions = data["decisions"].assign(correct=~data["decisions"]["correct"].astype(bool))
    return {**data, "points": points, "decisions": decisions}


def _choices(data: dict) -> dict:
    """What every chooser picks, as settings (no test number in it)."""
    means = seed_means(data["points"])
    agg = aggregate_seeds(data["points"], data["decisions"])
    sevs = ["clean", "mild", "moderate", "severe"]
    out = {"per_lam": best_per_lam(means, data["points"], data["routes"], family="experts",
                                   method="gater", severities=sevs)
           .query("severity == 'all'")[["lam", "tau"]].values.tolist(),
           "budgets": at_budget_table(means, family="exits", method="em_router", severities=sevs,
                                      cost_unit="compute")[["lam", "tau", "threshold"]]
           .fillna(-1).values.tolist()}
    for family, method in (("experts", "gater"), ("exits", "em_router")):
        fig = severity_figure(agg, family=family, method=method, severities=sevs)
        out[f"figure/{family}"] = [list(t.customdata) for t in fig.data]
        table = baseline_table(agg, family=family)
        out[f"best/{family}"] = table.loc[table["label"].str.contains("best"), "label"].tolist()
        ref = reference_models(agg, family=family, severity="all")
        out[f"reference/{family}"] = (ref["strong_label"], ref["weak_label"], ref["chosen_on"])
    sig = significance_table(agg, data["points"], data["decisions"], sevs)
    out["tested"] = sorted(set(sig["label"])) if len(sig) else []
    return out


def test_no_test_number_changes_any_choice(data):
    before, after = _choices(data), _choices(_flip_test(data))
    assert before == after
    # and the flip is strong enough to move a choice made on test (the planted bug)
    means = seed_means(data["points"])
    flipped = seed_means(_flip_test(data)["points"])
    on_test = lambda m: (m[(m["split"] == "test") & (m["severity"] == "all")  # noqa: E731
                           & (m["method"] == "gater")].sort_values("accuracy")["setting_id"]
                         .iloc[-1])
    assert on_test(means) != on_test(flipped)
    assert before["budgets"] and before["tested"] and before["best/exits"]
    assert before["reference/experts"][2] == "val"      # the singles' val rows rank them


def test_summary_and_report_say_chosen_on_val(data):
    text = summary_text(data)
    assert "chosen on val" in text and "matched budgets" in text
    flipped = summary_text(_flip_test(data))
    # the same settings are listed (their test numbers differ)
    for line in ("-- all", "budget"):
        assert (line in text) == (line in flipped)
    tables = build_tables(data)
    for family in ("experts", "exits"):
        labels = tables[f"baselines/{family}"]["label"]
        assert labels.str.contains("(best on val)", regex=False).sum() == 1


def test_means_equal_but_for_summation_order_are_ties():
    """0.1 + 0.2 and 0.3 differ by 5.6e-17 (a mean summed in another order, seed_means vs
    aggregate_seeds): both are on the val frontier, whichever comes first."""
    frame = pd.DataFrame({"family": "exits", "method": "em_router", "setting_id": ["a", "b"] * 2,
                          "split": ["val", "val", "test", "test"], "severity": "all",
                          "accuracy": [0.1 + 0.2, 0.3, 0.5, 0.5], "cost": [0.5, 0.5, 0.5, 0.5]})
    assert sorted(val_frontier(frame)) == ["a", "b"]
    assert best_on_val(frame) == ["a"]                  # the tie goes to the first setting id


def test_costs_equal_but_for_summation_order_are_ties_too():
    frame = pd.DataFrame({"family": "exits", "method": "em_router", "setting_id": ["a", "b"] * 2,
                          "split": ["val", "val", "test", "test"], "severity": "all",
                          "accuracy": [0.5] * 4, "cost": [0.1 + 0.2, 0.3, 0.3, 0.3]})
    assert sorted(val_frontier(frame)) == ["a", "b"]


def test_best_on_val_keeps_a_group_whose_key_is_missing():
    frame = pd.DataFrame({"setting_id": ["a", "b", "a", "b"], "lam": [None, 1.0] * 2,
                          "split": ["val", "val", "test", "test"], "severity": "all",
                          "accuracy": [0.5, 0.6, 0.5, 0.6], "cost": [1.0] * 4})
    assert sorted(best_on_val(frame, by=["lam"])) == ["a", "b"]


def test_full_cost_by_unit():
    frame = pd.DataFrame({"method": ["exit", "exit", "em_router", "expert"],
                          "cost": [0.5, 2.0, 9.0, None]})
    assert full_cost(frame, cost_unit="compute") == 1.0      # a fraction of compute: 1
    assert full_cost(frame, cost_unit="ms") == 2.0           # the costliest single model
    assert full_cost(frame[frame["method"] == "em_router"], cost_unit="ms") is None


def test_a_budget_fits_within_its_tolerance():
    from analysis.selection import _TOL
    frame = pd.DataFrame({"setting_id": ["a", "b"] * 2, "split": ["val", "val", "test", "test"],
                          "severity": "all", "accuracy": [0.9, 0.5, 0.9, 0.5],
                          "cost": [0.5 + _TOL, 0.2, 0.5, 0.2]})
    assert at_budgets(frame, [0.5, 0.5 - _TOL]) == ["a", "b"]
