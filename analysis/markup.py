"""Tables as text: display formatting (units, CIs, percentages) and text / Markdown / HTML writers.

`display(kind, frame, family=info)` turns a numeric table of `analysis.tables.build_tables` into
strings with the seed papers' conventions, by the family's cost unit: latency in ms shows
accuracy in % (gater paper), a fraction of compute shows accuracy and cost as fractions with 4
decimals (EM paper); seed means carry their 95% interval as 'mean [lo, hi]'. `info` is
`analysis.families.describe(...)`: its `lam` / `tau` words head the λ and τ columns. The writers need no extra packages
(no `tabulate`); `to_html` escapes every cell and header.
"""
from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd

UNITS = {  # cost unit -> accuracy scale, accuracy digits, cost digits, headers
    "ms": {"scale": 100.0, "acc_digits": 2, "cost_digits": 2,
           "acc": "Acc (%)", "cost": "Lat (ms)"},
    "compute": {"scale": 100.0, "acc_digits": 2, "cost_digits": 4,
                "acc": "Acc (%)", "cost": "Cost"},
}
DEFAULT_UNITS = {"scale": 1.0, "acc_digits": 4, "cost_digits": 4, "acc": "Accuracy",
                 "cost": "Cost"}


def fmt_num(value, digits=2, *, scale=1.0) -> str:
    """A number with fixed decimals; '' for None / NaN."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    text = f"{float(value) * scale:.{digits}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text   # no "-0.00"


def fmt_ci(mean, lo, hi, *, digits=2, scale=1.0) -> str:
    """'mean [lo, hi]', or just 'mean' when the interval is undefined (a single seed)."""
    text = fmt_num(mean, digits, scale=scale)
    if text and not (pd.isna(lo) or pd.isna(hi)):
        text += f" [{fmt_num(lo, digits, scale=scale)}, {fmt_num(hi, digits, scale=scale)}]"
    return text


def _stat_columns(frame: pd.DataFrame, units: dict) -> dict:
    acc = [fmt_ci(r.accuracy, r.accuracy_lo, r.accuracy_hi, digits=units["acc_digits"],
                  scale=units["scale"]) for r in frame.itertuples()]
    cost = [fmt_ci(r.cost, r.cost_lo, r.cost_hi, digits=units["cost_digits"])
            for r in frame.itertuples()]
    return {units["acc"]: acc, units["cost"]: cost}


def _optional_params(frame: pd.DataFrame, units: dict) -> dict:
    """λ / τ / threshold columns (headed by the family's words), only those with a value."""
    out = {}
    for name, col in ((units["lam"], "lam"), (units["tau"], "tau"), ("threshold", "threshold")):
        if col in frame and frame[col].notna().any():
            out[name] = [fmt_num(v, 3).rstrip("0").rstrip(".") if not pd.isna(v) else ""
                         for v in frame[col]]
    return out


def routing_display(frame: pd.DataFrame, units: dict) -> pd.DataFrame:
    """Gater-paper Tables 2-6: [method,] λ, τ, [threshold,] Acc, Lat, seeds, %→target ..."""
    cols = {}
    if frame["method"].nunique() > 1:
        cols["Method"] = list(frame["method"])
    cols.update(_optional_params(frame, units))
    cols.update(_stat_columns(frame, units))
    cols["seeds"] = [str(n) for n in frame["n_seeds"]]
    for col in [c for c in frame.columns if c.startswith("share:")]:
        cols["%→" + col[len("share:"):]] = [fmt_num(v, 1, scale=100.0) for v in frame[col]]
    return pd.DataFrame(cols)


def baseline_display(frame: pd.DataFrame, units: dict) -> pd.DataFrame:
    """EM-paper Table 1: Method, Accuracy, Cost (+ seeds, failed)."""
    cols = {"Method": list(frame["label"])}
    cols.update(_stat_columns(frame, units))
    cols["seeds"] = [str(n) for n in frame["n_seeds"]]
    if frame["n_failed"].sum():
        cols["failed"] = [str(n) for n in frame["n_failed"]]
    return pd.DataFrame(cols)


def frontier_display(frame: pd.DataFrame, units: dict) -> pd.DataFrame:
    cols = {"Severity": list(frame["severity"]), "Configuration": list(frame["label"])}
    cols.update(_stat_columns(frame, units))
    cols["seeds"] = [str(n) for n in frame["n_seeds"]]
    return pd.DataFrame(cols)


def lift_display(frame: pd.DataFrame, units: dict) -> pd.DataFrame:
    d, s = units["acc_digits"], units["scale"]
    return pd.DataFrame({
        "Severity": list(frame["severity"]), "Configuration": list(frame["label"]),
        units["acc"]: [fmt_num(v, d, scale=s) for v in frame["accuracy"]],
        units["cost"]: [fmt_num(v, units["cost_digits"]) for v in frame["cost"]],
        "static mix": [fmt_num(v, d, scale=s) for v in frame["static_accuracy"]],
        "lift": [("+" if v >= 0 else "") + fmt_num(v, d, scale=s) for v in frame["lift"]]})


def scores_display(frame: pd.DataFrame, units: dict) -> pd.DataFrame:
    c = units["cost_digits"]
    return pd.DataFrame({
        "Severity": list(frame["severity"]), "Method": list(frame["method"]),
        "configs": [str(v) for v in frame["n_configs"]],
        "HV (norm.)": [fmt_num(v, 4) for v in frame["hypervolume"]],
        "AIQ": [fmt_num(v, 4) for v in frame["aiq"]],
        "APGR": [fmt_num(v, 4) for v in frame["apgr"]],
        "CPT(50%)": [fmt_num(v, c) or "—" for v in frame["cpt50"]],
        "CPT(80%)": [fmt_num(v, c) or "—" for v in frame["cpt80"]]})


def significance_display(frame: pd.DataFrame, units: dict) -> pd.DataFrame:
    d, s = units["acc_digits"], units["scale"]
    return pd.DataFrame({
        "Configuration": list(frame["label"]), "vs": list(frame["reference"]),
        "seed": [str(v) for v in frame["seed"]], "Severity": list(frame["severity"]),
        "n": [str(v) for v in frame["n"]],
        units["acc"]: [fmt_num(v, d, scale=s) for v in frame["accuracy"]],
        "ref": [fmt_num(v, d, scale=s) for v in frame["accuracy_ref"]],
        "only router ✓": [str(v) for v in frame["b"]],
        "only ref ✓": [str(v) for v in frame["c"]],
        "p (McNemar)": [f"{v:.3g}" for v in frame["pvalue"]],
        "q (BH)": [f"{v:.3g}" for v in frame["qvalue"]]})


def significance_summary_display(frame: pd.DataFrame, units: dict) -> pd.DataFrame:
    d, s = units["acc_digits"], units["scale"]
    return pd.DataFrame({
        "Configuration": list(frame["label"]), "vs": list(frame["reference"]),
        "Severity": list(frame["severity"]), "seeds": [str(v) for v in frame["seeds"]],
        units["acc"]: [fmt_num(v, d, scale=s) for v in frame["accuracy"]],
        "ref": [fmt_num(v, d, scale=s) for v in frame["accuracy_ref"]],
        "max p over seeds": [f"{v:.3g}" for v in frame["p_max"]],
        "q (BH)": [f"{v:.3g}" for v in frame["q"]]})


def failed_display(frame: pd.DataFrame, units: dict) -> pd.DataFrame:
    out = pd.DataFrame({"trial": frame["trial_id"].fillna("").astype(str),
                        "family": frame["family"].fillna("").astype(str),
                        "method": frame["method"].fillna("").astype(str)})
    out = pd.concat([out, pd.DataFrame(_optional_params(frame, units))], axis=1)
    out["seed"] = [fmt_num(v, 0) for v in frame["seed"]]
    out["error"] = frame["error"].fillna("").astype(str).str.slice(0, 200)
    return out


def _pp(value) -> str:
    """A lift in percentage points with its sign ('+8.30'; '' for NaN)."""
    text = fmt_num(value, 2, scale=100.0)
    return "+" + text if text and not text.startswith("-") else text


def _cost_range(lo, hi, unit) -> str:
    """'1.55–3.92 ms' / '0.28–0.93 of full' (2 decimals: a range, not a measurement)."""
    lo, hi = fmt_num(lo, 2), fmt_num(hi, 2)
    return (lo if lo == hi else f"{lo}–{hi}") + (" ms" if unit == "ms" else " of full")


def verdict_display(frame: pd.DataFrame, units: dict) -> pd.DataFrame:
    """The verdict (analysis.verdict): accuracy in % and the lift in percentage points
    [95% CI] whatever the family's unit; the cost range in the family's unit."""
    unit = frame["cost_unit"] if "cost_unit" in frame else [None] * len(frame)
    return pd.DataFrame({
        "Router": list(frame["router"]),
        "Severity": [SEVERITY_NAMES.get(v, v) for v in frame["severity"]],
        "vs": list(frame["versus"]), "points": [str(v) for v in frame["points"]],
        "at cost": [_cost_range(lo, hi, u) for lo, hi, u in
                    zip(frame["cost_lo"], frame["cost_hi"], unit)],
        "Router acc (%)": [fmt_num(v, 2, scale=100.0) for v in frame["accuracy"]],
        "Ref acc (%)": [fmt_num(v, 2, scale=100.0) for v in frame["reference_accuracy"]],
        "Lift (pp) [95% CI]": [_pp(v) + (f" [{_pp(lo)}, {_pp(hi)}]" if _pp(lo) else "")
                               for v, lo, hi in zip(frame["lift"], frame["lift_lo"],
                                                    frame["lift_hi"])],
        "p": [f"{v:.2g}" if not pd.isna(v) else "" for v in frame["pvalue"]],
        "q (BH)": [f"{v:.2g}" if not pd.isna(v) else "" for v in frame["qvalue"]],
        "seeds": [str(v) for v in frame["n_seeds"]], "Verdict": list(frame["verdict"])})


SEVERITY_NAMES = {"all": "overall"}
KINDS = {"routing": routing_display, "baselines": baseline_display,
         "frontier": frontier_display, "lift": lift_display, "scores": scores_display,
         "significance": significance_display,
         "significance_summary": significance_summary_display, "failed": failed_display,
         "verdict": verdict_display}


def display(kind: str, frame: pd.DataFrame, *, family: dict | None = None) -> pd.DataFrame:
    """The formatted (string) version of a numeric table of kind KINDS[...]; `family` is the
    family's `analysis.families.describe` (cost unit and λ / τ words), None: generic."""
    if frame is None or frame.empty:
        return pd.DataFrame()
    info = family or {}
    units = {**UNITS.get(info.get("cost_unit"), DEFAULT_UNITS),
             "lam": info.get("lam", "λ"), "tau": info.get("tau", "τ")}
    out = KINDS[kind](frame.reset_index(drop=True), units)
    if "Severity" in out:
        out["Severity"] = out["Severity"].replace(SEVERITY_NAMES)     # 'all' -> 'overall'
    return out


NAMES = ("Configuration", "Method", "Router")   # columns that name a row, not a result


def merge_ties(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows equal in every column but the naming ones (NAMES, and the λ / τ / threshold of a
    routing table: `names`) become one, in first-seen order: the first row, its first name
    + ' (+k tied)'."""
    names = [c for c in frame.columns if c in NAMES] or list(frame.columns[:_param_count(frame)])
    others = [c for c in frame.columns if c not in names]
    if frame.empty or not names or not others:
        return frame
    key = frame[others].astype(str).agg("\x1f".join, axis=1)
    counts = key.map(key.value_counts())
    out = frame[~key.duplicated()].copy()
    extra = counts[out.index] - 1
    out[names[0]] = [f"{v} (+{k} tied)" if k else v for v, k in zip(out[names[0]], extra)]
    return out.reset_index(drop=True)


def _param_count(frame: pd.DataFrame) -> int:
    """How many leading columns of a routing table name its setting (before 'Acc' / 'Lat')."""
    stats = [i for i, c in enumerate(frame.columns) if str(c).startswith(("Acc", "Lat", "Cost"))]
    return stats[0] if stats else 0


def to_text(frame: pd.DataFrame) -> str:
    """A plain aligned text table (two spaces between columns)."""
    if frame.empty:
        return "(none)"
    cells = [list(map(str, frame.columns))] + frame.astype(str).values.tolist()
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table ('|' in cells escaped)."""
    if frame.empty:
        return "_(none)_"
    esc = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(esc(c) for c in frame.columns) + " |",
             "|" + "|".join("---" for _ in frame.columns) + "|"]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in frame.values.tolist()]
    return "\n".join(lines)


_NUMERIC = re.compile(r"^([-+]?\d[\d.e+-]*( \[.*\])?|—|)$")


def _cell(value) -> str:
    text = str(value)
    css = ' class="num"' if _NUMERIC.match(text) else ""
    return f"<td{css}>{html.escape(text)}</td>"


def to_html(frame: pd.DataFrame, *, css_class="tbl") -> str:
    """An HTML <table>; every header and cell is HTML-escaped; numbers right-aligned."""
    if frame.empty:
        return '<p class="none">(none)</p>'
    numeric = [all(_NUMERIC.match(str(v)) for v in frame[c]) for c in frame.columns]
    num = ' class="num"'
    head = "".join(f"<th{num if n else ''}>{html.escape(str(c))}</th>"
                   for c, n in zip(frame.columns, numeric))
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>"
                   for row in frame.values.tolist())
    return (f'<div class="tbl-wrap"><table class="{css_class}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def section(title: str, body: str, *, anchor=None, level=2) -> str:
    ident = f' id="{html.escape(anchor)}"' if anchor else ""
    return f"<h{level}{ident}>{html.escape(title)}</h{level}>\n{body}\n"
