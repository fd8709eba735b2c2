"""Images as every stage holds them: uint8 RGB [N, S, S, 3] at one square base resolution."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class ImageSet:
    images: np.ndarray        # uint8 [N, S, S, 3]
    labels: np.ndarray        # int64 [N]
    class_names: tuple        # the dataset's class list: label i is class_names[i]

    @property
    def num_classes(self) -> int:
        """The class count, from the class list (never from the labels: a class missing from
        a split must not shrink every model's head)."""
        return len(self.class_names)

    def take(self, idx) -> "ImageSet":
        return ImageSet(self.images[idx], self.labels[idx], self.class_names)


def resize_uint8(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 [N,H,W,C] -> uint8 [N,size,size,C], bilinear (antialiased when shrinking)."""
    if images.shape[1] == size and images.shape[2] == size:
        return images
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    shrink = size < images.shape[1]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
