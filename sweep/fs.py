"""Directories and URIs (s3://, gs://, file://, ...) behind one interface, through pyarrow.fs.

`sweep.storage_path`, the feature cache's mirror and the results copy are each a local directory
or a URI; these helpers open, test, copy up and copy down either kind. Local files that readers
may open at any moment (tables, manifest.json, tune-sha256.json) are written atomically
(`write_atomic`, `write_json`). Files and directories made here get the usual modes, 0o666 /
0o777 less the umask (0644 / 0755 under umask 022), not tempfile's private 0600 / 0700: results
and caches are meant to be shared with a team.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid

import pyarrow.fs as pafs

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


def upload_file(local_file: str, location: str) -> None:
    """Copy one file to `location` (a file path or URI), replacing what is there."""
    fs, path = open_fs(location)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with open(local_file, "rb") as src, fs.open_output_stream(path) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


def temp_name(directory: str, name: str = "", *, prefix: str = ".tmp-") -> str:
    """A fresh path in `directory` for a temporary file or directory (nothing is created)."""
    return os.path.join(directory, f"{prefix}{uuid.uuid4().hex[:12]}-{name}")


def make_temp_dir(parent: str, *, prefix: str = ".tmp-") -> str:
    """A new empty directory in `parent`, mode 0o777 less the umask (tempfile.mkdtemp: 0700)."""
    path = temp_name(parent, prefix=prefix)
    os.mkdir(path)
    return path


def write_atomic(path: str, write) -> None:
    """write(tmp_path) then rename: a reader sees the old file or the new one, never half. The
    file is created with mode 0o666 less the umask (tempfile.mkstemp would give 0600)."""
    tmp = temp_name(os.path.dirname(os.path.abspath(path)), os.path.basename(path))
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: str, obj: dict) -> None:
    def w(p):
        with open(p, "w") as f:
            json.dump(obj, f, indent=1, default=str)
    write_atomic(path, w)
