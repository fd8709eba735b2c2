"""The frozen-model contract of the feature store: a model whose outputs are cached is in eval
mode with no gradients, so running it twice on the same input gives the same floats."""
from __future__ import annotations

import torch.nn as nn


def freeze(model: nn.Module) -> nn.Module:
    """eval() and requires_grad False on every parameter; returns the model."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
