"""Plotly figures of the report. One palette; every user string is HTML-escaped.

(a) `frontier_figure`: accuracy vs cost, every seed's point, seed means with 95% CI bars, the
    Pareto frontier of the means (step line: best accuracy within a budget), the static-mixing
    hull of the single models, and buttons to switch the severity.
(b) `routing_figure`: share of samples per target, stacked bars across configurations, one
    panel per severity.  (c) `severity_figure`: test accuracy per severity across λ, the other
    axes (τ, threshold) chosen on val.
(d) `baseline_figure`: accuracy and cost of the baselines and each learned router's setting
    chosen on val.

`info` is the family's `analysis.families.describe`: its words name the λ / τ axes, panels and
hover lines (what λ and τ weigh differs by family); `severities` orders the severity levels.
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.families import GENERIC
from analysis.frontier import METHOD_ORDER, SINGLE_METHODS, is_learned, select, static_mixing
from analysis.selection import best_on_val

METHOD_COLORS = {"gater": "#0072B2", "em_router": "#332288", "expert": "#4D4D4D",
                 "exit": "#4D4D4D", "random": "#A0A0A0", "branchynet": "#E69F00",
                 "cascade": "#009E73", "oracle": "#CC79A7"}
# Single models (routing targets), cheapest first: the same colour in (a) and (b), and none
# that a method uses; methods not in METHOD_COLORS take EXTRA_COLORS.
TARGET_COLORS = ("#56B4E9", "#D55E00", "#F0E442", "#882255", "#44AA99", "#999933", "#AA4499")
EXTRA_COLORS = ("#117733", "#661100", "#6699CC", "#DDCC77", "#AA7744", "#117777")
SEVERITY_COLORS = {"all": "#222222", "clean": "#2C7FB8", "mild": "#41B6C4",
                   "moderate": "#FD8D3C", "severe": "#D7301F"}
SINGLE_SYMBOLS = ("diamond", "square", "triangle-up", "pentagon", "hexagon", "cross",
                  "triangle-down", "hourglass")
FRONTIER_COLOR, HULL_COLOR = "#1D2733", "#7F7F7F"
SEVERITY_NAMES = {"all": "overall"}
AXIS_TITLES = {"ms": "latency per sample (ms)",
               "compute": "cost per sample (fraction of full compute)"}
LAYOUT = dict(template="plotly_white", font=dict(family="Inter, Segoe UI, Helvetica, Arial",
                                                  size=13), hoverlabel=dict(align="left"))


def esc(value) -> str:
    return html.escape(str(value))


def method_color(method: str) -> str:
    """The method's colour: the palette, else a stable pick from EXTRA_COLORS."""
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    return EXTRA_COLORS[sum(map(ord, str(method))) % len(EXTRA_COLORS)]


def _methods(frame: pd.DataFrame) -> list:
    present = list(dict.fromkeys(frame["method"]))
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    return sorted(present, key=lambda m: (rank.get(m, len(rank)), m))


def _unit(frame: pd.DataFrame) -> str:
    units = frame["cost_unit"].dropna().unique()
    return units[0] if len(units) else ""


def _levels(present, severities) -> list:
    """'all' then the severity levels present, in `severities` order (else as they come)."""
    present = list(dict.fromkeys(present))
    order = list(severities) if severities is not None else present
    return [s for s in ["all", *order] if s in present] + [
        s for s in present if s != "all" and s not in order]


def _hover(row: dict, unit: str, info: dict = GENERIC) -> str:
    """Hover text of one point: method, variant, λ, τ, threshold, seed(s), accuracy, cost."""
    lines = [f"<b>{esc(row['method'])}</b>"]
    for name, col in (("variant", "variant"), (info["lam"], "lam"), (info["tau"], "tau"),
                      ("threshold", "threshold"), ("seed", "seed"), ("seeds", "seeds")):
        value = row.get(col)
        if value is not None and not (isinstance(value, float) and np.isnan(value)) \
                and value != "":
            lines.append(f"{name}: {esc(value)}")
    lines.append(f"accuracy: {row['accuracy']:.2%}" + _ci_text(row, "accuracy", ".2%"))
    lines.append(f"cost: {row['cost']:.4g} {esc(unit)}" + _ci_text(row, "cost", ".4g"))
    return "<br>".join(lines)


def _ci_text(row: dict, col: str, spec: str) -> str:
    lo, hi = row.get(col + "_lo"), row.get(col + "_hi")
    if lo is None or hi is None or np.isnan(lo) or np.isnan(hi):
        note = row.get("ci_note")  # seed means without an interval say why
        return f" (no interval: {esc(note)})" if isinstance(note, str) and note else ""
    return f" [{lo:{spec}}, {hi:{spec}}]"


def _err(frame: pd.DataFrame, col: str) -> dict:
    up = (frame[col + "_hi"] - frame[col]).fillna(0).clip(lower=0)
    down = (frame[col] - frame[col + "_lo"]).fillna(0).clip(lower=0)
    return dict(type="data", symmetric=False, array=up.tolist(), arrayminus=down.tolist(),
                thickness=1.2, width=3)


def _severity_traces(agg, points, frontier, *, family, severity, info) -> list:
    """All traces of panel (a) for one severity."""
    means = select(agg, family=family, severity=severity)
    means = means[means["accuracy"].notna()]
    raw = points[(points["family"] == family) & (points["severity"] == severity)
                 & (points["split"] == "test") & (points["status"] == "ok")]
    unit, traces, singles = _unit(means), [], []
    for method in _methods(means):
        m, r = means[means["method"] == method], raw[raw["method"] == method]
        if len(r) > len(m):  # several seeds: show each one faintly
            traces.append(_seed_trace(r, unit, method, info))
        if method in SINGLE_METHODS:
            singles += _single_traces(m, unit, info)
        else:
            traces.append(_mean_trace(m, unit, method, info))
    # single models last: drawn on top of the routers' points, never hidden under them
    return traces + _lines(means, frontier, family=family, severity=severity) + singles


def _seed_trace(r: pd.DataFrame, unit: str, method: str, info: dict) -> go.Scatter:
    """Every successful seed of one method, small and faint, with its own hover."""
    return go.Scatter(
        x=r["cost"], y=r["accuracy"], mode="markers", legendgroup=esc(method),
        showlegend=False, marker=dict(color=method_color(method), size=5, opacity=0.35),
        hovertext=[_hover(x, unit, info) for x in r.to_dict("records")],
        hovertemplate="%{hovertext}<extra></extra>", name=esc(method) + " (seed)")


def _mean_trace(m: pd.DataFrame, unit: str, method: str, info: dict) -> go.Scatter:
    """Seed means of one method with 95% CI error bars in both directions."""
    oracle = method == "oracle"
    return go.Scatter(
        x=m["cost"], y=m["accuracy"], name=esc(method), legendgroup=esc(method),
        mode="markers", marker=dict(color=method_color(method), size=12 if oracle else 9,
                                    symbol="star" if oracle else "circle",
                                    line=dict(color="white", width=1)),
        error_x=_err(m, "cost"), error_y=_err(m, "accuracy"),
        hovertext=[_hover(x, unit, info) for x in m.to_dict("records")],
        hovertemplate="%{hovertext}<extra></extra>")


def _single_traces(m: pd.DataFrame, unit: str, info: dict) -> list:
    """One legend entry per single model (its name), cheapest first: its routing-target
    colour (TARGET_COLORS, as in (b)) and a distinct marker symbol, large, outlined."""
    out = []
    for k, row in enumerate(m.sort_values("cost").to_dict("records")):
        out.append(go.Scatter(
            x=[row["cost"]], y=[row["accuracy"]], mode="markers",
            name=f"{esc(row['variant'])} ({esc(row['method'])})",
            marker=dict(color=TARGET_COLORS[k % len(TARGET_COLORS)], size=14,
                        symbol=SINGLE_SYMBOLS[k % len(SINGLE_SYMBOLS)],
                        line=dict(color="#1D2733", width=1.5)),
            error_x=_err(pd.DataFrame([row]), "cost"),
            error_y=_err(pd.DataFrame([row]), "accuracy"),
            hovertext=[_hover(row, unit, info)], hovertemplate="%{hovertext}<extra></extra>"))
    return out


def _lines(means, frontier, *, family, severity) -> list:
    """The frontier step line and the static-mixing hull (flat beyond the best model)."""
    out = []
    front = frontier[(frontier["family"] == family) & (frontier["severity"] == severity)]
    if len(front):
        out.append(go.Scatter(x=front["cost"], y=front["accuracy"], mode="lines",
                              line=dict(color=FRONTIER_COLOR, width=2, shape="hv"),
                              name="Pareto frontier (seed means)", hoverinfo="skip"))
    singles = means[means["method"].isin(SINGLE_METHODS)]
    if len(singles):
        hull = static_mixing(singles)
        x = np.append(hull["cost"], max(means["cost"].max(), hull["cost"].max()))
        y = np.append(hull["accuracy"], hull["accuracy"].iloc[-1])
        out.append(go.Scatter(x=x, y=y, mode="lines", hoverinfo="skip",
                              line=dict(color=HULL_COLOR, width=1.5, dash="dot"),
                              name="static mixing of single models"))
    return out


def frontier_figure(agg, points, frontier, *, family, info=GENERIC,
                    severities=None) -> go.Figure:
    """(a) accuracy vs cost for one family, with buttons to switch the severity."""
    fam = select(agg, family=family)
    severities = _levels(fam["severity"], severities)
    fig, owner = go.Figure(), []
    for i, sev in enumerate(severities):
        traces = _severity_traces(agg, points, frontier, family=family, severity=sev,
                                  info=info)
        for t in traces:
            t.visible = i == 0
            fig.add_trace(t)
        owner += [i] * len(traces)
    buttons = [dict(label=esc(SEVERITY_NAMES.get(s, s)), method="update",
                    args=[{"visible": [o == i for o in owner]}]) for i, s in enumerate(severities)]
    fig.update_layout(
        **LAYOUT, height=560, margin=dict(t=70, r=20, b=60, l=70),
        updatemenus=[dict(type="buttons", direction="right", buttons=buttons, x=0.08, y=1.1,
                          xanchor="left", yanchor="bottom", showactive=True, pad=dict(r=4))],
        annotations=[dict(text="severity:", x=0, y=1.115, xref="paper", yref="paper",
                          showarrow=False, xanchor="left", yanchor="bottom")],
        xaxis_title=AXIS_TITLES.get(_unit(fam), "cost"), yaxis_title="accuracy",
        yaxis_tickformat=".0%", legend=dict(title_text="method", groupclick="togglegroup"))
    return fig


def _short(label: str, method: str) -> str:
    return label[len(method):].strip() if label.startswith(method) else label


def routing_figure(tables: dict, *, family, method, info=GENERIC) -> go.Figure:
    """(b) routing share per target, stacked bars, one bar per λ: the (τ, threshold) with the
    best val accuracy at that λ (the routing tables list every setting); one row per
    severity."""
    sevs = [s for s in ["all", *tables.get("severities", [])] if f"routing/{family}/{s}" in tables]
    agg = tables["aggregate"]
    chosen = best_on_val(agg[(agg["family"] == family) & (agg["method"] == method)], by=["lam"])
    fig = make_subplots(rows=len(sevs), cols=1, shared_xaxes=True, vertical_spacing=0.04)
    for row, sev in enumerate(sevs, start=1):
        t = tables[f"routing/{family}/{sev}"]
        t = t[t["method"] == method]
        t = t[t["setting_id"].isin(chosen)] if chosen else t
        x = [esc(_short(v, method)) for v in t["label"]]
        shares = [c for c in t.columns if c.startswith("share:")]
        for k, col in enumerate(shares):
            name = esc(col[len("share:"):])
            fig.add_trace(go.Bar(x=x, y=100 * t[col], name=name, legendgroup=name,
                                 showlegend=row == 1,
                                 marker_color=TARGET_COLORS[k % len(TARGET_COLORS)],
                                 hovertemplate=f"{name}: %{{y:.1f}}%<br>%{{x}}<extra></extra>"),
                          row=row, col=1)
        fig.update_yaxes(title_text=esc(SEVERITY_NAMES.get(sev, sev)), row=row, col=1)
    fig.update_layout(**LAYOUT, barmode="stack", height=140 + 170 * len(sevs),
                      margin=dict(t=30, r=20, b=60, l=80), legend_title_text="routed to",
                      bargap=0.25)
    fig.update_yaxes(range=[0, 100], ticksuffix="%")
    thr = " / threshold" if agg.loc[agg["setting_id"].isin(chosen), "threshold"].notna().any() \
        else ""
    what = f"; {info['tau']}{thr} chosen on val per {info['lam']}" if chosen else ""
    fig.update_xaxes(title_text=esc(f"{method} configuration{what}"), row=len(sevs), col=1)
    return fig



def _chosen_label(row: dict, info: dict) -> str:
    parts = [f"{info['tau']} = {row['tau']:g}" if not pd.isna(row["tau"]) else "",
             f"threshold = {row['threshold']:g}" if not pd.isna(row["threshold"]) else ""]
    return ", ".join(p for p in parts if p)


def severity_figure(agg, *, family, method, info=GENERIC, severities=None) -> go.Figure:
    """(c) test accuracy per severity across λ; at each λ the (τ, threshold) with the best val
    accuracy (`analysis.selection.best_on_val`), named in the title and the hover."""
    fam = agg[(agg["family"] == family) & (agg["method"] == method)]
    chosen = set(best_on_val(fam, by=["lam"]))
    rows = select(fam)
    rows = rows[rows["setting_id"].isin(chosen) & rows["accuracy"].notna()]
    what = " / ".join(w for w, col in ((info["tau"], "tau"), ("threshold", "threshold"))
                      if rows[col].notna().any())
    fig = go.Figure()
    lam = esc(info["lam"])
    for sev in _levels(rows["severity"], severities):
        s = rows[rows["severity"] == sev].sort_values("lam")
        fig.add_trace(go.Scatter(
            x=s["lam"], y=s["accuracy"], mode="lines+markers", legendgroup=sev,
            name=esc(SEVERITY_NAMES.get(sev, sev)),
            line=dict(color=SEVERITY_COLORS.get(sev, "#555"), width=3 if sev == "all" else 2,
                      dash="dash" if sev == "all" else "solid"),
            error_y=_err(s, "accuracy"),
            customdata=[esc(_chosen_label(r, info)) for r in s.to_dict("records")],
            hovertemplate=f"{esc(sev)}<br>{lam} = %{{x}}<br>%{{customdata}}<br>"
                          "accuracy %{y:.2%}<extra></extra>"))
    title = f"{what} chosen on val per {info['lam']} (best val accuracy)" if what else ""
    fig.update_layout(**LAYOUT, height=420, margin=dict(t=60, r=20, b=60, l=70),
                      legend_title_text="severity", title=dict(text=esc(title), font_size=13))
    fig.update_xaxes(title_text=lam)
    fig.update_yaxes(tickformat=".0%", title_text="test accuracy")
    return fig


def baseline_figure(baselines: pd.DataFrame, *, family, unit) -> go.Figure:
    """(d) accuracy and cost of every baseline row, horizontal bars coloured by method."""
    b = baselines[baselines["accuracy"].notna()].iloc[::-1]
    labels = [esc(v) for v in b["label"]]
    colors = [method_color(m) for m in b["method"]]
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=["accuracy", esc(AXIS_TITLES.get(unit, "cost"))])
    for col, metric in ((1, "accuracy"), (2, "cost")):
        fmt = ".2%" if metric == "accuracy" else ".4g"
        fig.add_trace(go.Bar(y=labels, x=b[metric], orientation="h", marker_color=colors,
                             error_x=_err(b, metric), showlegend=False,
                             hovertemplate=f"%{{y}}: %{{x:{fmt}}}<extra></extra>"),
                      row=1, col=col)
    fig.update_layout(**LAYOUT, height=120 + 30 * len(b), margin=dict(t=50, r=20, b=40, l=20))
    fig.update_xaxes(tickformat=".0%", col=1)
    fig.update_yaxes(automargin=True)
    return fig


def learned_methods(agg: pd.DataFrame, *, family) -> list:
    """Learned routers of the family with at least one successful test configuration."""
    rows = select(agg, family=family)
    return _methods(rows[is_learned(rows) & rows["accuracy"].notna()])
