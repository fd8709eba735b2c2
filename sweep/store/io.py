"""The feature store on disk: one `.npy` per array (no pickle), a meta.json, and a manifest of
sha256 hashes written LAST. A directory without a valid manifest is incomplete and rebuilt.

    CACHE/<part>-<key>/meta.json
    CACHE/<part>-<key>/<split>/<array>.npy
    CACHE/<part>-<key>/MANIFEST.json      {"files": {relpath: sha256}}

Writes go to a temporary sibling directory that is renamed into place, so a killed writer
never leaves something that looks complete.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile

import numpy as np

SPLITS = ("train", "val", "test")


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_part(path: str, arrays: dict[str, dict[str, np.ndarray]], meta: dict) -> None:
    """arrays {split: {name: ndarray}} + meta -> `path`, atomically."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
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
    if os.path.exists(path):
        shutil.rmtree(path)
    os.replace(tmp, path)


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
