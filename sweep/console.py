"""The console of a run: quiet by default, Tune's own tables with --verbose.

Quiet (the default: `sweep.tune_verbose` 0 and no --verbose) a run prints its phases (one
line each, the feature store's progress bars), ONE live line of the sweep's trials
(`TrialLine`, fed by the Tune callback `sweep.tuning.progress.Progress`) and the summary, which
ends with the path of report.html: under 150 lines for the default run. Ray's own output is
kept off the console: workers' stdout/stderr stay in Ray's log files (`ray.init(log_to_driver=
False)`), and the driver's "ray" logger shows errors only (Tune's tables are off: verbose 0;
a failed trial's traceback, logged as an error, still shows).

`--verbose` (`set_verbose(True)`), or `sweep.tune_verbose` 1 / 2, brings back Tune's status
table and each trial's config and result, the workers' output and Ray's INFO / WARNING lines.
--verbose changes only the console, not the config: a run started quietly resumes verbosely.
"""
from __future__ import annotations

import logging
import os
import sys
import time

_VERBOSE = {"on": False}
STEPS = 10                   # a pipe (CI, a log file) gets a line per 1/STEPS of the trials


def set_verbose(on: bool) -> None:
    _VERBOSE["on"] = bool(on)


def tune_verbosity(cfg) -> int:
    """Tune's verbose level: the config's `sweep.tune_verbose`, at least 1 with --verbose."""
    return max(int(cfg.sweep.tune_verbose), 1 if _VERBOSE["on"] else 0)


def quiet(cfg) -> bool:
    return tune_verbosity(cfg) == 0


def quiet_ray_logs() -> None:
    """The driver's "ray" logger (Ray core, Tune) at ERROR: no start-up notices, no warnings.
    And Tune's console engine that is silent at verbose 0 (RAY_AIR_NEW_OUTPUT=0, Tune's
    documented switch: the new engine still prints its experiment box and the results path
    at verbose 0); unless the user set it."""
    logging.getLogger("ray").setLevel(logging.ERROR)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


def phase(name: str, text: str, stream=None) -> None:
    """One phase line, e.g. '[ray] local Ray started (2.4 s)'."""
    print(f"[{name}] {text}", file=stream or sys.stdout, flush=True)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class TrialLine:
    """The sweep's live line: '[sweep] 47/117 trials done (0 failed, 2 running) | gater 30/63 |
    em_router 17/54 | 1m05s, ~1m40s left'.

    On a terminal the line is redrawn in place ('\\r') at every change and ended once; on
    anything else (a pipe, a file) a line is written each time another 1/STEPS of the trials
    has finished, when a trial fails, and at the end: at most STEPS + failures + 1 lines.
    `stream` None: sys.stdout at each write (the Tune callback holding this is pickled)."""

    def __init__(self, *, stream=None, tty: bool | None = None, clock=time.monotonic):
        self.stream, self.tty, self.clock = stream, tty, clock
        self.start, self.printed_step, self.failed, self.last = None, -1, 0, ""

    def _out(self):
        return self.stream if self.stream is not None else sys.stdout

    def _is_tty(self) -> bool:
        if self.tty is not None:
            return self.tty
        isatty = getattr(self._out(), "isatty", None)
        return bool(isatty and isatty())

    def text(self, *, done, failed, running, total, families) -> str:
        """families: {name: (done, total)}, in the order to show."""
        now = self.clock()
        self.start = now if self.start is None else self.start
        elapsed = now - self.start
        parts = [f"[sweep] {done}/{total} trials done ({failed} failed, {running} running)"]
        parts += [f"{name} {d}/{n}" for name, (d, n) in families.items()]
        when = _clock(elapsed)
        if 0 < done < total:
            when += f", ~{_clock(elapsed / done * (total - done))} left"
        return " | ".join(parts + [when])

    def update(self, *, done, failed, running, total, families) -> None:
        line = self.text(done=done, failed=failed, running=running, total=total,
                         families=families)
        out = self._out()
        if self._is_tty():
            if line != self.last:
                out.write("\r" + line.ljust(len(self.last)))
                out.flush()
        else:
            step = done * STEPS // max(total, 1)
            if step > self.printed_step or failed > self.failed:
                out.write(line + "\n")
                out.flush()
                self.printed_step = step
        self.last, self.failed = line, failed

    def close(self) -> None:
        """End the live line (a newline on a terminal; the last state on a pipe if unsaid)."""
        out = self._out()
        if self._is_tty() and self.last:
            out.write("\n")
        elif self.last and self.printed_step < STEPS:
            out.write(self.last + "\n")
            self.printed_step = STEPS
        out.flush()
