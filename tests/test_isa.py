"""Backbone and gater training survive oneDNN's AVX2 kernels (issue 16: a heap overflow in the
channels-last 1x1 stride-2 backward-weights kernel, see trainers/layout.py; a pure-PyTorch
reproduction is in docs/onednn-avx2-channels-last.md).

Training runs in a fresh subprocess: a corrupted heap dies by a signal there instead of taking
pytest down, and the ISA caps only act at start-up. 1 torch thread, as a trial runs. glibc's
malloc checks are preloaded where they exist, so an overwrite aborts at the next free() rather
than maybe later. "native" is the machine's own ISA (AVX-512/AMX on an Intel Xeon; skipped where
that is AVX2). Each case costs ~10 CPU s, nearly all of it `import torch`.
"""
import json
import math
import os
import subprocess
import sys
import sysconfig

import pytest
import torch

from trainers import gater as G
from trainers.layout import MIN_IN_CHANNELS, unsafe_convs
from trainers.multiexit import MultiExitResNet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The child: the backbone at width 4 (its first shortcut is a 1x1 stride-2 conv with 4 input
# channels: the crash of issue 16) and 16 (channels-last), then the gater at the tiny shape.
# Prints {name: [losses]}.
CHILD = r"""
import json, numpy as np, torch
from trainers import gater as G
from trainers.multiexit import MultiExitResNet, train_backbone
torch.set_num_threads(1)
rng = np.random.default_rng(0)
out = {"capability": torch.backends.cpu.get_cpu_capability()}
x = rng.integers(0, 256, (48, 16, 16, 3)).astype(np.uint8)
y = rng.integers(0, 2, 48)
for width in (4, 16):
    seen = []
    train_backbone(MultiExitResNet(2, width=width), images=x, labels=y, epochs=2, lr=0.05,
                   batch_size=16, seed=0, augment=True, progress=lambda e, m: seen.append(m))
    out[f"backbone_w{width}"] = [m["loss"] for m in seen]
torch.manual_seed(0)
data = G.GaterData(torch.as_tensor(x), torch.randn(48, 3, 2), torch.as_tensor(y))
gater = G.Gater(3, embed_dim=64)
opt, gen = torch.optim.Adam(gater.parameters(), lr=1e-3), torch.Generator().manual_seed(0)
out["gater"] = [G.train_epoch(gater, opt, data, costs=torch.tensor([1.0, 2.0, 3.0]), lam=0.8,
                              tau=1.0, batch_size=16, generator=gen)["loss"] for _ in range(2)]
print(json.dumps(out))
"""

ISAS = {"avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}, "native": {}}


def _malloc_checks() -> dict:
    """glibc >= 2.34 keeps MALLOC_CHECK_ in libc_malloc_debug.so: preload it if present."""
    arch = sysconfig.get_config_var("MULTIARCH") or ""
    for d in (f"/lib/{arch}", f"/usr/lib/{arch}", "/lib64", "/usr/lib64"):
        lib = os.path.join(d, "libc_malloc_debug.so.0")
        if os.path.exists(lib):
            return {"LD_PRELOAD": lib, "MALLOC_CHECK_": "3"}
    return {}


@pytest.mark.slow
@pytest.mark.parametrize("isa", sorted(ISAS))
def test_training_survives_the_isa(isa):
    if isa == "native" and torch.backends.cpu.get_cpu_capability() == "AVX2":
        pytest.skip("the native ISA is AVX2 here: the avx2 case already ran it")
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1", **ISAS[isa],
           **_malloc_checks()}
    r = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, (f"training died (rc {r.returncode}; negative = signal) under "
                               f"{ISAS[isa] or 'the native ISA'}:\n{r.stderr[-3000:]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(out) == {"capability", "backbone_w4", "backbone_w16", "gater"}
    for name in ("backbone_w4", "backbone_w16", "gater"):
        assert len(out[name]) == 2 and all(math.isfinite(v) for v in out[name]), (name, out)
    if isa == "avx2":
        assert out["capability"] in ("AVX2", "DEFAULT"), out     # ATen capped too


@pytest.mark.parametrize("width,fmt", [(4, torch.contiguous_format), (15, torch.contiguous_format),
                                       (16, torch.channels_last), (64, torch.channels_last)])
def test_backbone_memory_format_follows_its_narrowest_strided_1x1_conv(width, fmt):
    """The first shortcut of stage 2 is a 1x1 stride-2 conv with `width` input channels."""
    m = MultiExitResNet(3, width=width)
    assert m.memory_format == fmt
    assert unsafe_convs(m) == ([] if width >= MIN_IN_CHANNELS else
                               [f"stages.{k}.0.downsample.0" for k in range(1, 4)
                                if width * 2 ** (k - 1) < MIN_IN_CHANNELS])


def _stem_input_format(model, first_conv, x) -> tuple[bool, bool]:
    """(is NCHW-contiguous, is channels-last) of what `first_conv` receives."""
    seen = []
    h = first_conv.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    with torch.no_grad():
        model(x)
    h.remove()
    return seen[0].is_contiguous(), seen[0].is_contiguous(memory_format=torch.channels_last)


def test_models_run_in_their_memory_format_whatever_the_input_strides():
    nhwc = torch.rand(2, 8, 8, 3).permute(0, 3, 1, 2)              # channels-last strides
    nchw = nhwc.contiguous()
    narrow, wide = MultiExitResNet(2, width=4).eval(), MultiExitResNet(2, width=16).eval()
    for x in (nhwc, nchw):
        assert _stem_input_format(narrow, narrow.stem[0], x) == (True, False)
        assert _stem_input_format(wide, wide.stem[0], x) == (False, True)
        torch.testing.assert_close(narrow(x), narrow(nchw))         # values do not move
    gater = G.Gater(2, embed_dim=16).eval()
    assert gater.memory_format == torch.channels_last and not unsafe_convs(gater)
    assert _stem_input_format(gater, gater.trunk[0], nchw) == (False, True)
    x = G.to_float_nchw(torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8))
    assert x.is_contiguous(memory_format=torch.channels_last)      # forward converts nothing
