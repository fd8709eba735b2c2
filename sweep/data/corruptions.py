"""Gaussian blur and Gaussian noise at clean / mild / moderate / severe, scaled to the resolution.

Every sample of a split appears once clean and once per corrupted severity; whether a corrupted
copy is blurred or noised is a seeded coin flip, recorded per sample (0 none, 1 blur, 2 noise).
Levels interpolate (in log resolution) between the CIFAR-10-C (32 px) and ImageNet-C (224 px)
references of METHODS.md; `levels` in the config overrides them.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from sweep.config import SEVERITIES

CORRUPTIONS = ("none", "blur", "noise")
# Reference levels c1..c5 at two resolutions (std on [0,1] pixels; blur sigma in pixels).
_REF = {32: {"noise": [.04, .06, .08, .09, .10], "blur": [.4, .6, .7, .8, 1.0]},
        224: {"noise": [.08, .12, .18, .26, .38], "blur": [1., 2., 3., 4., 6.]}}
_LEVEL_OF = {"mild": 0, "moderate": 2, "severe": 4}  # c1, c3, c5


def reference_levels(image_size: int) -> dict[str, dict[str, float]]:
    """{severity: {"blur": sigma_px, "noise": std}} for this resolution (log-interpolated)."""
    t = float(np.clip((np.log(image_size) - np.log(32)) / (np.log(224) - np.log(32)), 0, 1))
    out = {}
    for sev, i in _LEVEL_OF.items():
        out[sev] = {k: round((1 - t) * _REF[32][k][i] + t * _REF[224][k][i], 4)
                    for k in ("blur", "noise")}
    return out


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """images uint8 [N,H,W,3] -> uint8 [N,H,W,3], Gaussian blur over H and W only."""
    x = gaussian_filter(images.astype(np.float32), sigma=(0, sigma, sigma, 0), mode="reflect")
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def noise(images: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """images uint8 [N,H,W,3] -> uint8, additive N(0, std) on [0,1] pixels, clipped."""
    x = images.astype(np.float32) / 255.0 + rng.normal(0.0, std, images.shape).astype(np.float32)
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def corrupt(images: np.ndarray, *, severity: str, levels: dict, seed: int):
    """One severity of a whole split. Returns (images uint8 [N,H,W,3], kind int8 [N]).

    Deterministic in (seed, severity): the same seed gives the same pixels.
    """
    n = len(images)
    if severity == "clean":
        return images.copy(), np.zeros(n, np.int8)
    rng = np.random.default_rng([seed, SEVERITIES.index(severity)])
    kind = rng.integers(1, 3, size=n).astype(np.int8)  # 1 blur, 2 noise
    out = images.copy()
    is_blur, is_noise = kind == 1, kind == 2
    if is_blur.any():
        out[is_blur] = blur(images[is_blur], levels[severity]["blur"])
    if is_noise.any():
        out[is_noise] = noise(images[is_noise], levels[severity]["noise"], rng)
    return out, kind


def expand_severities(images, labels, *, severities, levels, seed) -> dict[str, np.ndarray]:
    """A split repeated once per severity, concatenated in severity order.

    Returns images uint8 [S*N,H,W,3], label int64, severity int8 (index into SEVERITIES),
    corruption int8 (index into CORRUPTIONS), sample_id int64 (index into the split).
    """
    parts = {k: [] for k in ("images", "label", "severity", "corruption", "sample_id")}
    for sev in severities:
        x, kind = corrupt(images, severity=sev, levels=levels, seed=seed)
        parts["images"].append(x)
        parts["label"].append(np.asarray(labels, np.int64))
        parts["severity"].append(np.full(len(x), SEVERITIES.index(sev), np.int8))
        parts["corruption"].append(kind)
        parts["sample_id"].append(np.arange(len(x), dtype=np.int64))
    return {k: np.concatenate(v) for k, v in parts.items()}


def corruption_levels(cfg) -> dict:
    """The run's levels: `data.levels`, else the reference ones at `data.image_size`."""
    return cfg.data.levels or reference_levels(cfg.data.image_size)


def expand_all(cfg, splits) -> dict[str, dict[str, np.ndarray]]:
    """Every split x severity (images uint8 [S*N,H,W,3] + per-sample columns)."""
    levels = corruption_levels(cfg)
    return {name: expand_severities(s.images, s.labels, severities=cfg.data.severities,
                                    levels=levels, seed=cfg.data.seed + 101 * i)
            for i, (name, s) in enumerate(splits.items())}


def psnr(clean: np.ndarray, other: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB between two uint8 arrays of the same shape."""
    mse = np.mean((clean.astype(np.float64) - other.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))
