"""The report: `python -m analysis.report RESULTS_DIR [--format md|csv]`.

Writes RESULTS_DIR/report.html (self-contained, opens offline: plotly.js and the figures'
data inlined once each, gzip-compressed, `analysis.embed`), prints
the key tables, and with --format also RESULTS_DIR/tables/tables.md or one CSV per table.
Every user-provided string (config, method names, errors, manifest values) is HTML-escaped.
Bad input exits with code 2 and one line on stderr.

For `sweep.run`: `write_report(dir, formats=...)` -> path, `build_tables(load(dir))` and
`summary_text(tables)` -> the terminal text.
"""
from __future__ import annotations

import argparse
import html
import json
import os
import sys
from pathlib import Path

import pandas as pd

from analysis import figures as F
from analysis.embed import HEAD_ROWS, LOADER, Folds, figure_spec, figures_block, plotly_block
from analysis.errors import AnalysisError
from analysis.families import legend
from analysis.intervals import caption
from analysis.io import load
from analysis import m_step as MS
from analysis import variants as VA
from analysis.markup import display, merge_ties, section, to_html, to_markdown, to_text
from analysis.metadata import metadata_html
from analysis.stats import summarise_significance
from analysis.tables import build_tables
CSS = """
body{font-family:Inter,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;color:#1d2733;
background:#f6f7f9}main{max-width:1280px;margin:0 auto;padding:24px 32px 64px}
header{background:#1d2733;color:#fff;padding:20px 32px}header h1{margin:0;font-size:24px}
header p{margin:6px 0 0;color:#c9d3de}h2{border-bottom:2px solid #d0d6de;padding-bottom:6px;
margin-top:40px}h3{margin-top:28px;color:#2a3f5f}.card{background:#fff;border-radius:8px;
box-shadow:0 1px 3px rgba(0,0,0,.08);padding:12px 16px;margin:12px 0}
.tbl-wrap{overflow-x:auto}table.tbl{border-collapse:collapse;font-size:13px;margin:6px 0}
.tbl th,.tbl td{padding:4px 10px;border-bottom:1px solid #e3e7ec;text-align:left;
white-space:nowrap}.tbl .num{text-align:right;font-variant-numeric:tabular-nums}
.tbl th{background:#eef1f5}.warn{background:#fff4e5;border-left:4px solid #e69f00}
.warn h2{margin-top:4px}.note{color:#5b6b7c;font-size:13px}
.meta-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:4px 24px}
pre{background:#f0f2f5;padding:10px;overflow-x:auto;font-size:12px}
details>summary{cursor:pointer;font-weight:600;margin:8px 0}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;background:#e3e7ec;
color:#1d2733;font-size:12px;margin-left:8px}nav a{margin-right:14px}
"""
ONERROR = ("<script>window.onerror=function(m,s,l){var d=document.getElementById("
           "'script-errors');if(d){var p=document.createElement('p');p.className='script-error';"
           "p.textContent=String(m)+' ('+s+':'+l+')';d.appendChild(p);d.hidden=false;}};</script>")
NOTES = {
    "a": "Large outlined markers: the single models (coloured as in the routing shares). "
         "Faint markers: single seeds. Solid markers: seed means with 95% confidence intervals "
         "(methods below; none is drawn where the data cannot support one, the hover says why). "
         "Dark step: Pareto frontier of the seed means (oracle excluded: it reads the labels). "
         "Dotted: best accuracy reachable by randomly mixing single models within the budget.",
    "scores": "HV: hypervolume against (cost of the most expensive single model, accuracy 0), "
              "divided by that box. AIQ: mean of the non-decreasing convex hull over the single "
              "models' cost range. APGR: mean share of the gap between the cheapest and the most "
              "accurate single model recovered within each budget; CPT(x): the lowest cost that "
              "recovers x of that gap.",
    "baselines": "'(best on val)': each learned router's setting with the best val accuracy. "
                 "Every choice of an operating point in this report (best, per-λ, at a budget, "
                 "the frontier tested for significance) is made on the val split; test data "
                 "only reports it.",
    "lift": "Lift = accuracy minus the static-mixing accuracy at the same cost (below the "
            "cheapest single model: that model's accuracy).",
    "verdict": "Does each learned router beat static mixing of the single models, and the "
               "strongest threshold baseline (chosen on val), at the same cost? The router's "
               "operating points are its val Pareto frontier; at each point's test cost the "
               "reference is the mixture of its two neighbouring settings that costs exactly "
               "that. Lift: router minus reference accuracy averaged over the points, paired "
               "per test sample and seed, in percentage points, with a 95% t-interval over "
               "seeds × test samples; q: Benjamini–Hochberg over the whole table; 'better' "
               "where q ≤ 0.05.",
    "significance": "McNemar's exact test of each setting on the val frontier (chosen on val, "
                    "without test data) against the most accurate single model on the same "
                    "test samples, seed by seed; b/c: samples only one of the two gets right. "
                    "q: Benjamini–Hochberg adjusted p-value over all tests of the table (whole "
                    "test set, or the severity levels together); q ≤ 0.05 keeps the expected "
                    "share of false discoveries ≤ 5%.",
}


def _details(summary: str, body: str, *, open_=False) -> str:
    return (f"<details{' open' if open_ else ''}><summary>{html.escape(summary)}</summary>"
            f"{body}</details>")


def _note(key: str) -> str:
    return f'<p class="note">{html.escape(NOTES[key])}</p>'


def _intervals_note(agg: pd.DataFrame, family: str) -> str:
    """Which interval method the family's test points got, and which have none and why."""
    text = caption(agg[(agg["family"] == family) & (agg["split"] == "test")])
    return f'<p class="note">{html.escape(text)}</p>' if text else ""


class _Figures:
    """Each figure becomes an empty div; its data goes into the page's one compressed
    `figure-data` block, drawn by `analysis.embed.LOADER` (plotly.js, compressed, once).
    Each table has its ties merged; a long one shows HEAD_ROWS rows and folds the rest
    (`analysis.embed.Folds`)."""

    CONFIG = {"displaylogo": False, "responsive": True}

    def __init__(self):
        self.specs, self.folds = [], Folds()

    def table(self, frame: pd.DataFrame) -> str:
        """A display table as HTML: ties merged, the rows after HEAD_ROWS folded."""
        frame = merge_ties(frame)
        if len(frame) <= HEAD_ROWS + 5:
            return to_html(frame)
        return self.folds.table(to_html(frame.head(HEAD_ROWS)), to_html(frame), len(frame))

    @property
    def count(self) -> int:
        return len(self.specs)

    def html(self, fig) -> str:
        div_id = f"figure-{self.count + 1}"
        self.specs.append(figure_spec(fig, div_id, self.CONFIG))
        height = html.escape(str(fig.layout.height or 450))
        return (f'<div class="card"><div id="{div_id}" class="plotly-graph-div" '
                f'style="height:{height}px; width:100%;"></div></div>')

    def scripts(self) -> str:
        """plotly.js and the figures (compressed) and the loader; nothing without figures;
        then the folded tables."""
        figures = plotly_block() + figures_block(self.specs) + LOADER if self.specs else ""
        return figures + self.folds.block()


def _info(tables: dict, family) -> dict | None:
    """The family's describe() (words, title, cost unit); None for no family."""
    return None if family is None else tables["families"].get(family)


def _table(tables: dict, key: str, kind: str, figs, *, family=None, severity=None) -> str:
    """One table of `tables` as HTML, filtered to a family and a severity ('all') if given."""
    frame = tables.get(key)
    if frame is None or len(frame) == 0:
        return '<p class="none">(none)</p>'
    if family is not None and "family" in frame.columns:
        frame = frame[frame["family"] == family]
    if severity is not None:
        frame = frame[frame["severity"] == severity]
    return figs.table(display(kind, frame, family=_info(tables, family)))


def _overall_then_levels(tables: dict, key: str, kind: str, family: str, title: str,
                         figs) -> str:
    """The overall (whole test set) table, then the per-severity rows folded away."""
    levels = tables.get(key)
    per_level = ""
    if levels is not None and len(levels):
        levels = levels[(levels.get("family") == family) & (levels["severity"] != "all")]
        per_level = _details(f"{title} — per severity", figs.table(display(
            kind, levels, family=_info(tables, family))))
    return _table(tables, key, kind, figs, family=family, severity="all") + per_level


def _verdict_html(tables: dict) -> str:
    """The verdict (analysis.verdict) at the top: overall rows, then the severity levels."""
    v = tables.get("verdict")
    if v is None or v.empty:
        return ""
    overall, levels = v[v["severity"] == "all"], v[v["severity"] != "all"]
    body = _note("verdict") + to_html(display("verdict", overall))
    if len(levels):
        body += _details("Verdict — per severity", to_html(display("verdict", levels)))
    return f'<div class="card">{section("Verdict", body, anchor="verdict")}</div>'


def _routing_html(tables: dict, family: str, figs) -> str:
    parts = []
    for i, sev in enumerate(["all", *tables["severities"]]):
        frame = tables.get(f"routing/{family}/{sev}")
        if frame is not None:
            name = "overall (whole test set)" if sev == "all" else sev
            parts.append(_details(f"Routing — {name}", figs.table(display(
                "routing", frame, family=_info(tables, family))), open_=i == 0))
    return "".join(parts) or '<p class="none">(no learned router in this family)</p>'


def _family_html(tables: dict, family: str, figs: _Figures) -> str:
    agg, info, sevs = tables["aggregate"], _info(tables, family), tables["severities"]
    body = [f'<p class="note">In this family: {html.escape(legend(info))}.</p>',
            section("(a) Accuracy vs cost", figs.html(F.frontier_figure(
                agg, tables["points"], tables["frontier"], family=family, info=info,
                severities=sevs)) + _note("a")
                + _intervals_note(agg, family), level=3)]
    for key, kind, title in (("scores", "scores", "Frontier scores"),
                             ("frontier", "frontier", "Pareto frontier (seed means, 95% CI)"),
                             ("lift", "lift", "Lift over static mixing"),
                             ("significance", "significance",
                              "Paired significance (McNemar, exact)")):
        note = _note(kind) if kind in NOTES else ""
        body.append(section(title, note + _overall_then_levels(
            tables, key, kind, family, title, figs), level=3))
    for method in F.learned_methods(agg, family=family):
        body.append(section(f"(b) Routing share — {method}", figs.html(
            F.routing_figure(tables, family=family, method=method, info=info)), level=3))
        body.append(section(f"(c) Accuracy per severity across {info['lam']} — {method}",
                             figs.html(F.severity_figure(agg, family=family, method=method,
                                                         info=info, severities=sevs)), level=3))
    body.append(section("Routing tables", _routing_html(tables, family, figs), level=3))
    if MS.shown_in(tables.get("m_step"), agg, family=family):
        body.append(section(MS.TITLE, to_html(MS.m_step_display(tables["m_step"])), level=3))
    mine = _family_rows(tables, "variants", family)
    if mine is not None and len(mine):
        body.append(section(VA.TITLE, to_html(VA.variant_display(mine, lam_word=info["lam"])),
                            level=3))
    baselines = tables[f"baselines/{family}"]
    body.append(section("(d) Baselines (whole test set)", figs.html(
        F.baseline_figure(baselines, family=family, unit=info["cost_unit"]))
        + _note("baselines") + figs.table(display("baselines", baselines, family=info)),
        level=3))
    return section(info["title"], "\n".join(body), anchor=f"family-{family}")


def _failed_html(tables: dict) -> str:
    failed = tables["failed"]
    if failed.empty:
        return ""
    body = (f"<p>{len(failed)} trial(s) failed; they are excluded from the means "
            "(see 'failed' counts) and listed here.</p>"
            + "".join(to_html(display("failed", part, family=_info(tables, f)))
                      for f, part in _by_family(tables, failed)))
    return f'<div class="card warn">{section("Failed trials", body, anchor="failed")}</div>'


def _by_family(tables: dict, frame: pd.DataFrame):
    """(family, its rows) in the report's family order; rows of no known family last."""
    fams = list(tables["families"])
    for f in fams:
        if (frame["family"] == f).any():
            yield f, frame[frame["family"] == f]
    rest = frame[~frame["family"].isin(fams)]
    if len(rest):
        yield None, rest


def build_html(tables: dict) -> tuple[str, int]:
    """The whole report page and its number of figures."""
    manifest = tables.get("manifest") or {}
    name = manifest.get("config_name") or manifest.get("config", {}).get("name", "run")
    figs, fams = _Figures(), list(tables["families"])
    family_html = "\n".join(_family_html(tables, f, figs) for f in fams)
    nav = "".join(f'<a href="#family-{f}">{html.escape(f)}</a>' for f in fams)
    head = (f'<meta charset="utf-8"><meta name="routesweep-figures" content="{figs.count}">'
            f"<title>routesweep report — {html.escape(str(name))}</title>"
            f"<style>{CSS}</style>{ONERROR}")
    header = (f"<header><h1>routesweep report: {html.escape(str(name))}"
              f'<span class="badge">{html.escape(str(manifest.get("status", "unknown")))}'
              f"</span></h1><p>{html.escape(str(manifest.get('created', '')))} → "
              f"{html.escape(str(manifest.get('finished', '')))}</p></header>")
    body = (f'<div id="script-errors" hidden></div>{header}<main><nav>{nav}'
            f'<a href="#metadata">metadata</a></nav>{_failed_html(tables)}'
            f"{_verdict_html(tables)}{family_html}"
            f"{metadata_html(manifest)}</main>{figs.scripts()}")
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>", figs.count


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _display_tables(tables: dict) -> list:
    """(title, kind, family, key) of every table shown in md output, in order."""
    out = [(f"Failed trials{f' ({f})' if f else ''}", "failed", f, "failed")
           for f, _ in _by_family(tables, tables["failed"])]
    if len(tables.get("verdict", ())):
        out.append(("Verdict: router vs static mixing and the strongest baseline at matched "
                    "cost", "verdict", None, "verdict"))
    for f in tables["families"]:
        out.append((f"{f}: baselines (whole test set)", "baselines", f, f"baselines/{f}"))
        for sev in ["all", *tables["severities"]]:
            if f"routing/{f}/{sev}" in tables:
                out.append((f"{f}: routing — {sev}", "routing", f, f"routing/{f}/{sev}"))
        for kind in ("scores", "frontier", "lift", "significance"):
            out.append((f"{f}: {kind}", kind, f, kind))
    return out


def _family_rows(tables: dict, key: str, family):
    frame = tables.get(key)
    if frame is None or len(frame) == 0 or family is None or "family" not in frame.columns:
        return frame
    return frame[frame["family"] == family]


def write_tables(tables: dict, directory, *, formats=()) -> list:
    """Write RESULTS_DIR/tables/tables.md and/or one CSV per numeric table; returns the paths."""
    out_dir, written = Path(directory) / "tables", []
    if formats:
        out_dir.mkdir(exist_ok=True)
    if "md" in formats:
        parts = [f"## {title}\n\n" + to_markdown(display(kind, _family_rows(tables, key, f),
                                                         family=_info(tables, f)))
                 for title, kind, f, key in _display_tables(tables)]
        parts += [MS.m_step_markdown(tables.get("m_step"))] if len(tables.get("m_step", ())) else []
        if len(tables.get("variants", ())):
            parts += [f"## {VA.TITLE}\n\n" + to_markdown(VA.variant_display(tables["variants"]))]
        _atomic_write(out_dir / "tables.md", "# routesweep tables\n\n" + "\n\n".join(parts) + "\n")
        written.append(out_dir / "tables.md")
    if "csv" in formats:
        for key, frame in tables.items():
            if key not in ("manifest", "points", "families", "severities") and \
                    hasattr(frame, "to_csv"):
                path = out_dir / (key.replace("/", "_") + ".csv")
                frame.drop(columns=["point_ids"], errors="ignore").to_csv(path, index=False)
                written.append(path)
    return written


def summary_text(tables: dict) -> str:
    """The key tables as terminal text: failed trials, and per family the baselines, the
    overall routing table, the overall frontier scores and the overall significance tests."""
    manifest = tables.get("manifest") or {}
    lines = [f"routesweep report — {manifest.get('config_name', 'run')} "
             f"(status: {manifest.get('status', 'unknown')})"]
    if len(tables["failed"]):
        lines += ["", f"FAILED TRIALS ({len(tables['failed'])})"]
        lines += [to_text(display("failed", part, family=_info(tables, f)))
                  for f, part in _by_family(tables, tables["failed"])]
    overall = lambda fr: fr["severity"] == "all"  # noqa: E731
    verdict = tables.get("verdict")
    if verdict is not None and len(verdict):
        lines += ["", "== verdict: each router vs static mixing and the strongest baseline at "
                      "matched cost (whole test set) ==",
                  to_text(display("verdict", verdict[overall(verdict)]))]
    for f, info in tables["families"].items():
        lines += ["", f"== {f}: {legend(info)} ==", "", f"== {f}: baselines (whole test set) ==",
                  to_text(display("baselines", tables[f"baselines/{f}"], family=info))]
        if f"routing/{f}/all" in tables:
            lines += ["", f"== {f}: routing (whole test set) ==",
                      to_text(display("routing", tables[f"routing/{f}/all"], family=info))]
        scores = _family_rows(tables, "scores", f)
        if scores is not None and len(scores):
            lines += ["", f"== {f}: frontier scores (whole test set) ==",
                      to_text(display("scores", scores[overall(scores)], family=info))]
        sig = _family_rows(tables, "significance", f)
        if sig is not None and len(sig):
            lines += ["", f"== {f}: McNemar vs the best single model (whole test set) ==",
                      to_text(display("significance_summary",
                                      summarise_significance(sig[overall(sig)]), family=info))]
    return "\n".join(lines)


def write_report(results_dir, *, formats=(), tables=None) -> Path:
    """Load RESULTS_DIR (unless `tables` from `build_tables` are given), write report.html and
    the tables in `formats` ('md', 'csv'); return the path of report.html."""
    directory = Path(results_dir)
    if tables is None:
        tables = build_tables(load(directory))
    page, _ = build_html(tables)
    path = directory / "report.html"
    _atomic_write(path, page)
    write_tables(tables, directory, formats=tuple(formats))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.report",
                                     description="Write RESULTS_DIR/report.html and print the "
                                                 "key tables.")
    parser.add_argument("results_dir")
    parser.add_argument("--format", action="append", choices=("md", "csv"), default=[],
                        help="also write the tables as Markdown or CSV into RESULTS_DIR/tables/")
    args = parser.parse_args(argv)
    try:
        tables = build_tables(load(args.results_dir))
        path = write_report(args.results_dir, formats=args.format, tables=tables)
    except AnalysisError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary_text(tables))
    print(f"\nreport: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
