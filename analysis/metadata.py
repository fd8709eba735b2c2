"""The report's "Run metadata" section: run status and times, the code's git commit, hardware
(CPU / GPU model), package versions, timings, dataset, the measured costs and the resolved
configuration.

Numbers are rounded for reading (`rounded`: 4 significant digits, e.g. 3.692 ms, not
3.6918734312057495); the resolved configuration is shown as written. Every string is escaped.
"""
from __future__ import annotations

import html
import json

import pandas as pd

from analysis.markup import section, to_html

DIGITS = 4   # significant digits of a number in the metadata


def rounded(value):
    """`value` with every float (also inside dicts and lists) at DIGITS significant digits."""
    if isinstance(value, float):
        return float(f"{value:.{DIGITS}g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v) for v in value]
    return value


def _value(v) -> str:
    v = rounded(v)
    return v if isinstance(v, str) else json.dumps(v, default=str, ensure_ascii=False)


def kv(mapping) -> str:
    """A two-column table of a dict; nested values as compact JSON; all escaped."""
    if not isinstance(mapping, dict) or not mapping:
        return '<p class="none">(not recorded)</p>'
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_value(v))}</td></tr>"
                   for k, v in mapping.items())
    return f'<div class="tbl-wrap"><table class="tbl"><tbody>{rows}</tbody></table></div>'


def _dict_frame(nested: dict) -> pd.DataFrame:
    return pd.DataFrame([{"name": k, **{c: _value(x) for c, x in v.items()}}
                         for k, v in nested.items()]).fillna("")


def costs_html(costs: dict) -> str:
    """Per-model cost tables (dicts of dicts), small dicts as key-value, scalars together."""
    if not isinstance(costs, dict) or not costs:
        return '<p class="none">(not recorded)</p>'
    parts, scalars = [], {}
    for key, value in costs.items():
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            parts.append(f"<h4>{html.escape(str(key))}</h4>" + to_html(_dict_frame(value)))
        elif isinstance(value, dict):
            parts.append(f"<h4>{html.escape(str(key))}</h4>" + kv(value))
        else:
            scalars[key] = value
    if scalars:
        parts.append("<h4>how measured</h4>" + kv(scalars))
    return '<div class="meta-grid">' + "".join(f"<div>{p}</div>" for p in parts) + "</div>"


def metadata_html(manifest: dict) -> str:
    m = manifest or {}
    run = {k: m.get(k) for k in ("routesweep_version", "status", "config_name", "created",
                                 "finished") if k in m}
    small = [section(title, kv(m.get(key) if key else run), level=3)
             for title, key in (("Run", None), ("Code", "code"), ("Hardware", "hardware"),
                                ("Package versions", "versions"), ("Timings (s)", "timings"),
                                ("Dataset", "dataset"))]
    parts = ['<div class="meta-grid">' + "".join(f"<div>{x}</div>" for x in small) + "</div>",
             section("Measured costs", costs_html(m.get("costs")), level=3),
             section("Resolved configuration", "<pre>" + html.escape(json.dumps(
                 m.get("config", {}), indent=2, default=str)) + "</pre>", level=3)]
    return section("Run metadata", "\n".join(parts), anchor="metadata")
