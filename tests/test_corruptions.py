import numpy as np
import pytest

from sweep.data.corruptions import (SEVERITIES, corrupt, expand_severities, psnr, reference_levels)
from sweep.data.datasets import load_splits, split_indices


@pytest.fixture(scope="module")
def images():
    splits, _ = load_splits("digits", image_size=32, seed=0)
    return splits["test"].images[:64]


@pytest.mark.parametrize("kind", ["blur", "noise"])
def test_severity_lowers_psnr_monotonically(images, kind):
    levels = reference_levels(32)
    other = "noise" if kind == "blur" else "blur"
    levels = {s: {kind: v[kind], other: 0.0} for s, v in levels.items()}
    # force one corruption kind by zeroing the other's strength
    scores = []
    for sev in SEVERITIES[1:]:
        x, k = corrupt(images, severity=sev, levels=levels, seed=0)
        mask = k == (1 if kind == "blur" else 2)
        scores.append(psnr(images[mask], x[mask]))
    assert scores[0] > scores[1] > scores[2], scores


def test_corruption_is_deterministic_and_recorded(images):
    lv = reference_levels(32)
    a, ka = corrupt(images, severity="severe", levels=lv, seed=3)
    b, kb = corrupt(images, severity="severe", levels=lv, seed=3)
    c, _ = corrupt(images, severity="severe", levels=lv, seed=4)
    assert np.array_equal(a, b) and np.array_equal(ka, kb)
    assert not np.array_equal(a, c)
    assert set(np.unique(ka)) == {1, 2}
    clean, k0 = corrupt(images, severity="clean", levels=lv, seed=3)
    assert np.array_equal(clean, images) and (k0 == 0).all()


def test_every_sample_once_per_severity(images):
    labels = np.arange(len(images))
    x = expand_severities(images, labels, severities=SEVERITIES, levels=reference_levels(32), seed=0)
    assert len(x["images"]) == 4 * len(images)
    for i in range(4):
        assert np.array_equal(x["sample_id"][x["severity"] == i], np.arange(len(images)))


def test_levels_scale_with_resolution():
    lo, hi = reference_levels(32), reference_levels(224)
    assert lo["severe"]["blur"] == 1.0 and hi["severe"]["blur"] == 6.0
    mid = reference_levels(96)["moderate"]["blur"]
    assert lo["moderate"]["blur"] < mid < hi["moderate"]["blur"]


def test_splits_deterministic_and_disjoint():
    tr, va, te = split_indices(100, val_fraction=0.2, test_fraction=0.2, seed=1)
    tr2, _, _ = split_indices(100, val_fraction=0.2, test_fraction=0.2, seed=1)
    assert np.array_equal(tr, tr2)
    assert len(set(tr) | set(va) | set(te)) == 100 and len(te) == 20 and len(va) == 20


def test_digits_and_synthetic_shapes():
    s, info = load_splits("digits", image_size=24, seed=0)
    assert s["train"].images.shape[1:] == (24, 24, 3) and s["train"].images.dtype == np.uint8
    assert sum(info["sizes"].values()) == 1797
    s, _ = load_splits("synthetic", image_size=16, seed=0, synthetic_n=50, synthetic_classes=3)
    assert s["test"].labels.max() < 3
