"""The report: HTML structure, escaping, tables on disk, terminal text, the CLI, hygiene."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis import load
from analysis.embed import figures_in, unpack
from analysis.report import build_html, summary_text, write_report
from analysis.tables import build_tables
from tests.fake_results import XSS_CONFIG, XSS_METHOD, write_fake_results, write_xss_results

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return write_fake_results(tmp_path_factory.mktemp("report") / "run")


@pytest.fixture(scope="module")
def tables(run):
    return build_tables(load(run))


def test_build_html_counts_figures_and_inlines_plotly_once(tables):
    page, n = build_html(tables)
    assert n == 8  # per family: frontier, routing share, accuracy per severity, baselines
    assert page.count('class="plotly-graph-div"') == 8
    assert f'<meta name="routesweep-figures" content="{n}">' in page
    # plotly.js once, compressed (analysis/embed.py), and nothing fetched from a CDN
    assert page.count('id="plotly-js"') == 1 and "cdn.plot.ly" not in page
    assert "plotly.js v" in unpack(re.search(r'id="plotly-js">([^<]*)<', page).group(1))[:300]
    assert [f["id"] for f in figures_in(page)] == [f"figure-{i}" for i in range(1, 9)]
    assert 'id="script-errors"' in page and "window.onerror" in page
    for text in ("Failed trials", "gater_lam0.5_tau1_s2", "Run metadata", "perf_counter_ns",
                 "Frontier scores", "Routing — overall"):
        assert text in page, text
    assert "latency per sample (ms)" in json.dumps(_figure_json(page), ensure_ascii=False)
    # the failed trial's error message is escaped, not rendered as markup
    assert "&lt;b&gt;unexpectedly&lt;/b&gt;" in page


def _figure_json(page: str) -> list[dict]:
    """The layout of every Plotly figure of the page, in order."""
    return [spec["layout"] for spec in figures_in(page)]


def test_every_lambda_and_tau_says_what_it_weighs(tables):
    """The gater's λ weighs classification, the EM router's the exit cost: every axis and
    header that shows λ or τ names it for its family, never a bare or a wrong 'λ'."""
    page, _ = build_html(tables)
    gater = ("λ (weight on classification)", "τ (Gumbel temperature)")
    em = ("λ (weight on exit cost)", "τ (E-step temperature)")
    layouts = _figure_json(page)
    x_titles = [lay.get("xaxis", {}).get("title", {}).get("text") for lay in layouts]
    assert gater[0] in x_titles and em[0] in x_titles           # (c) per family
    assert "λ (cost weight)" not in page                         # the old, wrong for the gater
    titles = [lay.get("title", {}).get("text", "") for lay in layouts]   # (c): τ chosen on val
    assert any(t.startswith(gater[1] + " chosen on val per " + gater[0]) for t in titles)
    assert any(t.startswith(em[1] + " / threshold chosen on val per " + em[0]) for t in titles)
    headers = re.findall(r"<th[^>]*>([^<]*)</th>", page)
    for words in (gater, em):                                    # table headers
        assert all(w in headers for w in words), words
    assert "λ" not in headers and "τ" not in headers
    text = summary_text(tables)
    assert all(w in text for w in gater + em)


def test_summary_text_has_key_tables(tables):
    text = summary_text(tables)
    for needle in ("FAILED TRIALS (1)", "experts: baselines", "exits: routing",
                   "%→squeezenet", "frontier scores", "McNemar", "em_router (best on val)"):
        assert needle in text, needle


def test_write_report_md_and_csv(tmp_path):
    run = write_fake_results(tmp_path / "run", families=("exits",))
    path = write_report(run, formats=("md", "csv"))
    assert path == run / "report.html" and path.stat().st_size > 1_000_000
    md = (run / "tables" / "tables.md").read_text()
    assert "| Method | Acc (%) | Cost | seeds |" in md and "## exits: routing — severe" in md
    scores = pd.read_csv(run / "tables" / "scores.csv")
    assert {"hypervolume", "aiq", "apgr", "cpt50", "cpt80"} <= set(scores.columns)
    assert (run / "tables" / "routing_exits_all.csv").exists()
    assert not (run / "tables" / "points.csv").exists()


def test_cli_success_prints_tables(run, capsys):
    """The command's main in-process (its subprocess start: tests/test_analysis_io.py)."""
    from analysis.report import main
    rc = main([str(run), "--format", "md"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "experts: baselines" in out and f"report: {run / 'report.html'}" in out
    assert (run / "report.html").exists() and (run / "tables" / "tables.md").exists()


def test_user_strings_are_escaped(tmp_path):
    run = write_xss_results(tmp_path / "xss")
    page = write_report(run).read_text(encoding="utf-8")
    assert XSS_CONFIG not in page and XSS_METHOD not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "<script>document.title" not in page


def test_analysis_never_imports_torch_ray_sweep_or_trainers():
    code = ("import sys, analysis, analysis.report, analysis.figures; "
            "bad = [m for m in ('torch', 'ray', 'sweep', 'trainers') if m in sys.modules]; "
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
    for path in (ROOT / "analysis").glob("*.py"):
        source = path.read_text()
        for name in ("torch", "ray", "sweep", "trainers"):
            assert f"import {name}" not in source and f"from {name}" not in source, path
        assert len(source.splitlines()) < 400, path


def test_report_without_singles_decisions_routes_or_manifest(tmp_path):
    run = write_fake_results(tmp_path / "run", families=("experts",))
    pts = pd.read_parquet(run / "points.parquet")
    pts[pts["method"] == "gater"].to_parquet(run / "points.parquet")
    for name in ("decisions.parquet", "routes.parquet", "manifest.json"):
        (run / name).unlink()
    page, n = build_html(build_tables(load(run)))
    assert n == 4 and "(not recorded)" in page


def test_report_when_every_trial_failed(tmp_path):
    run = write_fake_results(tmp_path / "run", families=("exits",))
    pts = pd.read_parquet(run / "points.parquet")
    pts = pts.assign(status="failed", accuracy=float("nan"), error="boom")
    pts.to_parquet(run / "points.parquet")
    tables = build_tables(load(run))
    page, n = build_html(tables)
    assert n == 2 and "boom" in page  # empty frontier and baseline figures, failures listed
    assert "FAILED TRIALS" in summary_text(tables)
