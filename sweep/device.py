"""Which torch device a run uses: the config's `device` (auto | cpu | cuda) resolved here."""
from __future__ import annotations

import torch

from sweep.errors import UserError


def pick_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device: cuda requested but no CUDA device is visible; use device=auto")
    return name
