"""The quiet console (sweep/console.py, sweep/tuning/progress.py): one live line of the trials
instead of Tune's tables, phases, the summary ending with report.html; under 150 lines for the
default run. Fast: the line and the Tune callback driven by hand (no Ray started); slow: the
console of `python -m sweep.run --smoke-test` counted."""
import io
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from sweep import console
from sweep.config import load_config
from sweep.console import STEPS, TrialLine
from sweep.run import main
from sweep.tuning.progress import Progress, counts
from tests import fake_run as F

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = {"gater": 63, "em_router": 54}          # the default run's grid: 117 trials


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        self.t += 1.5
        return self.t


def _sweep(line: TrialLine, *, failures=()) -> None:
    """The default grid run trial by trial on 2 slots; trials in FAILURES fail."""
    total = sum(DEFAULT.values())
    for done in range(total + 1):
        fams, left = {}, done
        for name, n in DEFAULT.items():
            fams[name] = (min(n, left), n)
            left -= min(n, left)
        failed = sum(1 for f in failures if f < done)
        line.update(done=done, failed=failed, running=min(2, total - done), total=total,
                    families=fams)
    line.close()


def test_a_pipe_gets_a_line_per_tenth_of_the_trials():
    out = io.StringIO()
    _sweep(TrialLine(stream=out, tty=False, clock=_Clock()))
    lines = out.getvalue().splitlines()
    assert len(lines) == STEPS + 1                  # 0/117, then 10 %, 20 %, ... 100 %
    assert lines[0].startswith("[sweep] 0/117 trials done (0 failed, 2 running)")
    assert lines[-1].startswith("[sweep] 117/117 trials done (0 failed, 0 running) | "
                                "gater 63/63 | em_router 54/54")
    assert "left" in lines[5] and "left" not in lines[-1]


def test_each_failure_adds_one_line():
    out = io.StringIO()
    _sweep(TrialLine(stream=out, tty=False, clock=_Clock()), failures=(10, 11, 50))
    lines = out.getvalue().splitlines()
    assert len(lines) <= STEPS + 1 + 3
    assert "(3 failed" in lines[-1]


def test_a_terminal_gets_one_line_redrawn():
    out = io.StringIO()
    _sweep(TrialLine(stream=out, tty=True, clock=_Clock()))
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n") and text.count("\r") > 100
    assert text.rsplit("\r", 1)[-1].startswith("[sweep] 117/117 trials done")


def _trial(family, status):
    return types.SimpleNamespace(status=status, config={"point": {"family": family}})


def test_counts_from_tunes_trial_list():
    trials = [_trial("experts", "TERMINATED"), _trial("experts", "RUNNING"),
              _trial("exits", "ERROR"), _trial("exits", "PENDING")]
    assert counts(trials) == {"done": 2, "failed": 1, "running": 1,
                              "families": {"gater": (1, 2), "em_router": (1, 2)}}
    # in on_trial_complete Tune has not yet marked the completing trial TERMINATED
    assert counts(trials, trials[1], "TERMINATED")["done"] == 3


def test_progress_callback_drives_the_line():
    out = io.StringIO()
    cb = Progress(TrialLine(stream=out, tty=False, clock=_Clock()))
    cb.setup(total_num_samples=2)
    trials = [_trial("experts", "PENDING"), _trial("exits", "PENDING")]
    cb.on_step_end(iteration=0, trials=trials)
    trials[0].status = "RUNNING"
    cb.on_trial_complete(iteration=1, trials=trials, trial=trials[0])
    trials[0].status, trials[1].status = "TERMINATED", "ERROR"
    cb.on_trial_error(iteration=2, trials=trials, trial=trials[1])
    cb.on_experiment_end(trials=trials)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[sweep] 0/2") and lines[1].startswith("[sweep] 1/2")
    assert lines[-1].startswith("[sweep] 2/2 trials done (1 failed, 0 running)")
    assert len(lines) == 3


def test_verbose_brings_tunes_tables_back_without_changing_the_config():
    cfg = load_config(None, [])
    assert cfg.sweep.tune_verbose == 0
    try:
        assert console.quiet(cfg) and console.tune_verbosity(cfg) == 0
        console.set_verbose(True)
        assert not console.quiet(cfg) and console.tune_verbosity(cfg) == 1
        assert cfg.sweep.tune_verbose == 0
        two = load_config(None, ["sweep.tune_verbose=2"])
        assert console.tune_verbosity(two) == 2
    finally:
        console.set_verbose(False)
    assert console.tune_verbosity(load_config(None, ["sweep.tune_verbose=1"])) == 1


def test_a_whole_faked_run_prints_phases_and_a_short_summary(tmp_path, monkeypatch, capsys):
    F.patch(monkeypatch)
    assert main(F.args(tmp_path / "run", tmp_path)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [x.split("]")[0] + "]" for x in lines if x.startswith("[")][:4] == [
        "[data]", "[features]", "[ray]", "[tables]"]
    assert len(lines) < 150


@pytest.mark.slow
def test_the_smoke_runs_console_is_short(tmp_path):
    """`python -m sweep.run --smoke-test` (Ray, Tune, the report): under 150 lines, with the
    phases, the live line and the summary ending with report.html's path."""
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "sweep.run", "--smoke-test", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = (proc.stdout + proc.stderr).splitlines()
    assert len(lines) < 150, "\n".join(lines)
    assert any(x.startswith("[sweep] 4/4 trials done (0 failed") for x in lines)
    assert not any("Trial status" in x or "╭" in x for x in lines)      # no Tune tables
    assert proc.stdout.rstrip().splitlines()[-1] == f"report: {out / 'report.html'}"
