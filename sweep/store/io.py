"""The feature store on disk: one `.npy` per array (no pickle), a meta.json, and a manifest of
sha256 hashes written LAST. A directory without a valid manifest is incomplete and rebuilt.

    CACHE/<part>-<key>/meta.json
    CACHE/<part>-<key>/<split>/<array>.npy
    CACHE/<part>-<key>/MANIFEST.json      {"files": {relpath: sha256}}

Writes go to a temporary sibling directory that is renamed into place, so a killed writer
never leaves something that looks complete. A complete part is never modified or removed: two
runs sharing a cache directory may both write the same part (same key, same arrays); the first
rename wins and the other writer discards its copy, so a reader that found a part complete
reads it to the end. Only an incomplete leftover (a killed writer's) is replaced.
`part_lock` lets a second run wait for the first one's build instead of building twice.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import uuid

import numpy as np

from sweep import fs

SPLITS = ("train", "val", "test")


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def part_lock(path: str, *, kind: str = "build", on_wait=None):
    """Exclusive advisory lock (fcntl.flock) on `<parent>/.<name>.<kind>.lock` while the block
    runs; `on_wait()` is called first if another process holds it. The kernel releases it when
    its holder dies, so a killed run never blocks the next. The lock file stays (removing it
    would let two processes lock two different files). A filesystem without flock: no lock."""
    parent, name = os.path.split(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    with open(os.path.join(parent, f".{name}.{kind}.lock"), "a") as f:
        locked = True
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(f, fcntl.LOCK_EX)
        except OSError:                 # no flock here (some network / FUSE filesystems)
            locked = False
        try:
            yield
        finally:
            if locked:
                fcntl.flock(f, fcntl.LOCK_UN)


def install(tmp: str, path: str) -> bool:
    """Rename the complete part directory `tmp` to `path`. -> True if installed; False if a
    complete part already was at `path` (it is kept, `tmp` removed). An incomplete one there is
    first renamed aside, then removed. Serialised by a lock, so the check and the rename are
    one step for writers; readers need no lock (a complete part never changes)."""
    with part_lock(path, kind="install"):
        if os.path.exists(path):
            if is_complete(path):
                shutil.rmtree(tmp, ignore_errors=True)
                return False
            stale = f"{path}.stale-{uuid.uuid4().hex[:8]}"
            os.rename(path, stale)
            shutil.rmtree(stale, ignore_errors=True)
        os.rename(tmp, path)        # a directory that appeared meanwhile (no lock): OSError
        return True


def save_part(path: str, arrays: dict[str, dict[str, np.ndarray]], meta: dict) -> bool:
    """arrays {split: {name: ndarray}} + meta -> `path`, atomically. -> False if a complete
    part was there already (another writer won; it is kept, this copy discarded)."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = fs.make_temp_dir(parent)             # 0o777 less the umask, not 0700
    try:
        _write(tmp, arrays, meta)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return install(tmp, path)


def _write(tmp: str, arrays: dict, meta: dict) -> None:
    """The part's files into the empty directory `tmp`; MANIFEST.json (the hashes) last."""
    files = {}
    for split, named in arrays.items():
        os.makedirs(os.path.join(tmp, split))
        for name, a in named.items():
            rel = f"{split}/{name}.npy"
            np.save(os.path.join(tmp, rel), np.ascontiguousarray(a), allow_pickle=False)
            files[rel] = _sha256(os.path.join(tmp, rel))
    with open(os.path.join(tmp, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, default=float)
    files["meta.json"] = _sha256(os.path.join(tmp, "meta.json"))
    with open(os.path.join(tmp, "MANIFEST.json"), "w") as f:
        json.dump({"files": files}, f, indent=1)


def is_complete(path: str, *, verify_hashes: bool = True) -> bool:
    """True when the manifest exists and every listed file is there (and hashes match)."""
    try:
        with open(os.path.join(path, "MANIFEST.json")) as f:
            files = json.load(f)["files"]
        return all(os.path.isfile(os.path.join(path, rel)) and
                   (not verify_hashes or _sha256(os.path.join(path, rel)) == digest)
                   for rel, digest in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def load_part(path: str) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """-> ({split: {name: ndarray}}, meta). Arrays are read without pickle."""
    with open(os.path.join(path, "MANIFEST.json")) as f:
        files = json.load(f)["files"]
    arrays: dict = {}
    for rel in files:
        if rel.endswith(".npy"):
            split, name = rel[:-4].split("/", 1)
            arrays.setdefault(split, {})[name] = np.load(os.path.join(path, rel),
                                                         allow_pickle=False)
    with open(os.path.join(path, "meta.json")) as f:
        return arrays, json.load(f)
