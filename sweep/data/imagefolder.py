"""Reading an image-folder dataset (Intel Image Classification's layout) into uint8 arrays.

    ROOT/seg_train/<class>/*.jpg   (or ROOT/train/<class>/...)
    ROOT/seg_test/<class>/*.jpg    (or ROOT/test/<class>/...)

Grayscale, palette and RGBA images are converted to RGB. Unreadable files are skipped and counted
(`skip_corrupt: true`) or rejected with a UserError naming the first one.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from sweep.data.images import IMAGE_EXTENSIONS, ImageSet
from sweep.errors import UserError

_TRAIN_DIRS, _TEST_DIRS = ("seg_train", "train"), ("seg_test", "test")


def _find(root: str, names) -> str:
    for n in names:
        p = os.path.join(root, n)
        # Intel's archive nests seg_train/seg_train/<class>; accept both.
        if os.path.isdir(os.path.join(p, n)):
            return os.path.join(p, n)
        if os.path.isdir(p):
            return p
    raise UserError(f"no {' or '.join(names)} folder under data root '{root}'")


def _classes(folder: str) -> list[str]:
    classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    if not classes:
        raise UserError(f"no class folders in '{folder}'")
    return classes


def _read_split(folder: str, classes: list[str], size: int, skip_corrupt: bool):
    images, labels, skipped = [], [], []
    for ci, c in enumerate(classes):
        files = sorted(f for f in os.listdir(os.path.join(folder, c))
                       if f.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            raise UserError(f"class folder '{os.path.join(folder, c)}' has no images")
        for f in files:
            path = os.path.join(folder, c, f)
            try:
                with Image.open(path) as im:
                    im = im.convert("RGB").resize((size, size), Image.BILINEAR)
                    images.append(np.asarray(im, np.uint8))
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
                if not skip_corrupt:
                    raise UserError(f"unreadable image '{path}' ({type(e).__name__}); remove it "
                                    f"or set data.skip_corrupt=true") from None
                skipped.append(path)
                continue
            labels.append(ci)
    return np.stack(images), np.asarray(labels, np.int64), skipped


def load_imagefolder(root: str | None, size: int, skip_corrupt: bool):
    """-> (train ImageSet, test ImageSet, skipped file list)."""
    if not root or not os.path.isdir(root):
        raise UserError(f"data root '{root}' does not exist; set data.root to the dataset folder")
    tr_dir, te_dir = _find(root, _TRAIN_DIRS), _find(root, _TEST_DIRS)
    classes = _classes(tr_dir)
    if _classes(te_dir) != classes:
        raise UserError(f"class folders differ between '{tr_dir}' and '{te_dir}'")
    xtr, ytr, s1 = _read_split(tr_dir, classes, size, skip_corrupt)
    xte, yte, s2 = _read_split(te_dir, classes, size, skip_corrupt)
    return ImageSet(xtr, ytr, tuple(classes)), ImageSet(xte, yte, tuple(classes)), s1 + s2
