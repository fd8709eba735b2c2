"""Load a results directory: `points`, `routes`, `decisions` (Parquet) and `manifest.json`.

This is the only module of `analysis/` that touches the disk for reading. Everything else is a
pure function of the DataFrames returned here. Required columns are checked and coerced; extra
columns and manifest keys are kept untouched. `points.parquet` is required; a missing
`routes.parquet`, `decisions.parquet` or `manifest.json` yields an empty frame / dict (the report
says so), so a partial run can still be inspected.

Versions (manifest `schema_version`, sweep/results/manifest.py): this module reads 1 (no key:
its two families' words are filled in from `analysis.families.V1_FAMILIES`) and 2; a newer one
is refused in one line. The vocabulary (families, their cost units, severities) comes from the
manifest: values it does not list are rejected; without a manifest any value is accepted.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.errors import AnalysisError
from analysis.families import V1_FAMILIES

SCHEMA_VERSION = 2   # the newest results schema this analysis reads
ALL = "all"  # the severity label of the whole test set

# column -> kind: str, str? (nullable), int, float, float? (NaN allowed), bool
SCHEMA = {
    "points.parquet": {
        "point_id": "str", "family": "str", "method": "str", "variant": "str?",
        "trial_id": "str?", "seed": "int", "lam": "float?", "tau": "float?",
        "threshold": "float?", "split": "str", "severity": "str", "accuracy": "float?",
        "cost": "float?", "cost_unit": "str", "n": "int",
    },
    "routes.parquet": {"point_id": "str", "severity": "str", "target": "str", "fraction": "float"},
    "decisions.parquet": {
        "point_id": "str", "sample_id": "int", "severity": "str", "label": "int",
        "target": "str", "correct": "bool", "cost": "float",
    },
}
ALLOWED = {"points.parquet": {"status": ("ok", "failed")}}


def _coerce(series: pd.Series, kind: str, where: str) -> pd.Series:
    """One column to its kind; raises AnalysisError naming `where` (file:column) on failure."""
    nullable = kind.endswith("?")
    base = kind.rstrip("?")
    if not nullable and series.isna().any():
        raise AnalysisError(f"{where}: {int(series.isna().sum())} missing value(s)")
    try:
        if base == "str":          # vectorised str(v) (a per-value map costs seconds on decisions)
            return series.astype("string").astype(object).where(series.notna(), None)
        if base == "float":
            return pd.to_numeric(series, errors="raise").astype(float)
        if base == "int":
            values = pd.to_numeric(series, errors="raise")
            if not np.all(np.mod(values, 1) == 0):
                raise ValueError("not integers")
            return values.astype(np.int64)
        return series.astype(bool)
    except (ValueError, TypeError) as err:
        raise AnalysisError(f"{where}: expected {base} values ({err})") from None


def vocabulary(manifest: dict) -> dict:
    """{file: {column: allowed values}} that the manifest declares (empty without one)."""
    fams = manifest.get("families") or {}
    sevs = list((manifest.get("dataset") or {}).get("severities") or [])
    out: dict = {name: {} for name in SCHEMA}
    if fams:
        out["points.parquet"]["family"] = tuple(fams)
        out["points.parquet"]["cost_unit"] = tuple({f["cost_unit"] for f in fams.values()})
    if sevs:
        for name in ("points.parquet", "routes.parquet"):
            out[name]["severity"] = (ALL, *sevs)
        out["decisions.parquet"]["severity"] = tuple(sevs)
    return out


def validate(frame: pd.DataFrame, name: str, allowed: dict | None = None) -> pd.DataFrame:
    """Check and coerce the required columns of one results file (`name` e.g. 'points.parquet');
    `allowed` {column: values} adds to ALLOWED (the manifest's vocabulary)."""
    missing = [c for c in SCHEMA[name] if c not in frame.columns]
    if missing:
        raise AnalysisError(f"{name}: missing required column(s) {', '.join(missing)}")
    out = frame.copy()
    for column, kind in SCHEMA[name].items():
        out[column] = _coerce(out[column], kind, f"{name}: column {column}")
    for column, allowed in {**ALLOWED.get(name, {}), **(allowed or {})}.items():
        if column in out.columns:
            bad = sorted(set(out[column].dropna().astype(str)) - set(allowed))
            if bad:
                raise AnalysisError(f"{name}: column {column} has unknown value(s) {bad[:3]}; "
                                    f"expected one of {list(allowed)}")
    return out


def _check_points(points: pd.DataFrame) -> pd.DataFrame:
    """Defaults for optional columns (status, error) and range checks of accuracy and cost."""
    if points.empty:
        raise AnalysisError("points.parquet: has no rows")
    if "status" not in points.columns:
        points["status"] = np.where(points["accuracy"].isna(), "failed", "ok")
    points["status"] = points["status"].fillna("ok").astype(str)
    if "error" not in points.columns:
        points["error"] = None
    ok = points["status"] == "ok"
    acc = points.loc[ok, "accuracy"]
    if acc.isna().any() or ((acc < 0) | (acc > 1)).any():
        raise AnalysisError("points.parquet: column accuracy must lie in [0, 1] for status 'ok'")
    if points.loc[ok, "cost"].isna().any():
        raise AnalysisError("points.parquet: column cost is missing for a status 'ok' row")
    return points


def read_parquet(path: Path) -> pd.DataFrame:
    """Read one Parquet file; a truncated or corrupt file becomes an AnalysisError."""
    try:
        return pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types (ArrowInvalid, OSError, ...)
        reason = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise AnalysisError(f"{path}: not a readable Parquet file ({reason})") from None


def read_manifest(path: Path) -> dict:
    """manifest.json as a dict ({} when absent); invalid JSON becomes an AnalysisError."""
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise AnalysisError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(manifest, dict):
        raise AnalysisError(f"{path}: expected a JSON object at the top level")
    return manifest


def upgrade(manifest: dict, where: Path) -> dict:
    """The manifest in the newest schema this analysis reads; a newer one: AnalysisError."""
    if not manifest:
        return manifest
    version = manifest.get("schema_version", 1)
    if not isinstance(version, int) or version < 1:
        raise AnalysisError(f"{where}: schema_version must be a positive integer, got "
                            f"{version!r}")
    if version > SCHEMA_VERSION:
        raise AnalysisError(f"{where}: results schema {version} is newer than this analysis "
                            f"reads (up to {SCHEMA_VERSION}); update routesweep to read them")
    if version == 1:     # no families block: the two families of schema 1, as they were
        manifest = {**manifest, "schema_version": 1, "families": dict(V1_FAMILIES)}
    return manifest


def _optional(directory: Path, name: str, allowed: dict) -> pd.DataFrame:
    """A results file that may be absent: an empty frame with the required columns."""
    path = directory / name
    if not path.exists():
        return pd.DataFrame({c: pd.Series(dtype=object) for c in SCHEMA[name]})
    return validate(read_parquet(path), name, allowed)


def load(results_dir) -> dict:
    """{'points', 'routes', 'decisions': DataFrame, 'manifest': dict} of one results directory."""
    directory = Path(results_dir)
    if not directory.is_dir():
        raise AnalysisError(f"results directory not found: {directory}")
    points_path = directory / "points.parquet"
    if not points_path.exists():
        raise AnalysisError(f"{directory}: no points.parquet (is this a routesweep results "
                            "directory? run `python -m sweep.run --out DIR` first)")
    manifest = upgrade(read_manifest(directory / "manifest.json"), directory / "manifest.json")
    vocab = vocabulary(manifest)
    points = _check_points(validate(read_parquet(points_path), "points.parquet",
                                    vocab["points.parquet"]))
    _check_cost_units(points, manifest)
    return {"points": points,
            "routes": _optional(directory, "routes.parquet", vocab["routes.parquet"]),
            "decisions": _optional(directory, "decisions.parquet", vocab["decisions.parquet"]),
            "manifest": manifest}


def _check_cost_units(points: pd.DataFrame, manifest: dict) -> None:
    """Each family's rows carry the cost unit its manifest entry names."""
    for family, info in (manifest.get("families") or {}).items():
        units = set(points.loc[points["family"] == family, "cost_unit"])
        if units - {info.get("cost_unit")}:
            raise AnalysisError(f"points.parquet: column cost_unit has {sorted(units)} for "
                                f"family {family}; manifest.json says {info.get('cost_unit')!r}")


def severity_order(manifest: dict, points: pd.DataFrame) -> list:
    """The severity levels (without 'all'), in order: the manifest's, else as the rows list them."""
    levels = list((manifest.get("dataset") or {}).get("severities") or [])
    seen = [s for s in dict.fromkeys(points["severity"]) if s != ALL]
    return [s for s in levels if s in seen] + [s for s in seen if s not in levels]
