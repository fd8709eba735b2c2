"""The memory format (NCHW or channels-last) a conv net trains and runs in, and why.

Channels-last (NHWC strides) is what `permute(0, 3, 1, 2)` of a uint8 [B,H,W,3] batch gives for
free, and oneDNN's NHWC kernels are the faster ones at our shapes (1 torch thread, AMD EPYC,
AVX2: gater training +28 % at the tiny shape, +50 % at the paper shape; the backbone at width
16, 48 px, +20 %; equal at width 64).

But oneDNN v3.12.0 (torch 2.14.1) corrupts the heap in one kernel: the 1x1 convolution's
backward-weights pass (`jit_1x1:avx2`) with a channels-last source, stride 2 and fewer input
channels than its SIMD block (8 floats on AVX2) writes past its per-thread workspace ->
"corrupted size vs. prev_size" / "free(): invalid next size" / a segfault, later, in
`loss.backward()`. In NCHW torch hands oneDNN a padded blocked copy and the kernel is safe.
A pure-PyTorch reproduction, its table of shapes and the oneDNN verbose line:
docs/onednn-avx2-channels-last.md.

So: channels-last, unless the module has a strided 1x1 conv with fewer than
MIN_IN_CHANNELS input channels; then NCHW. 16 = the AVX-512 block (the upstream diagnosis puts
the same offset bug in the AVX-512 1x1 kernel); on AVX2, ic >= 8 measured clean.
"""
from __future__ import annotations

import torch
import torch.nn as nn

MIN_IN_CHANNELS = 16


def unsafe_convs(module: nn.Module) -> list[str]:
    """Names of the convs that hit the oneDNN bug under channels-last: 1x1, stride > 1, and
    fewer than MIN_IN_CHANNELS input channels."""
    return [name for name, m in module.named_modules()
            if isinstance(m, nn.Conv2d) and tuple(m.kernel_size) == (1, 1)
            and max(m.stride) > 1 and m.in_channels < MIN_IN_CHANNELS]


def memory_format_for(module: nn.Module) -> torch.memory_format:
    """torch.channels_last where it is safe (see the module docstring), else NCHW."""
    return torch.contiguous_format if unsafe_convs(module) else torch.channels_last


def format_name(fmt: torch.memory_format) -> str:
    """'channels_last' or 'nchw' (for records and messages)."""
    return "channels_last" if fmt == torch.channels_last else "nchw"
