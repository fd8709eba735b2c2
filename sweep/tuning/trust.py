"""RESULTS_DIR/tune-sha256.json: the sha256 of every file of the run's Tune experiment that Tune
unpickles on restore, kept current while the sweep runs, and checked by `--resume` before Ray
starts. Why, and why it stays current under SIGKILL: see the docstring of sweep/resume.py.
In the Ray layer because its recorder is a Tune callback (`Recorder`).

    {"format": 1, "files": {PATH RELATIVE TO THE EXPERIMENT: {sha256: unix time recorded}}}

A file has several accepted versions because storage lags the driver: Tune rewrites its state
in a local staging directory and uploads it in the background, so at a kill the stored copy
may be a few saves old. Versions recorded more than KEEP_S before the newest are dropped.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from typing import ClassVar

import pyarrow.fs as pafs
from ray import tune

from sweep.errors import UserError
from sweep.fs import join, open_fs, upload_file, write_json

LIST = "tune-sha256.json"
KEEP_S = 120.0                       # an upload to storage is assumed to take less than this
TUNER = "tuner.pkl"
MARKER = ".validate_storage_marker"  # Tune's empty write probe: never read for its content
STATE_PREFIX = "experiment_state-"


def _sha(stream) -> str:
    h = hashlib.sha256()
    for block in iter(lambda: stream.read(1 << 20), b""):
        h.update(block)
    return h.hexdigest()


def sha_local(path: str) -> str:
    with open(path, "rb") as f:
        return _sha(f)


def sha_fs(fs: pafs.FileSystem, path: str) -> str:
    with fs.open_input_stream(path) as f:
        return _sha(f)


class Ledger:
    """The list in memory ({rel: {sha: time}}) and where it is written (plus a copy on the
    shared results location, so a resume from there after losing the head can check too)."""

    def __init__(self, results_dir: str, *, mirror: str | None = None, files=None):
        self.path = os.path.join(results_dir, LIST)
        self.mirror = join(mirror, LIST) if mirror else None
        self.files: dict[str, dict[str, float]] = files or {}
        self._stat: dict[str, tuple] = {}        # staging path -> stat key when hashed

    @classmethod
    def load(cls, results_dir: str, *, mirror: str | None = None) -> "Ledger | None":
        try:
            with open(os.path.join(results_dir, LIST)) as f:
                data = json.load(f)
        except (OSError, ValueError):
            return None
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
            return None
        return cls(results_dir, mirror=mirror, files=files)

    def add(self, rel: str, sha: str, now: float) -> bool:
        """Record a version of REL; -> True if it was new."""
        versions = self.files.setdefault(rel, {})
        new = sha not in versions
        versions[sha] = now
        for old in [s for s, t in versions.items() if t < now - KEEP_S]:
            del versions[old]
        return new

    def save(self) -> None:
        write_json(self.path, {"format": 1, "files": self.files})
        if self.mirror:
            upload_file(self.path, self.mirror)

    # ------------------------------------------------------------------ what gets recorded

    def record_staging(self, staging: str) -> None:
        """Tune's driver staging directory (what Tune is about to upload): every top-level
        file (experiment state, search-algorithm state) and each trial directory's *.pkl
        (params.pkl, error.pkl). Top-level files are hashed every time (a rewrite may keep
        size and mtime); the write-once *.pkl files when their stat changes."""
        now, new = time.time(), False
        for entry in os.scandir(staging):
            if entry.is_file():
                new |= self.add(entry.name, sha_local(entry.path), now)
            elif entry.is_dir():
                for sub in os.scandir(entry.path):
                    if sub.name.endswith(".pkl") and sub.is_file():
                        st = sub.stat()
                        key = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
                        if self._stat.get(sub.path) != key:
                            self._stat[sub.path] = key
                            new |= self.add(f"{entry.name}/{sub.name}", sha_local(sub.path), now)
        if new:
            self.save()

    def record_stored(self, experiment: str, names: tuple[str, ...] | None = None) -> None:
        """Top-level files as they are in storage now (NAMES, or all): tuner.pkl, right after
        `Tuner()` wrote it there directly (no staging, no callback)."""
        fs, root = open_fs(experiment)
        now = time.time()
        for info in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)):
            name = info.base_name
            if info.type == pafs.FileType.File and name != MARKER and (
                    names is None or name in names):
                self.add(name, sha_fs(fs, info.path), now)
        self.save()

    def record_checkpoint(self, root: str, ckpt_dir: str) -> None:
        """A trial checkpoint on a local filesystem (state.pt, decisions.npz, metrics.json);
        the trial's checkpoints Tune has since deleted (num_to_keep) are forgotten."""
        now = time.time()
        for d, _, names in os.walk(ckpt_dir):
            for n in names:
                p = os.path.join(d, n)
                self.add(os.path.relpath(p, root), sha_local(p), now)
        trial = os.path.relpath(os.path.dirname(ckpt_dir), root) + "/"
        for rel in [r for r in self.files if r.startswith(trial) and "/checkpoint_" in r]:
            if not os.path.exists(os.path.join(root, rel)):
                del self.files[rel]
        self.save()


class Recorder(tune.Callback):
    """Driver-side: keeps `Recorder.ledger` current while Tune runs (set by `recording`).

    The instance is saved in tuner.pkl (RunConfig.callbacks) and comes back on restore, so it
    holds nothing of this run: where to write is the class attribute."""
    ledger: ClassVar[Ledger | None] = None

    def __init__(self):
        self._trials = None

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.__init__()

    def on_step_begin(self, iteration, trials, **info):
        self._trials = trials          # Tune's own list: trials it adds later appear in it

    def get_state(self):
        """Called inside Tune's experiment checkpoint, after it wrote its state files to the
        driver staging directory and BEFORE it starts uploading them to storage."""
        self._record()
        return None                    # stateless: Tune writes no callback-states-*.pkl

    def on_experiment_end(self, trials, **info):
        self._trials = trials          # a restored run with nothing left to do has no step
        self._record()

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        if self.ledger is not None and isinstance(checkpoint.filesystem, pafs.LocalFileSystem):
            self.ledger.record_checkpoint(trial.storage.experiment_fs_path, checkpoint.path)

    def _record(self):
        if self.ledger is not None and self._trials:
            self.ledger.record_staging(self._trials[0].storage.experiment_driver_staging_path)


@contextlib.contextmanager
def recording(ledger: Ledger):
    Recorder.ledger = ledger
    try:
        yield
    finally:
        Recorder.ledger = None


# ---------------------------------------------------------------------------- checking

def _refuse(experiment: str, rel: str, why: str):
    raise UserError(f"--resume: '{join(experiment, rel)}' {why} {LIST}; Tune would "
                    f"load it (tuner.pkl and the experiment state are unpickled, i.e. run as "
                    f"code), so the run is not resumed; resume only directories you trust")


def verify(results_dir: str, experiment: str) -> bool:
    """Check the experiment's files against RESULTS_DIR/tune-sha256.json (UserError if they
    differ). -> True when there is a saved experiment to restore, False when Tune never saved
    one (the resume then starts the sweep afresh and reads nothing of it)."""
    fs, root = open_fs(experiment)
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    except Exception as e:                                     # noqa: BLE001 (pyarrow)
        raise UserError(f"--resume: cannot list the Tune experiment '{experiment}': "
                        f"{str(e).strip().splitlines()[0] if str(e).strip() else e!r}")
    found = {os.path.relpath(i.path, root): i for i in infos if i.type == pafs.FileType.File}
    top = {rel for rel in found if "/" not in rel and rel != MARKER}
    if TUNER not in top or not any(r.startswith(STATE_PREFIX) for r in top):
        return False
    ledger = Ledger.load(results_dir)
    if ledger is None:
        raise UserError(f"--resume: '{results_dir}' has no readable {LIST}, so the Tune "
                        f"experiment '{experiment}' cannot be checked (Tune unpickles its "
                        f"tuner.pkl and experiment state, i.e. runs them as code); resume only "
                        f"runs written by this routesweep, or start a new run")
    for rel in sorted(top) + sorted(r for r in ledger.files if "/" in r and r in found):
        if rel not in ledger.files:
            _refuse(experiment, rel, "is not in the list of files the run recorded in")
        if sha_fs(fs, found[rel].path) not in ledger.files[rel]:
            _refuse(experiment, rel, "differs from the sha256 the run recorded in")
    return True
