"""Shared storage: a local directory or a URI (s3://, gs://, file://, ...) through pyarrow.fs.

`sweep.storage_path` holds what must outlive one machine or one Ray session:

    STORAGE/tune/<run>/        Tune's experiment state and per-epoch trial checkpoints
    STORAGE/cache/<part-key>/  the feature store's content-addressed parts (a mirror of cache_dir)
    STORAGE/results/<run>/     manifest.json, points/routes/decisions.parquet, report.html

Without `storage_path` everything stays local: Tune under OUT/tune, the cache in cache_dir.
Uploads write MANIFEST.json (a part) / manifest.json (a run) last, so a reader never takes a
half-copied directory for a complete one.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import uuid

import pyarrow.fs as pafs

from sweep.store import io as store_io
from sweep.errors import UserError


def is_uri(path: str) -> bool:
    return "://" in str(path)


def open_fs(location: str) -> tuple[pafs.FileSystem, str]:
    """location (dir or URI) -> (filesystem, path inside it); UserError if it cannot be opened."""
    if not is_uri(location):
        return pafs.LocalFileSystem(), os.path.abspath(location)
    try:
        return pafs.FileSystem.from_uri(location)
    except Exception as e:                                    # noqa: BLE001 (pyarrow raises many)
        raise UserError(f"storage '{location}' cannot be opened: {_first_line(e)}")


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def check_storage(location: str | None) -> None:
    """Fail early (exit 2) when sweep.storage_path is set but unusable."""
    if not location:
        return
    if not is_uri(location):
        probe = os.path.abspath(location)
        if os.path.isfile(probe):
            raise UserError(f"sweep.storage_path '{location}' is a file; give a directory")
        while not os.path.exists(probe):
            probe = os.path.dirname(probe)
        if not os.access(probe, os.W_OK):
            raise UserError(f"sweep.storage_path '{location}': cannot write under '{probe}'")
        return
    fs, path = open_fs(location)
    try:
        kind = fs.get_file_info(path).type
    except Exception as e:                                    # noqa: BLE001
        raise UserError(f"sweep.storage_path '{location}' cannot be read: {_first_line(e)}")
    if kind == pafs.FileType.File:
        raise UserError(f"sweep.storage_path '{location}' is a file; give a directory or prefix")


def join(location: str, *parts: str) -> str:
    return "/".join([location.rstrip("/")] + [p.strip("/") for p in parts])


@dataclasses.dataclass(frozen=True)
class Plan:
    """Where one run keeps its Tune experiment, cache mirror and results copy."""
    tune_storage: str                     # Tune's RunConfig.storage_path
    name: str                             # Tune experiment name
    cache: str | None                     # mirror of the feature cache (None: no mirror)
    results: str | None                   # copy of OUT (None: OUT is the only copy)

    @property
    def experiment(self) -> str:
        return join(self.tune_storage, self.name)


def plan_for(storage_path: str | None, out: str) -> Plan:
    if not storage_path:
        return Plan(os.path.abspath(os.path.join(out, "tune")), "sweep", None, None)
    run = f"{os.path.basename(os.path.abspath(out))}-{uuid.uuid4().hex[:8]}"
    root = storage_path if is_uri(storage_path) else os.path.abspath(storage_path)
    return Plan(join(root, "tune"), run, join(root, "cache"), join(root, "results", run))


def plan_from_manifest(manifest: dict, results_dir: str) -> Plan:
    """The stored plan; a local default experiment is found beside RESULTS_DIR (it may move)."""
    p = manifest["storage"]
    if p.get("results") is None:
        return Plan(os.path.abspath(os.path.join(results_dir, "tune")), p["name"],
                    p.get("cache"), None)
    return Plan(p["tune_storage"], p["name"], p.get("cache"), p["results"])


def exists(location: str) -> bool:
    fs, path = open_fs(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def _local_files(local: str, skip: tuple[str, ...]) -> list[str]:
    """Relative paths of the files under `local` (top-level names in `skip` left out)."""
    rels = []
    for root, dirs, files in os.walk(local):
        rel_root = os.path.relpath(root, local)
        if rel_root == ".":
            dirs[:] = [d for d in dirs if d not in skip]
        rels += [os.path.normpath(os.path.join(rel_root, f)) for f in files
                 if not (rel_root == "." and (f in skip or f.startswith(".tmp-")))]
    return sorted(rels)


def upload_dir(local: str, location: str, *, last: str | None = None,
               skip: tuple[str, ...] = ()) -> None:
    """Copy the files under `local` to `location`; the file `last` goes after all others."""
    fs, path = open_fs(location)
    rels = _local_files(local, skip)
    for rel in [r for r in rels if r != last] + ([last] if last in rels else []):
        dest = f"{path}/{rel.replace(os.sep, '/')}"
        fs.create_dir(dest.rsplit("/", 1)[0], recursive=True)
        with open(os.path.join(local, rel), "rb") as src, fs.open_output_stream(dest) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


def download_dir(location: str, local: str) -> None:
    fs, path = open_fs(location)
    for info in fs.get_file_info(pafs.FileSelector(path, recursive=True)):
        if info.type != pafs.FileType.File:
            continue
        dest = os.path.join(local, *info.path[len(path):].strip("/").split("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with fs.open_input_stream(info.path) as src, open(dest, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


# ------------------------------------------------------------------ the feature cache mirror

def pull_part(mirror: str | None, local_path: str) -> bool:
    """Fetch a cache part from the mirror unless it is already complete locally.

    -> True when it was fetched. Written beside the target and renamed into place."""
    if not mirror or store_io.is_complete(local_path):
        return False
    remote = join(mirror, os.path.basename(local_path))
    if not exists(join(remote, "MANIFEST.json")):
        return False
    parent = os.path.dirname(os.path.abspath(local_path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".pull-", dir=parent)
    try:
        download_dir(remote, tmp)
        if not store_io.is_complete(tmp):
            return False
        if os.path.exists(local_path):
            shutil.rmtree(local_path)
        os.replace(tmp, local_path)
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def push_part(mirror: str | None, local_path: str) -> bool:
    """Upload a complete cache part unless the mirror already has it (MANIFEST.json last)."""
    if not mirror or not store_io.is_complete(local_path, verify_hashes=False):
        return False
    remote = join(mirror, os.path.basename(local_path))
    if exists(join(remote, "MANIFEST.json")):
        return False
    upload_dir(local_path, remote, last="MANIFEST.json")
    return True


def publish_results(out: str, plan: Plan) -> None:
    """Copy the run's files (not OUT/tune) to the shared results location; manifest last."""
    if plan.results:
        upload_dir(out, plan.results, last="manifest.json", skip=("tune",))
