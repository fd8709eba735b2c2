"""How report.html carries plotly.js and its figures: compressed, once, still offline.

plotly.js alone is 4.8 MB (v4.1 min), the figures of a default run several more: too much for
a page to mail or load. So the page holds two gzip + base64 blocks (`<script type=
"application/gzip-base64">`, inert), decoded in the browser by `LOADER` with the standard
`DecompressionStream` (Chromium 80+, Firefox 113+, Safari 16.4+; an older browser shows one
line saying so):

* `plotly-js`: plotly.js exactly as the plotly package ships it (gzip: ~1.4 MB, base64 ~1.9 MB);
* `figure-data`: [{"id", "data", "layout", "config"}] of every figure, floats rounded to
  `DIGITS` significant digits (plotly's binary arrays, {"dtype", "bdata"}, become rounded
  lists first: raw float64 bits do not compress).

Long tables (`Folds`): the first `HEAD_ROWS` rows stay in the page as HTML; the whole table
goes into one more block, `folded-tables` (a JSON list of the tables' HTML), put into each
table's closed `<details>` by `FOLD_LOADER` when the page opens.

Every point is still in the page; nothing is fetched. `figures_in(page)` decodes the figures
again (tests read them). The blocks are deterministic (gzip mtime 0).
"""
from __future__ import annotations

import base64
import functools
import gzip
import json
import re

import numpy as np
import plotly.io as pio
from plotly.offline import get_plotlyjs

DIGITS = 5                     # significant digits of every float in the figures
HEAD_ROWS = 10                 # rows of a long table shown before its fold
_BLOCK = '<script type="application/gzip-base64" id="{id}">{b64}</script>'
_DTYPES = {"f8": "<f8", "f4": "<f4", "i1": "i1", "u1": "u1", "i2": "<i2", "u2": "<u2",
           "i4": "<i4", "u4": "<u4", "i8": "<i8", "u8": "<u8"}


def pack(text: str) -> str:
    """gzip (level 9, mtime 0) + base64 of TEXT (UTF-8)."""
    return base64.b64encode(gzip.compress(text.encode("utf-8"), 9, mtime=0)).decode("ascii")


def unpack(b64: str) -> str:
    return gzip.decompress(base64.b64decode(b64)).decode("utf-8")


@functools.lru_cache(maxsize=1)
def plotly_block() -> str:
    """The `plotly-js` block (compressed once per process)."""
    return _BLOCK.format(id="plotly-js", b64=pack(get_plotlyjs()))


def _round(value):
    """Floats to DIGITS significant digits, binary arrays to rounded lists, recursively."""
    if isinstance(value, float):
        return float(f"{value:.{DIGITS}g}") if np.isfinite(value) else None
    if isinstance(value, list):
        return [_round(v) for v in value]
    if isinstance(value, dict):
        if set(value) >= {"dtype", "bdata"} and value["dtype"] in _DTYPES:
            arr = np.frombuffer(base64.b64decode(value["bdata"]), _DTYPES[value["dtype"]])
            if "shape" in value:
                arr = arr.reshape([int(n) for n in str(value["shape"]).split(",")])
            return _round(arr.tolist())
        return {k: _round(v) for k, v in value.items()}
    return value


def figure_spec(fig, div_id: str, config: dict) -> dict:
    """One figure as the loader draws it: {"id", "data", "layout", "config"}, floats rounded."""
    spec = json.loads(pio.to_json(fig, validate=False))
    return {"id": div_id, "data": _round(spec.get("data", [])),
            "layout": _round(spec.get("layout", {})), "config": config}


def figures_block(specs: list) -> str:
    """The `figure-data` block."""
    text = json.dumps(specs, separators=(",", ":"), ensure_ascii=False)
    return _BLOCK.format(id="figure-data", b64=pack(text))


def figures_in(page: str) -> list:
    """The figure specs a page carries (the inverse of figures_block)."""
    m = re.search(r'<script type="application/gzip-base64" id="figure-data">([^<]*)</script>',
                  page)
    return json.loads(unpack(m.group(1))) if m else []


class Folds:
    """The long tables of one page (module doc): `table(head, full, n)` -> HTML in place,
    `block()` -> the compressed block and its loader ('' without long tables)."""

    def __init__(self):
        self.parts = []

    def table(self, head_html: str, full_html: str, n_rows: int) -> str:
        self.parts.append(full_html)
        return (f'{head_html}<details class="fold"><summary>all {n_rows} rows</summary>'
                f'<div data-fold="{len(self.parts) - 1}"></div></details>')

    def block(self) -> str:
        if not self.parts:
            return ""
        text = json.dumps(self.parts, separators=(",", ":"), ensure_ascii=False)
        return _BLOCK.format(id="folded-tables", b64=pack(text)) + FOLD_LOADER


def folded_in(page: str) -> list:
    """The folded tables' HTML a page carries (the inverse of Folds.block)."""
    m = re.search(r'<script type="application/gzip-base64" id="folded-tables">([^<]*)'
                  r'</script>', page)
    return json.loads(unpack(m.group(1))) if m else []


# base64 -> gzip -> text in the browser (both loaders)
_GUNZIP = """function fail(m){if(window.onerror){window.onerror(m,'report.html',0);}}
function bytes(id){var s=atob(document.getElementById(id).textContent.trim());
var b=new Uint8Array(s.length);for(var i=0;i<s.length;i++){b[i]=s.charCodeAt(i);}return b;}
function gunzip(id){var z=new Blob([bytes(id)]).stream().pipeThrough(
new DecompressionStream('gzip'));return new Response(z).text();}
if(typeof DecompressionStream==='undefined'){fail('this browser cannot decompress the '+
'figures and tables (DecompressionStream): open report.html in a browser from 2023 or '+
'later');return;}"""
# Fills every <div data-fold="k"> with table k; <html data-folds="N"> when done.
FOLD_LOADER = "<script>(function(){" + _GUNZIP + """
gunzip('folded-tables').then(function(text){var parts=JSON.parse(text);
document.querySelectorAll('div[data-fold]').forEach(function(d){
d.innerHTML=parts[Number(d.getAttribute('data-fold'))];});
document.documentElement.setAttribute('data-folds',String(parts.length));
}).catch(function(e){fail(String(e&&e.stack||e));});})();</script>"""
# Decodes both blocks, runs plotly.js, draws every figure into its div; errors go to the
# page's window.onerror (the report's #script-errors box). <html data-figures="N"> when done.
LOADER = "<script>(function(){" + _GUNZIP + """
gunzip('plotly-js').then(function(js){var s=document.createElement('script');s.textContent=js;
document.head.appendChild(s);return gunzip('figure-data');}).then(function(text){
var figs=JSON.parse(text),p=Promise.resolve();figs.forEach(function(f){p=p.then(function(){
return Plotly.newPlot(f.id,f.data,f.layout,f.config);});});return p.then(function(){
document.documentElement.setAttribute('data-figures',String(figs.length));});
}).catch(function(e){fail(String(e&&e.stack||e));});})();</script>"""
