"""Open report.html from disk in headless Chromium: every figure renders, no script error,
user strings stay text. Needs the Debian package `chromium` (apt-get install -y chromium)."""
import re
import shutil
import subprocess

import pytest

from analysis.report import ONERROR, write_report
from tests.fake_results import write_fake_results, write_xss_results

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH (Debian: apt-get install -y chromium)")]
FIGURE_DIV = re.compile(r'<div[^>]*class="[^"]*\bjs-plotly-plot\b')
ALERT_SPY = ("<script>window.alert=function(m){document.documentElement.setAttribute("
             "'data-alert',String(m));};</script>")


def _chromium(*args, timeout=120) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage",
           "--hide-scrollbars", "--virtual-time-budget=10000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _dom(path) -> str:
    proc = _chromium("--dump-dom", path.resolve().as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_every_figure_renders_without_script_errors(tmp_path):
    report = write_report(write_fake_results(tmp_path / "run"))
    dom = _dom(report)
    expected = int(re.search(r'name="routesweep-figures" content="(\d+)"', dom).group(1))
    assert expected == 8
    assert len(FIGURE_DIV.findall(dom)) == expected  # Plotly adds the class once drawn
    assert 'class="script-error"' not in dom, re.findall(r'script-error">([^<]*)', dom)
    assert dom.count('class="main-svg"') >= expected
    folds = int(re.search(r'data-folds="(\d+)"', dom).group(1))   # long tables filled in
    assert folds >= 1 and dom.count('<div data-fold="') == folds
    assert '<div data-fold="0"><div class="tbl-wrap">' in dom
    assert 'id="verdict"' in dom and "router better" in dom
    shot = tmp_path / "report.png"
    proc = _chromium(f"--screenshot={shot}", "--window-size=1400,3000", report.resolve().as_uri())
    assert proc.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000


def test_script_error_marker_catches_errors(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(f"<!doctype html><html><head>{ONERROR}</head><body>"
                    '<div id="script-errors" hidden></div><script>notDefined();</script>'
                    "</body></html>")
    assert 'class="script-error"' in _dom(page)


def test_markup_in_user_strings_renders_as_text(tmp_path):
    report = write_report(write_xss_results(tmp_path / "xss"))
    spied = report.with_name("spied.html")
    spied.write_text(report.read_text(encoding="utf-8").replace("<head>", "<head>" + ALERT_SPY, 1),
                     encoding="utf-8")
    dom = _dom(spied)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom  # shown literally in the header
    assert not re.search(r"<html[^>]*data-alert", dom)  # no alert() ran
    assert "&lt;img src=x onerror=alert(2)&gt;</text>" in dom  # legend shows the literal name
    assert not re.search(r'<img[^>]*src="x"', dom)  # no injected element
    assert "pwned" not in dom.split("</title>")[0]
    assert 'class="script-error"' not in dom
    assert len(FIGURE_DIV.findall(dom)) == 8
