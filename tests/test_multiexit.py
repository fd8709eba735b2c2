"""Multi-exit ResNet: shapes for both stems, FLOPs per exit, tiny training, exit heads."""
import numpy as np
import pytest
import torch

from trainers.multiexit import (MultiExitResNet, augment_batch, exit_costs, exit_flops,
                                exit_logits, extract_exit_features, forward_flops,
                                head_flops, train_backbone, train_exit_heads)

torch.set_num_threads(1)


@pytest.mark.parametrize("stem,size,spatial", [("cifar", 32, [32, 16, 8, 4]),
                                               ("imagenet", 64, [16, 8, 4, 2])])
def test_stage_feature_shapes(stem, size, spatial):
    m = MultiExitResNet(7, stem=stem, width=8).eval()
    x = torch.rand(2, 3, size, size)
    feats = m.stage_features(x)
    assert [tuple(f.shape) for f in feats] == [(2, 8), (2, 16), (2, 32), (2, 64)]
    assert [h.shape[-1] for h in m._maps(x)] == spatial
    assert m(x).shape == (2, 7)
    torch.testing.assert_close(m.fc(feats[-1]), m(x))


def test_exit_flops_increase_and_last_is_full_forward():
    for stem, size in (("cifar", 32), ("imagenet", 64)):
        m = MultiExitResNet(10, stem=stem, width=8).train()
        before = {k: v.clone() for k, v in m.state_dict().items()}
        flops = exit_flops(m, image_size=size)
        assert m.training and all(torch.equal(v, before[k]) for k, v in m.state_dict().items())
        assert len(flops) == 4 and all(b > a > 0 for a, b in zip(flops, flops[1:]))
        full = forward_flops(m, image_size=size)
        assert abs(flops[-1] - full) / full < 1e-3                 # only the tiny fc differs
        c = exit_costs(flops, "flops")
        assert c[-1] == 1.0 and np.all(np.diff(c) > 0)
    np.testing.assert_allclose(exit_costs(flops, "uniform"), [0.25, 0.5, 0.75, 1.0])
    with pytest.raises(ValueError):
        exit_costs(flops, "latency")


def test_paper_width_cifar_costs_are_near_uniform():
    """At width 64 / 32 px the measured cumulative FLOPs are close to the paper's 1/4 steps."""
    c = exit_costs(exit_flops(MultiExitResNet(10, width=64), image_size=32), "flops")
    np.testing.assert_allclose(c, [0.25, 0.5, 0.75, 1.0], atol=0.03)


def test_model_init_is_seeded():
    a, b = MultiExitResNet(5, width=4, seed=3), MultiExitResNet(5, width=4, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = MultiExitResNet(5, width=4, seed=4)
    assert not torch.equal(a.fc.weight, c.fc.weight)
    with pytest.raises(ValueError):
        MultiExitResNet(5, stem="vit")


def test_augment_batch_crop_and_flip():
    x = torch.rand(6, 3, 16, 16)
    y = augment_batch(x, ops=("flip",), gen=torch.Generator().manual_seed(0))
    assert all(torch.equal(y[i], x[i]) or torch.equal(y[i], x[i].flip(2)) for i in range(6))
    c1 = augment_batch(x, ops=("crop",), gen=torch.Generator().manual_seed(1))
    c2 = augment_batch(x, ops=("crop",), gen=torch.Generator().manual_seed(1))
    assert c1.shape == x.shape and torch.equal(c1, c2)
    ones = augment_batch(torch.ones(4, 3, 16, 16), ops=("crop",), gen=torch.Generator())
    assert set(ones.unique().tolist()) <= {0.0, 1.0}              # zero padding shifted in
    assert torch.equal(augment_batch(x, ops=(), gen=torch.Generator()), x)


def _toy_images(n=48, size=16, seed=0):
    """Two classes: bright vs dark images (learnable in one epoch)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.integers(0, 80, (n, size, size, 3)) + 150 * y[:, None, None, None]
    return x.astype(np.uint8), y


def test_train_backbone_freezes_and_is_deterministic():
    x, y = _toy_images()
    kw = dict(images=x, labels=y, epochs=1, lr=0.05, batch_size=16, seed=0, augment=("crop",))
    seen = []
    a = train_backbone(MultiExitResNet(2, width=4), progress=lambda e, m: seen.append(m), **kw)
    b = train_backbone(MultiExitResNet(2, width=4), **kw)
    assert not a.training and not any(p.requires_grad for p in a.parameters())
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert len(seen) == 1 and a.train_record["optimizer"] == "sgd"
    feats = extract_exit_features(a, images=x, batch_size=20)
    assert [f.shape for f in feats] == [(48, 4), (48, 8), (48, 16), (48, 32)]
    assert all(f.dtype == np.float32 for f in feats)
    with pytest.raises(ValueError):
        train_backbone(MultiExitResNet(2, width=4), **{**kw, "augment": ("rotate",)})
    with pytest.raises(ValueError):
        train_backbone(MultiExitResNet(2, width=4), **{**kw, "epochs": 0})


def test_exit_heads_learn_and_shapes():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    feats = [rng.normal(size=(300, d)).astype(np.float32) for d in (4, 6)]
    feats[1][:, 0] += 3.0 * y                                      # only exit 1 sees the class
    heads = train_exit_heads(feats, y, hidden=16, epochs=30, lr=1e-2, batch_size=64, seed=0)
    z = exit_logits(heads, feats)
    assert z.shape == (300, 2, 3) and z.dtype == np.float32
    acc = (z.argmax(-1) == y[:, None]).mean(0)
    assert acc[1] > 0.9 and acc[1] > acc[0]
    again = exit_logits(train_exit_heads(feats, y, hidden=16, epochs=30, lr=1e-2,
                                         batch_size=64, seed=0), feats)
    np.testing.assert_array_equal(z, again)
    m = MultiExitResNet(3, width=4)
    hf = head_flops(heads)
    assert hf[0] == 2 * (4 * 16 + 16 * 3)                            # 2 FLOPs per MAC
    base = exit_flops(m, image_size=16)
    with_heads = exit_flops(m, image_size=16, heads=train_exit_heads(
        [np.zeros((8, d), np.float32) for d in m.dims], np.arange(8) % 3, hidden=8, epochs=1,
        lr=1e-3, batch_size=8, seed=0))
    assert all(w > b for w, b in zip(with_heads, base))
