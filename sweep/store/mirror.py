"""The feature cache's shared mirror (`STORAGE/cache`, a directory or a URI).

A run pulls a missing part from the mirror before building it and pushes the parts it built,
so a second run -- also on a new cluster -- reuses them. Uploads write MANIFEST.json last, so a
reader never takes a half-copied part for a complete one.
"""
from __future__ import annotations

import os
import shutil

from sweep import fs
from sweep.store import io as store_io
from sweep.store.build import build_store, needed_parts, part_key


def pull_part(mirror: str | None, local_path: str) -> bool:
    """Fetch a cache part from the mirror unless it is already complete locally.

    -> True when it was fetched. Written beside the target and renamed into place (a complete
    part another run installed meanwhile is kept: store_io.install)."""
    if not mirror or store_io.is_complete(local_path):
        return False
    remote = fs.join(mirror, os.path.basename(local_path))
    if not fs.exists(fs.join(remote, "MANIFEST.json")):
        return False
    parent = os.path.dirname(os.path.abspath(local_path))
    os.makedirs(parent, exist_ok=True)
    tmp = fs.make_temp_dir(parent, prefix=".pull-")
    try:
        fs.download_dir(remote, tmp)
        if not store_io.is_complete(tmp):
            return False
        store_io.install(tmp, local_path)     # never removes a complete part a run is reading
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def push_part(mirror: str | None, local_path: str) -> bool:
    """Upload a complete cache part unless the mirror already has it (MANIFEST.json last)."""
    if not mirror or not store_io.is_complete(local_path, verify_hashes=False):
        return False
    remote = fs.join(mirror, os.path.basename(local_path))
    if fs.exists(fs.join(remote, "MANIFEST.json")):
        return False
    fs.upload_dir(local_path, remote, last="MANIFEST.json")
    return True


def cached_build(cfg, splits, *, device: str, mirror: str | None, parts=None, log=print):
    """build_store with the shared mirror: pull missing parts, build, push new parts."""
    parts = needed_parts(cfg) if parts is None else parts
    pulled = {}
    for part in parts:
        path = os.path.join(cfg.cache_dir, part_key(part, cfg, device))
        pulled[part] = pull_part(mirror, path)
        if pulled[part]:
            log(f"[features] '{part}' fetched from shared cache {mirror}")
    store, info = build_store(cfg, splits, device=device, parts=parts, log=log)
    for part, entry in info.items():
        entry["from_shared_cache"] = pulled[part]
        entry["pushed_to_shared_cache"] = push_part(mirror, entry["path"])
    return store, info
