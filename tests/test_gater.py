import numpy as np
import pytest
import torch
import torch.nn as nn

from trainers import gater as G


def test_latency_term_hand_worked_example():
    c = torch.tensor([2.14, 10.59, 7.56])
    val = G.latency_term(y_soft=torch.tensor([[0.5, 0.0, 0.5]]), costs=c)
    assert val.item() == pytest.approx(0.3207, abs=1e-4)


def test_composite_loss_matches_formula():
    torch.manual_seed(0)
    logits, labels = torch.randn(4, 3, 5), torch.tensor([0, 1, 2, 3])
    z = torch.eye(3)[[0, 1, 2, 0]]
    y_soft = torch.full((4, 3), 1 / 3)
    c = torch.tensor([1.0, 3.0, 2.0])
    loss, l_class, l_lat = G.composite_loss(z=z, y_soft=y_soft, expert_logits=logits,
                                            labels=labels, costs=c, lam=0.7, ce_scale=3.0)
    mixed = logits[torch.arange(4), torch.tensor([0, 1, 2, 0])]
    ce = torch.nn.functional.cross_entropy(mixed, labels) / 3.0
    assert l_class.item() == pytest.approx(ce.item())
    assert l_lat.item() == pytest.approx(0.5)   # (2 - 1) / (3 - 1)
    assert loss.item() == pytest.approx(0.7 * ce.item() + 0.3 * 0.5)


def test_gumbel_st_forward_one_hot_gradient_soft():
    logits = torch.randn(6, 3, requires_grad=True)
    gen = torch.Generator().manual_seed(0)
    z, y_soft = G.gumbel_softmax_st(logits, tau=0.7, generator=gen)
    assert torch.equal(z.detach().sum(-1), torch.ones(6))
    assert set(z.detach().unique().tolist()) <= {0.0, 1.0}
    w = torch.randn(6, 3)
    (gz,) = torch.autograd.grad((z * w).sum(), logits)
    logits2 = logits.detach().clone().requires_grad_(True)
    _, y2 = G.gumbel_softmax_st(logits2, tau=0.7, generator=torch.Generator().manual_seed(0))
    (gs,) = torch.autograd.grad((y2 * w).sum(), logits2)
    assert torch.allclose(gz, gs)


def _gumbel_by_hand(shape, seed):
    """g = -log(-log u), u ~ U(0,1) the generator's first draw of `shape`."""
    u = torch.rand(shape, generator=torch.Generator().manual_seed(seed))
    return -torch.log(-torch.log(u))


def test_gumbel_soft_sample_is_softmax_of_noisy_logits_over_tau():
    # y_soft = softmax((l + g) / tau) with g from the same generator's uniforms; z one-hot of
    # argmax(l + g). tau = 0.5 != 1, so a dropped tau shows; the logits are not all equal.
    logits = torch.tensor([[0.0, 1.0, -0.5], [2.0, 0.0, 0.3], [0.1, 0.1, 0.1], [-1.0, 3.0, 0.0]])
    g = _gumbel_by_hand(logits.shape, seed=3)
    z, y_soft = G.gumbel_softmax_st(logits, tau=0.5, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(y_soft, torch.softmax((logits + g) / 0.5, -1))
    assert torch.equal(z, torch.eye(3)[(logits + g).argmax(-1)])


def test_gumbel_tau_sharpens_and_flattens():
    logits = torch.tensor([[0.0, 1.0, 2.0]] * 8)
    g = _gumbel_by_hand(logits.shape, seed=4)
    cold = G.gumbel_softmax_st(logits, tau=1e-3, generator=torch.Generator().manual_seed(4))[1]
    hot = G.gumbel_softmax_st(logits, tau=1e3, generator=torch.Generator().manual_seed(4))[1]
    # tau -> 0: the one-hot of argmax(l + g); tau -> inf: uniform 1/E
    torch.testing.assert_close(cold, torch.eye(3)[(logits + g).argmax(-1)], atol=1e-6, rtol=0)
    torch.testing.assert_close(hot, torch.full((8, 3), 1 / 3), atol=2e-3, rtol=0)


def test_gumbel_noise_is_present():
    # equal logits: without noise y_soft would be uniform and equal for every generator state
    gen = torch.Generator().manual_seed(1)
    a = G.gumbel_softmax_st(torch.zeros(5, 3), tau=1.0, generator=gen)[1]
    b = G.gumbel_softmax_st(torch.zeros(5, 3), tau=1.0, generator=gen)[1]   # state moved on
    assert not torch.allclose(a, b)
    assert (a - 1 / 3).abs().max() > 0.1 and (b - 1 / 3).abs().max() > 0.1


class _Expert(nn.Module):
    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))

    def forward(self, x):
        return self.net(x)


def _expert_input(i, images_u8):
    return images_u8.permute(0, 3, 1, 2).float() / 255.0


@pytest.mark.parametrize("precision", G.PRECISIONS)
def test_cached_and_algorithm1_trainers_agree(precision):
    rng = np.random.default_rng(0)
    images = torch.as_tensor(rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8))
    gin = torch.as_tensor(rng.integers(0, 256, (40, 16, 16, 3), dtype=np.uint8))
    labels = torch.as_tensor(rng.integers(0, 4, 40))
    experts = [_Expert(s).eval() for s in range(3)]
    with torch.no_grad():
        cached = torch.stack([e(_expert_input(i, images)) for i, e in enumerate(experts)], 1)
    costs = torch.tensor([1.0, 4.0, 2.5])
    losses = []
    for algo in ("cached", "algorithm1"):
        torch.manual_seed(0)
        gater = G.Gater(3, embed_dim=16)
        opt = torch.optim.Adam(gater.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(5)
        run = []
        for _ in range(2):
            if algo == "cached":
                m = G.train_epoch(gater, opt, G.GaterData(gin, cached, labels), costs=costs,
                                  lam=0.8, tau=1.0, batch_size=8, generator=gen,
                                  precision=precision)
            else:
                m = G.train_epoch_algorithm1(gater, opt, experts, images=images, gater_input=gin,
                                             labels=labels, costs=costs, lam=0.8, tau=1.0,
                                             expert_input=_expert_input, batch_size=8,
                                             generator=gen, precision=precision)
            run.append(m["loss"])
        losses.append(run)
    assert np.allclose(losses[0], losses[1], rtol=1e-5, atol=1e-6)
    assert np.isfinite(losses).all()


def test_bf16_training_moves_the_gater_like_fp32():
    """gater.precision bf16 is an approximation of the fp32 step, not another algorithm: one
    epoch from the same state ends at nearly the same loss and routing logits."""
    rng = np.random.default_rng(1)
    gin = torch.as_tensor(rng.integers(0, 256, (64, 16, 16, 3), dtype=np.uint8))
    data = G.GaterData(gin, torch.as_tensor(rng.normal(size=(64, 3, 4)).astype(np.float32)),
                       torch.as_tensor(rng.integers(0, 4, 64)))
    out = {}
    for precision in G.PRECISIONS:
        torch.manual_seed(0)
        gater = G.Gater(3, embed_dim=16)
        opt = torch.optim.Adam(gater.parameters(), lr=1e-3)
        m = G.train_epoch(gater, opt, data, costs=torch.tensor([1.0, 4.0, 2.5]), lam=0.8,
                          tau=1.0, batch_size=16, generator=torch.Generator().manual_seed(5),
                          precision=precision)
        with torch.no_grad():
            out[precision] = (m["loss"], gater.eval()(G.to_float_nchw(gin)))
    assert out["bf16"][0] == pytest.approx(out["fp32"][0], rel=2e-2)
    assert torch.allclose(out["bf16"][1], out["fp32"][1], atol=5e-2)


def _fixed_gater(bias, num_experts=3):
    """A Gater whose routing logits are `bias` for every input (head weight 0)."""
    gater = G.Gater(num_experts, embed_dim=8)
    with torch.no_grad():
        gater.head.weight.zero_()
        gater.head.bias.copy_(torch.tensor(bias))
    return gater


def test_route_argmax_picks_the_favoured_expert():
    gin = torch.as_tensor(np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8))
    gater = _fixed_gater([0.0, 0.5, -0.2])        # argmax 1, argmin 2
    assert G.route(gater, gin).tolist() == [1] * 6
    assert G.route(gater, gin, batch_size=4).tolist() == [1] * 6   # two batches
    # sampled: argmax of l + g with the generator's Gumbel noise (tau does not move the argmax)
    g = _gumbel_by_hand((6, 3), seed=9)
    want = (torch.tensor([0.0, 0.5, -0.2]) + g).argmax(-1)
    got = G.route(gater, gin, mode="sampled", tau=0.5, generator=torch.Generator().manual_seed(9))
    assert got.tolist() == want.tolist() and len(set(want.tolist())) > 1


def test_evaluate_routes_by_argmax_and_costs_include_gater():
    gin = torch.zeros(4, 16, 16, 3, dtype=torch.uint8)
    logits = torch.zeros(4, 3, 2)                  # [N, E, C]
    logits[:, 0, 0] = 1.0                          # expert 0 predicts class 0
    logits[:, 1, 1] = 1.0                          # expert 1 predicts class 1
    logits[:, 2, 0] = 1.0                          # expert 2 predicts class 0
    labels = torch.tensor([1, 0, 1, 1])
    data = G.GaterData(gin, logits, labels)
    out = G.evaluate(_fixed_gater([0.0, 2.0, -1.0]), data, costs_ms=np.array([1.0, 5.0, 3.0]),
                     gater_ms=0.5)
    assert out["target"].tolist() == [1, 1, 1, 1]
    assert out["correct"].tolist() == [True, False, True, True]     # expert 1 vs the labels
    np.testing.assert_array_equal(out["cost"], [5.5] * 4)           # gater 0.5 + expert 1's 5


def test_trial_gater_starts_from_the_shipped_pretrained_trunk(monkeypatch):
    """gater.trunk_pretrained: the driver ships the trunk's weights with the store once and
    every trial loads them; the down block and head keep their seeded initialisation."""
    from sweep import pipeline
    from sweep.config import load_config
    from sweep.families.gater import new_gater
    torch.manual_seed(123)
    ref = {k: v.numpy().copy() for k, v in G.Gater(3, embed_dim=8).trunk.state_dict().items()}
    monkeypatch.setattr(G, "pretrained_trunk_state", lambda: ref)
    cfg = load_config(None, ["gater.trunk_pretrained=true"])
    store = pipeline.shared_store({"meta": {"x": 1}, "train": {}}, cfg)
    assert store["meta"] == {} and store["gater_trunk"] is ref
    s = {"expert_ms": [1.0, 2.0, 3.0], "embed_dim": 8, "trunk_pretrained": True}
    g, r = new_gater(s, store, seed=0), new_gater({**s, "trunk_pretrained": False}, {}, seed=0)
    for k, v in g.trunk.state_dict().items():
        assert np.array_equal(v.numpy(), ref[k])
    assert not torch.equal(g.trunk[0].weight, r.trunk[0].weight)
    assert torch.equal(g.head.weight, r.head.weight) and torch.equal(g.down[0].weight,
                                                                     r.down[0].weight)
    assert "gater_trunk" not in pipeline.shared_store({"meta": {}}, load_config(None))


def test_gater_data_from_store_reads_each_array_of_its_split():
    """The split's three arrays as tensors, same values and dtypes (no other key read)."""
    split = {"gater_input": np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3),
             "expert_logits": np.array([[[0.5, -1.0]], [[2.0, 3.0]]], np.float32),
             "label": np.array([1, 0], np.int64), "severity": np.array([0, 3])}
    d = G.GaterData.from_store(split, device="cpu")
    assert d.gater_input.dtype == torch.uint8 and d.gater_input.shape == (2, 4, 4, 3)
    assert torch.equal(d.gater_input, torch.as_tensor(split["gater_input"]))
    assert d.expert_logits.tolist() == [[[0.5, -1.0]], [[2.0, 3.0]]]
    assert d.labels.dtype == torch.int64 and d.labels.tolist() == [1, 0]
    assert d.labels.device.type == "cpu"
