"""The results directory: what `--out` may be, and how a new run replaces an old one.

A run is written straight into OUT when OUT is absent or an empty directory. `--overwrite` on
an existing routesweep run builds the new run in a sibling, OUT.new-<time> (same parent, so the
final rename is atomic), and swaps it in only once it is complete (tables, manifest, report).
Until then OUT is untouched; if the new run fails (exception, full disk, Ctrl-C, a killed
driver) the sibling holds the unfinished run, with "replaces": OUT in its manifest, and
`--resume OUT.new-<time>` finishes it and then replaces OUT.

`--overwrite` never deletes a directory that is not a routesweep run (its manifest.json with
RUN_KEYS): that is bad input (exit 2), checked before any compute.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil

from sweep.errors import UserError

RUN_KEYS = ("routesweep_version", "status", "config", "feature_store", "storage")
MANIFEST = "manifest.json"


def read_manifest(path: str) -> dict | None:
    """PATH/manifest.json when it is a routesweep manifest (a dict with RUN_KEYS), else None."""
    try:
        with open(os.path.join(path, MANIFEST)) as f:
            m = json.load(f)
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) and all(k in m for k in RUN_KEYS) else None


def _is_empty_dir(path: str) -> bool:
    return os.path.isdir(path) and not os.listdir(path)


def replaceable(path: str) -> bool:
    """May a new run take PATH's place? Absent, an empty directory, or a routesweep run."""
    return not os.path.lexists(path) or _is_empty_dir(path) or (
        os.path.isdir(path) and not os.path.islink(path) and read_manifest(path) is not None)


def _check_creatable(out: str) -> None:
    """OUT's missing parts can be created: the nearest existing ancestor is a writable
    directory and no new name is too long."""
    path = os.path.abspath(out)
    probe, missing = path, []
    while not os.path.lexists(probe):
        probe, name = os.path.dirname(probe), os.path.basename(probe)
        missing.append(name)
    if missing and not os.path.isdir(probe):
        raise UserError(f"--out '{out}': '{probe}' is not a directory; choose another --out")
    if missing and not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"--out '{out}': cannot write results under '{probe}'; "
                        f"choose a writable --out")
    limit = os.pathconf(probe, "PC_NAME_MAX") if missing else 255
    long = [n for n in missing if len(os.fsencode(n)) > limit]
    if long:
        raise UserError(f"--out '{out}': the name '{long[0][:40]}...' is longer than this "
                        f"filesystem allows ({limit} bytes)")


def check_out(out: str, overwrite: bool) -> None:
    """Bad --out -> UserError (exit 2), before any compute; nothing is touched."""
    if os.path.lexists(out) and not os.path.isdir(out):
        raise UserError(f"--out '{out}' exists and is not a directory")
    if os.path.isdir(out) and os.listdir(out):
        if not overwrite:
            raise UserError(f"--out '{out}' already exists; choose another --out or pass "
                            f"--overwrite")
        if os.path.islink(out):
            raise UserError(f"--out '{out}' is a symbolic link; give the directory it points "
                            f"to ('{os.path.realpath(out)}') to overwrite it")
        if read_manifest(out) is None:
            raise UserError(f"--overwrite: '{out}' is not a routesweep results directory (no "
                            f"manifest.json with {', '.join(RUN_KEYS)}); it is left as it is: "
                            f"choose another --out, or delete it yourself")
        parent = os.path.dirname(os.path.abspath(out))
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UserError(f"--overwrite: the new run is built beside '{out}', but "
                            f"'{parent}' is not writable")
        return
    if os.path.isdir(out):
        if not os.access(out, os.W_OK | os.X_OK):
            raise UserError(f"--out '{out}' is not writable; choose a writable --out")
        return
    _check_creatable(out)


def sibling(out: str, tag: str) -> str:
    """A new, unused name beside OUT: OUT.<tag>-<YYYYmmdd-HHMMSS>[-n]."""
    base = f"{os.path.abspath(out)}.{tag}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    path, n = base, 1
    while os.path.lexists(path):
        path, n = f"{base}-{n}", n + 1
    return path


def begin(out: str, overwrite: bool) -> tuple[str, bool]:
    """Create the directory the new run is written to: OUT itself (absent or empty), or a
    sibling that replaces OUT when complete (OUT holds a run and `overwrite`).
    -> (its path, whether this call created it)."""
    check_out(out, overwrite)
    if os.path.isdir(out) and os.listdir(out):
        work = sibling(out, "new")
        os.makedirs(work)
        return work, True
    created = not os.path.isdir(out)
    os.makedirs(out, exist_ok=True)
    return out, created


def swap(work: str, dest: str) -> None:
    """Put the finished run WORK in DEST's place (DEST: absent, empty or a routesweep run).

    Two renames in one directory: DEST -> DEST.old-<time>, WORK -> DEST; then the old run is
    deleted. A driver killed between the renames leaves both runs, under those two names."""
    if os.path.abspath(work) == os.path.abspath(dest):
        return
    if not replaceable(dest):
        raise UserError(f"'{dest}' changed during the run and is no longer a routesweep run; "
                        f"left as it is: the new run is in '{work}'")
    old = sibling(dest, "old") if os.path.lexists(dest) else None
    if old:
        os.rename(dest, old)
    try:
        os.rename(work, dest)
    except BaseException:
        if old:
            os.rename(old, dest)
        raise
    if old:
        shutil.rmtree(old, ignore_errors=True)
        if os.path.lexists(old):
            print(f"routesweep: warning: could not delete the previous run, now in '{old}'")


def where(work: str, dest: str) -> str:
    """One sentence: where a run that stopped early is, and how to finish it."""
    if not os.path.lexists(work):
        return f"the new run is complete in '{dest}'"
    m = read_manifest(work)
    if m is None:
        return (f"nothing of the new run was kept; '{dest}' is untouched" if work != dest
                else f"the run wrote nothing resumable to '{work}'")
    if m["status"] != "running" and work != dest:
        return (f"the finished new run is in '{work}' (it could not replace '{dest}', which "
                f"still holds the previous run)")
    resume = f"finish it with `python -m sweep.run --resume {work}`"
    if work != dest:
        return (f"the previous run in '{dest}' is untouched; the unfinished new run is in "
                f"'{work}': {resume} (it then replaces '{dest}'), or delete it")
    return f"the unfinished run is in '{work}': {resume}"


@contextlib.contextmanager
def unfinished(work: str, dest: str, *, created: bool):
    """Around everything that writes WORK: on any failure (exception, full disk, Ctrl-C) the
    error gets a note saying where the run is. The manifest is written first, so a WORK
    without one holds nothing to resume: removed if this run created it."""
    try:
        yield
    except BaseException as e:
        note = where(work, dest)
        if created and read_manifest(work) is None:
            shutil.rmtree(work, ignore_errors=True)
        e.add_note(f"routesweep: {note}")
        raise
