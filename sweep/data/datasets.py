"""Datasets behind one interface: `load_splits(...) -> {"train","val","test"}` of `ImageSet`.

Every dataset is returned as uint8 RGB images [N, S, S, 3] at one square base resolution S
(`image_size`); experts and the gater resize from there. Splits are deterministic in `seed`.

* `digits`      scikit-learn's bundled handwritten digits (1,797 8x8 images; no download)
* `imagefolder` a root with train/test class folders (Intel's `seg_train/`, `seg_test/` layout)
* `cifar10`     torchvision's CIFAR-10; downloads only when `download: true`
* `synthetic`   random images of any shape and class count, for benchmarks
"""
from __future__ import annotations

import numpy as np
from torchvision.datasets import CIFAR10

from sweep.config import DATASETS, check_sizes
from sweep.data.images import ImageSet, resize_uint8
from sweep.data.imagefolder import load_imagefolder
from sweep.errors import UserError


def split_indices(n: int, *, val_fraction: float, test_fraction: float, seed: int):
    """Deterministic shuffled split of range(n) into (train, val, test) index arrays."""
    perm = np.random.default_rng(seed).permutation(n)
    n_test, n_val = int(round(n * test_fraction)), int(round(n * val_fraction))
    return perm[n_test + n_val:], perm[n_test:n_test + n_val], perm[:n_test]


def _digits(image_size: int) -> ImageSet:
    from sklearn.datasets import load_digits   # heavy (scipy, ~1 s), only for this dataset
    d = load_digits()
    gray = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)          # [N, 8, 8]
    rgb = np.repeat(gray[..., None], 3, axis=-1)                         # [N, 8, 8, 3]
    return ImageSet(resize_uint8(rgb, image_size), d.target.astype(np.int64),
                    tuple(str(c) for c in d.target_names))


def _synthetic(image_size: int, n: int, num_classes: int, seed: int) -> ImageSet:
    """Random images whose mean colour depends on the class (learnable, for benchmarks)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n).astype(np.int64)
    base = rng.integers(0, 256, (num_classes, 1, 1, 3))
    x = base[labels] * 0.5 + rng.integers(0, 128, (n, image_size, image_size, 3))
    return ImageSet(x.astype(np.uint8), labels, tuple(f"class_{i}" for i in range(num_classes)))


def _cifar10(root: str, image_size: int, download: bool):
    try:
        tr, te = (CIFAR10(root, train=t, download=download) for t in (True, False))
    except RuntimeError as e:
        raise UserError(f"CIFAR-10 not found under '{root}' ({e}); put it there or set "
                        f"data.download=true on a machine with internet access") from None
    except OSError as e:
        raise UserError(f"could not download CIFAR-10 to '{root}': {e}") from None
    mk = lambda d: ImageSet(resize_uint8(np.asarray(d.data), image_size),
                            np.asarray(d.targets, np.int64), tuple(d.classes))
    return mk(tr), mk(te)


def load_splits(name: str, *, root: str | None = None, image_size: int, seed: int,
                val_fraction: float = 0.2, test_fraction: float = 0.2, download: bool = False,
                synthetic_n: int = 512, synthetic_classes: int = 6,
                skip_corrupt: bool = False) -> tuple[dict[str, ImageSet], dict]:
    """Returns ({"train","val","test"}: ImageSet, info) where info summarises what was read.

    Datasets with their own test set (imagefolder, cifar10) keep it as test and carve val from
    train; the others are split three ways.
    """
    info: dict = {"name": name}
    if name == "digits":
        full, test = _digits(image_size), None
    elif name == "synthetic":
        full, test = _synthetic(image_size, synthetic_n, synthetic_classes, seed), None
    elif name == "cifar10":
        full, test = _cifar10(root or "data/cifar10", image_size, download)
    elif name == "imagefolder":
        full, test, info["skipped_files"] = load_imagefolder(root, image_size, skip_corrupt)
    else:
        raise UserError(f"unknown dataset '{name}'; choose one of {', '.join(DATASETS)}")
    if test is None:
        tr, va, te = split_indices(len(full.labels), val_fraction=val_fraction,
                                   test_fraction=test_fraction, seed=seed)
        splits = {"train": full.take(tr), "val": full.take(va), "test": full.take(te)}
    else:
        tr, va, _ = split_indices(len(full.labels), val_fraction=val_fraction,
                                  test_fraction=0.0, seed=seed)
        splits = {"train": full.take(tr), "val": full.take(va), "test": test}
    info.update(classes=list(full.class_names), image_size=image_size,
                sizes={k: int(len(v.labels)) for k, v in splits.items()})
    return splits, info


def load_data(cfg) -> tuple[dict[str, ImageSet], dict]:
    """The config's dataset (`data` section) as splits + info; too small a split: UserError."""
    d = cfg.data
    splits, data_info = load_splits(d.name, root=d.root, image_size=d.image_size, seed=d.seed,
                                    val_fraction=d.val_fraction, test_fraction=d.test_fraction,
                                    download=d.download, synthetic_n=d.synthetic_n,
                                    synthetic_classes=d.synthetic_classes,
                                    skip_corrupt=d.skip_corrupt)
    check_sizes(cfg, splits)
    return splits, data_info
