"""What an expert costs: batch-1 latency on the running device and FLOPs (METHODS.md A).

Latency follows the gater paper ("synchronized CUDA events"): batch 1, `torch.inference_mode`,
`warmup` untimed calls, then `repeats` timed calls, reported as median and 10th/90th percentiles.
On CUDA each call is bracketed by `torch.cuda.Event(enable_timing=True)` pairs with a
synchronisation; on CPU by `time.perf_counter_ns`. CPU numbers depend on `torch.get_num_threads()`
and on what else runs on the machine, so the thread count is returned with them.

FLOPs come from `torch.utils.flop_counter.FlopCounterMode`, which counts 2 FLOPs per
multiply-accumulate of convolutions, matmuls and attention (so FLOPs = 2 x MACs; torchvision's
"GFLOPS" metadata, e.g. 0.35 for SqueezeNet 1.1, are MACs) and ignores elementwise ops (ReLU,
norms, softmax). CPU's fused attention kernel is not in torch's table; we add it below.
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


def measure_latency_ms(model: nn.Module, *, input_shape=(1, 3, 224, 224), device="cpu",
                       warmup: int = 10, repeats: int = 50) -> dict:
    """Batch-1 forward latency in ms: {median_ms, p10_ms, p90_ms, repeats, method, device,
    threads, input_shape}. Moves the model to `device`; timed in eval mode, mode restored."""
    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be >= 1 and warmup >= 0")
    device = torch.device(device)
    x = torch.randn(*input_shape, generator=torch.Generator().manual_seed(0)).to(device)
    was_training = model.training
    model.eval().to(device)
    try:
        with torch.inference_mode():
            for _ in range(warmup):       # allocator, cuDNN autotune, lazy init
                model(x)
            timer = _time_cuda if device.type == "cuda" else _time_cpu
            times, method = timer(model, x, repeats)
    finally:
        model.train(was_training)
    p10, med, p90 = np.percentile(times, [10, 50, 90])
    return dict(median_ms=float(med), p10_ms=float(p10), p90_ms=float(p90), repeats=repeats,
                method=method, device=str(device), threads=torch.get_num_threads(),
                input_shape=list(input_shape))


def _time_cuda(model, x, repeats) -> tuple[list[float], str]:  # pragma: no mutate block
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(x.device)   # nothing queued before the start event
        start.record()
        model(x)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))         # ms
    return times, "cuda_event"


def _time_cpu(model, x, repeats) -> tuple[list[float], str]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        model(x)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return times, "perf_counter_ns"


def _sdpa_cpu_flop(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """CPU fused attention: same count as the math path (2 bmm's of [B,H,L,E])."""
    return sdpa_flop_count(query, key, value)


_EXTRA_FLOPS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flop}


def count_flops(model: nn.Module, *, input_shape=(1, 3, 224, 224)) -> int:
    """FLOPs (2 per MAC) of one forward pass at input_shape, counted on the model's device."""
    param = next(model.parameters(), None)
    x = torch.zeros(*input_shape, device=param.device if param is not None else "cpu")
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False, custom_mapping=_EXTRA_FLOPS) as counter, \
                torch.inference_mode():
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
