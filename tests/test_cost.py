"""Batch-1 latency and FLOP counts (FlopCounterMode: 2 FLOPs per multiply-accumulate)."""
import pytest
import torch
import torch.nn as nn

from trainers.cost import count_flops, measure_latency_ms
from trainers.experts import ExpertSpec, build_expert


def small_cnn():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 4))


def check_latency(r, repeats):
    assert set(r) >= {"median_ms", "p10_ms", "p90_ms", "repeats", "method"}
    assert 0 < r["p10_ms"] <= r["median_ms"] <= r["p90_ms"] < 1000
    assert r["repeats"] == repeats


def test_cpu_latency_dict_is_sane_and_restores_train_mode():
    model = small_cnn().train()
    r = measure_latency_ms(model, input_shape=(1, 3, 16, 16), device="cpu", warmup=2, repeats=20)
    check_latency(r, 20)
    assert r["method"] == "perf_counter_ns" and r["threads"] >= 1
    assert model.training


def test_latency_grows_with_work():
    small = measure_latency_ms(nn.Linear(8, 8), input_shape=(1, 8), repeats=30)
    big = measure_latency_ms(nn.Sequential(*[nn.Linear(512, 512) for _ in range(20)]),
                             input_shape=(1, 512), repeats=30)
    assert big["median_ms"] > small["median_ms"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_latency_uses_events():
    r = measure_latency_ms(small_cnn(), input_shape=(1, 3, 32, 32), device="cuda", repeats=20)
    check_latency(r, 20)
    assert r["method"] == "cuda_event"


def test_bad_repeats():
    with pytest.raises(ValueError):
        measure_latency_ms(small_cnn(), input_shape=(1, 3, 8, 8), repeats=0)


def test_flops_count_two_per_mac():
    assert count_flops(nn.Linear(10, 20), input_shape=(1, 10)) == 2 * 10 * 20
    conv = nn.Conv2d(3, 8, 3, padding=1)                       # 8x8 output, 3*3*3 MACs each
    assert count_flops(conv, input_shape=(1, 3, 8, 8)) == 2 * 8 * 8 * 8 * 27


def test_squeezenet_1_1_at_224_is_about_0_35_gmacs():
    """torchvision documents 0.349 "GFLOPS" for squeezenet1_1 -- they are MACs; we count 2/MAC."""
    model = build_expert(ExpertSpec("sq", "torchvision:squeezenet1_1"), num_classes=1000)
    flops = count_flops(model, input_shape=(1, 3, 224, 224))
    assert flops == pytest.approx(2 * 0.349e9, rel=0.03)


def test_fused_cpu_attention_is_counted():
    spec = ExpertSpec("d", "timm:deit_small_patch16_224", kwargs=dict(
        img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2))
    model = build_expert(spec, num_classes=3, seed=0)
    fused = count_flops(model, input_shape=(1, 3, 16, 16))
    for block in model.blocks:
        block.attn.fused_attn = False                          # explicit q @ k^T, attn @ v
    assert count_flops(model, input_shape=(1, 3, 16, 16)) == fused


class _Counting(nn.Module):
    """Counts forward calls and keeps the inputs it saw."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.seen = []

    def forward(self, x):
        self.seen.append(x.clone())
        return self.lin(x)


def _fake_clock(monkeypatch, durations_ms):
    """perf_counter_ns steps by the given durations, one (start, stop) pair per timed call."""
    ticks, now = [], 0
    for d in durations_ms:
        ticks += [now, now + int(d * 1e6)]
        now += int(d * 1e6) + 7
    monkeypatch.setattr("trainers.cost.time.perf_counter_ns", iter(ticks).__next__)


def test_cpu_times_are_milliseconds_and_percentiles_by_hand(monkeypatch):
    """11 timed calls of 1..11 ms: median 6, p10 2, p90 10 (numpy's linear interpolation:
    position 0.1 * 10 = 1 -> 2 ms, 0.9 * 10 = 9 -> 10 ms)."""
    _fake_clock(monkeypatch, [5, 1, 9, 2, 11, 3, 7, 4, 10, 6, 8])
    model = _Counting()
    r = measure_latency_ms(model, input_shape=(1, 2), warmup=3, repeats=11)
    assert (r["median_ms"], r["p10_ms"], r["p90_ms"]) == (6.0, 2.0, 10.0)
    assert len(model.seen) == 3 + 11                      # warmup untimed, then the repeats
    assert r["device"] == "cpu" and r["input_shape"] == [1, 2] and r["repeats"] == 11
    assert r["threads"] == torch.get_num_threads()


def test_default_warmup_and_repeats_are_10_and_50(monkeypatch):
    _fake_clock(monkeypatch, [1.0] * 50)
    model = _Counting()
    r = measure_latency_ms(model, input_shape=(1, 2))
    assert len(model.seen) == 60 and r["repeats"] == 50 and r["median_ms"] == 1.0


def test_the_timed_input_is_the_same_every_call(monkeypatch):
    """A fixed input (seeded, not drawn per call): two measurements see the same tensor."""
    model = _Counting()
    measure_latency_ms(model, input_shape=(1, 2), warmup=0, repeats=1)
    measure_latency_ms(model, input_shape=(1, 2), warmup=0, repeats=1)
    assert torch.equal(model.seen[0], model.seen[1]) and model.seen[0].abs().sum() > 0


@pytest.mark.parametrize("warmup, repeats, ok", [(0, 1, True), (-1, 1, False), (0, 0, False)])
def test_smallest_warmup_and_repeats(warmup, repeats, ok):
    """warmup 0 and one repeat are valid; negative warmup or no repeat are not."""
    call = lambda: measure_latency_ms(nn.Linear(2, 2), input_shape=(1, 2), warmup=warmup,
                                      repeats=repeats)
    if ok:
        assert call()["repeats"] == repeats
    else:
        with pytest.raises(ValueError, match="repeats must be >= 1 and warmup >= 0"):
            call()


def test_flops_of_a_model_without_parameters_restores_train_mode():
    """No parameters: counted on the CPU; a pure ReLU has no FLOPs in the counter's table."""
    model = nn.Sequential(nn.ReLU()).train()
    assert count_flops(model, input_shape=(1, 4)) == 0 and model.training
    lin = nn.Linear(3, 5).train()
    assert count_flops(lin, input_shape=(2, 3)) == 2 * 2 * 3 * 5 and lin.training
