"""Reading an image-folder dataset (Intel Image Classification's layout) into uint8 arrays.

    ROOT/seg_train/<class>/*.jpg   (or ROOT/train/<class>/...)
    ROOT/seg_test/<class>/*.jpg    (or ROOT/test/<class>/...)

Every image becomes RGB: grayscale, bilevel, palette (transparency included), RGBA / LA (alpha
dropped, as torchvision's loader does), CMYK and YCbCr are converted; 16-bit grayscale is scaled
to 8 bits (x / 257), not clipped; an animated GIF gives its first frame. Files and folders whose
name starts with '.' are ignored (.ipynb_checkpoints, macOS '._x.jpg'). A file that cannot be
read as an image (empty, truncated, not an image, float pixels, more pixels than Pillow's
decompression-bomb limit) is a UserError naming it, or is skipped and counted with
`skip_corrupt: true`; a class left without a readable image is a UserError either way.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image

from sweep.data.images import IMAGE_EXTENSIONS, ImageSet
from sweep.errors import UserError

_TRAIN_DIRS, _TEST_DIRS = ("seg_train", "train"), ("seg_test", "test")
MAX_PIXELS = 89_478_485        # Pillow's default Image.MAX_IMAGE_PIXELS (~0.25 GB as RGB)


def _find(root: str, names) -> str:
    for n in names:
        p = os.path.join(root, n)
        # Intel's archive nests seg_train/seg_train/<class>; accept both.
        if os.path.isdir(os.path.join(p, n)):
            return os.path.join(p, n)
        if os.path.isdir(p):
            return p
    raise UserError(f"no {' or '.join(names)} folder under data root '{root}'")


def _visible(names) -> list[str]:
    return sorted(n for n in names if not n.startswith("."))


def _classes(folder: str) -> list[str]:
    classes = _visible(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    if not classes:
        raise UserError(f"no class folders in '{folder}'")
    return classes


class _Unreadable(Exception):
    """One file that is not a usable image; the message says why."""


def _to_rgb(im) -> np.ndarray:
    """A PIL image of any mode -> uint8 [H, W, 3]."""
    if im.mode.startswith("I;16") or im.mode == "I":          # 16-bit grayscale (PNG, TIFF)
        a = np.asarray(im).astype(np.int64)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise _Unreadable(f"32-bit integer pixels ({a.min()}..{a.max()}); save it as 8-bit")
        g = np.rint(a / 257.0).astype(np.uint8)                # 65535 -> 255
        return np.repeat(g[..., None], 3, axis=-1)
    if im.mode == "F":
        raise _Unreadable("floating-point pixels; save it as 8-bit")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    return np.asarray(im.convert("RGB"), np.uint8)


def read_image(path: str, size: int) -> np.ndarray:
    """One file -> uint8 [size, size, 3] (bilinear); _Unreadable when it is not a usable image."""
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise _Unreadable("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:          # reads the header; animated: frame 0
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise _Unreadable(f"{w}x{h} px, more than {MAX_PIXELS:,} pixels")
                rgb = _to_rgb(im)                 # decodes
    except _Unreadable:
        raise
    except Image.DecompressionBombError as e:
        raise _Unreadable(str(e).split(",")[0]) from None
    except Exception as e:                        # any decoder failure: truncated, not an image
        raise _Unreadable(f"{type(e).__name__}: {e}"[:160]) from None
    if rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise _Unreadable(f"decoded to shape {rgb.shape}")
    im = Image.fromarray(rgb, "RGB").resize((size, size), Image.BILINEAR)
    return np.asarray(im, np.uint8)


def _read_split(folder: str, classes: list[str], size: int, skip_corrupt: bool):
    images, labels, skipped = [], [], []
    for ci, c in enumerate(classes):
        cdir = os.path.join(folder, c)
        files = _visible(f for f in os.listdir(cdir) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            raise UserError(f"class folder '{cdir}' has no images")
        n_before = len(labels)
        for f in files:
            path = os.path.join(cdir, f)
            try:
                images.append(read_image(path, size))
            except _Unreadable as e:
                if not skip_corrupt:
                    raise UserError(f"unreadable image '{path}' ({e}); remove it or set "
                                    f"data.skip_corrupt=true") from None
                skipped.append(path)
                continue
            labels.append(ci)
        if len(labels) == n_before:
            raise UserError(f"class folder '{cdir}' has no readable image (all {len(files)} "
                            f"skipped as unreadable)")
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
    if s1 or s2:
        print(f"[data] skipped {len(s1) + len(s2)} unreadable image(s) under '{root}' "
              f"(data.skip_corrupt), e.g. '{(s1 + s2)[0]}'")
    return ImageSet(xtr, ytr, tuple(classes)), ImageSet(xte, yte, tuple(classes)), s1 + s2
