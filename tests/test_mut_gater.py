"""The gater's arithmetic, value by value (trainers/gater.py): what mutation testing showed the
behavioural tests in test_gater.py let through. Each test names the bug it stops."""
import copy

import numpy as np
import pytest
import torch

from trainers import gater as G
from trainers.experts import IMAGENET_MEAN, IMAGENET_STD


def _tiny_gater(num_experts=3, seed=0):
    torch.manual_seed(seed)
    return G.Gater(num_experts, embed_dim=8)


def test_to_float_nchw_scales_by_255_then_normalises():
    """White (255) is 1.0 before the ImageNet normalisation, black 0.0 (not 255/256)."""
    img = torch.zeros(1, 2, 2, 3, dtype=torch.uint8)
    img[0, 0, 0] = 255
    x = G.to_float_nchw(img)                                     # [1,3,2,2]
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    assert x.shape == (1, 3, 2, 2)
    assert torch.allclose(x[0, :, 0, 0], (1.0 - mean) / std, atol=1e-6)
    assert torch.allclose(x[0, :, 1, 1], -mean / std, atol=1e-6)


def test_latency_term_with_a_cost_span_below_one():
    """Costs 0.1 and 0.3 (span 0.2 < 1): an even mix sits half-way, 0.5."""
    val = G.latency_term(y_soft=torch.tensor([[0.5, 0.5]]), costs=torch.tensor([0.1, 0.3]))
    assert val.item() == pytest.approx(0.5, abs=1e-6)


def test_composite_loss_divides_the_ce_by_3_by_default():
    logits = torch.tensor([[[2.0, 0.0]], [[0.0, 1.0]]])            # [B=2,E=1,C=2]
    labels = torch.tensor([0, 0])
    z = torch.ones(2, 1)
    loss, l_class, _ = G.composite_loss(z=z, y_soft=z, expert_logits=logits, labels=labels,
                                        costs=torch.tensor([1.0]), lam=1.0)
    ce = (np.log(1 + np.exp(-2.0)) + np.log(1 + np.exp(1.0))) / 2
    assert l_class.item() == pytest.approx(ce / 3, rel=1e-5) and loss.item() == l_class.item()


def test_batches_follow_the_generator_and_cover_every_index():
    """Same seed -> same batches; every index once; sizes 4, 4, 2 for 10 in batches of 4."""
    a = G._batches(10, 4, torch.Generator().manual_seed(5))
    b = G._batches(10, 4, torch.Generator().manual_seed(5))
    assert [len(x) for x in a] == [4, 4, 2]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert sorted(torch.cat(a).tolist()) == list(range(10))
    c = G._batches(10, 4, torch.Generator().manual_seed(6))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


def _step_inputs():
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (4, 16, 16, 3), generator=gen, dtype=torch.uint8)   # images
    logits = torch.randn(4, 3, 5, generator=gen)
    labels = torch.tensor([0, 1, 2, 3])
    return x, logits, labels, torch.tensor([1.0, 3.0, 2.0])


def test_step_fp32_is_the_composite_loss_of_one_gumbel_draw():
    """fp32: no autocast; the returned [L, L_class, L_lat] are composite_loss on the Gumbel
    sample drawn from THE generator, with the given ce_scale; the step moves the weights along
    that loss's gradient only."""
    x, logits, labels, costs = _step_inputs()
    gater = _tiny_gater()
    ref = copy.deepcopy(gater)
    opt = torch.optim.SGD(gater.parameters(), lr=0.1)
    out = G._step(gater, opt, x, lambda: logits, labels, costs=costs, lam=0.6, tau=0.7,
                  ce_scale=2.0, generator=torch.Generator().manual_seed(9))
    z, y_soft = G.gumbel_softmax_st(ref(G.to_float_nchw(x)).float(), tau=0.7,
                                    generator=torch.Generator().manual_seed(9))
    want = G.composite_loss(z=z, y_soft=y_soft, expert_logits=logits, labels=labels,
                            costs=costs, lam=0.6, ce_scale=2.0)
    assert out.tolist() == pytest.approx([w.item() for w in want], abs=1e-6)
    want[0].backward()
    w0 = next(ref.parameters())
    assert torch.allclose(next(gater.parameters()), w0 - 0.1 * w0.grad, atol=1e-6)


def test_step_twice_does_not_accumulate_gradients():
    """zero_grad each step: two steps with lr 0 then lr > 0 move like one step."""
    x, logits, labels, costs = _step_inputs()
    kw = dict(costs=costs, lam=0.5, tau=1.0, ce_scale=3.0)
    a, b = _tiny_gater(), _tiny_gater()
    opt_a = torch.optim.SGD(a.parameters(), lr=0.1)
    opt_a.param_groups[0]["lr"] = 0.0
    G._step(a, opt_a, x, lambda: logits, labels, generator=torch.Generator().manual_seed(1), **kw)
    opt_a.param_groups[0]["lr"] = 0.1
    G._step(a, opt_a, x, lambda: logits, labels, generator=torch.Generator().manual_seed(2), **kw)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1)
    G._step(b, opt_b, x, lambda: logits, labels, generator=torch.Generator().manual_seed(2), **kw)
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(a.parameters(), b.parameters()))


def test_mean_metrics_by_hand_and_only_the_total_loss_is_checked_for_nan():
    rows = [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([3.0, 4.0, 5.0])]
    assert G._mean_metrics(rows, lam=0.5, tau=1.0) == {"loss": 2.0, "loss_class": 3.0,
                                                       "loss_latency": 4.0}
    nan_term = [torch.tensor([1.0, float("nan"), 3.0])]           # a term, not the loss
    assert G._mean_metrics(nan_term, lam=0.5, tau=1.0)["loss"] == 1.0
    with pytest.raises(FloatingPointError, match=r"loss inf at step 1 \(lam=0.5, tau=2.0\)"):
        G._mean_metrics([torch.tensor([1.0, 0, 0]), torch.tensor([float("inf"), 0, 0])],
                        lam=0.5, tau=2.0)


def _data(n=6, e=3, c=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return G.GaterData(torch.randint(0, 256, (n, 16, 16, 3), dtype=torch.uint8, generator=g),
                       torch.randn(n, e, c, generator=g), torch.randint(0, c, (n,), generator=g))


def test_train_epoch_names_lam_and_tau_in_a_non_finite_loss():
    data = _data()
    gater = _tiny_gater()
    with pytest.raises(FloatingPointError, match=r"\(lam=0.25, tau=3.0\)"):
        G.train_epoch(gater, torch.optim.SGD(gater.parameters(), lr=0.1), data,
                      costs=torch.tensor([1.0, float("nan"), 2.0]), lam=0.25, tau=3.0,
                      generator=torch.Generator().manual_seed(0))


def test_algorithm1_batches_of_32_by_default_and_names_each_expert():
    """33 samples: 2 batches of the default 32 (+1); every batch asks expert i for input i."""
    n, calls = 33, []
    imgs = torch.zeros(n, 8, 8, 3, dtype=torch.uint8)
    experts = [lambda x, k=k: torch.full((len(x), 2), float(k)) for k in range(3)]

    def expert_input(i, batch):
        calls.append((i, len(batch)))
        return batch
    gater = _tiny_gater()
    G.train_epoch_algorithm1(gater, torch.optim.SGD(gater.parameters(), lr=0.0), experts,
                             images=imgs, gater_input=torch.zeros(n, 16, 16, 3, dtype=torch.uint8),
                             labels=torch.zeros(n, dtype=torch.int64),
                             costs=torch.tensor([1.0, 2.0, 3.0]), lam=0.5, tau=1.0,
                             expert_input=expert_input, generator=torch.Generator().manual_seed(0))
    assert sorted(calls) == sorted([(i, 32) for i in range(3)] + [(i, 1) for i in range(3)])


def test_algorithm1_names_lam_and_tau_in_a_non_finite_loss():
    n = 4
    gater = _tiny_gater()
    with pytest.raises(FloatingPointError, match=r"\(lam=0.25, tau=3.0\)"):
        G.train_epoch_algorithm1(
            gater, torch.optim.SGD(gater.parameters(), lr=0.0),
            [lambda x: torch.zeros(len(x), 2)] * 3, images=torch.zeros(n, 8, 8, 3, dtype=torch.uint8),
            gater_input=torch.zeros(n, 16, 16, 3, dtype=torch.uint8),
            labels=torch.zeros(n, dtype=torch.int64), costs=torch.tensor([1.0, float("nan"), 2.0]),
            lam=0.25, tau=3.0, expert_input=lambda i, b: b,
            generator=torch.Generator().manual_seed(0))


def test_evaluate_sampled_routes_with_the_given_generator_and_tau():
    """mode="sampled": evaluate's routes are route()'s with the same generator state; a tau
    of None cannot be used (the sample divides by it)."""
    data, gater = _data(n=64), _tiny_gater()
    with torch.no_grad():
        gater.head.bias.copy_(torch.tensor([0.0, 0.1, -0.1]))
    ev = G.evaluate(gater, data, costs_ms=np.array([1.0, 2.0, 3.0]), gater_ms=0.5, mode="sampled",
                    tau=0.5, generator=torch.Generator().manual_seed(3))
    want = G.route(gater, data.gater_input, mode="sampled", tau=0.5,
                   generator=torch.Generator().manual_seed(3))
    assert ev["target"].tolist() == want.tolist() and len(set(want.tolist())) > 1
    other = G.route(gater, data.gater_input, mode="sampled", tau=0.5,
                    generator=torch.Generator().manual_seed(4))
    assert other.tolist() != want.tolist()                       # the generator matters


def test_evaluate_reads_each_experts_prediction_over_classes():
    """expert_logits [N,E,C] with E != C: correctness is argmax over classes of the routed
    expert (argmax over experts would index the wrong axis)."""
    gater = _tiny_gater(num_experts=2)
    with torch.no_grad():
        gater.head.weight.zero_()
        gater.head.bias.copy_(torch.tensor([0.0, 1.0]))         # always expert 1
    logits = torch.tensor([[[9.0, 0.0, 0.0], [0.0, 0.0, 5.0]],   # expert 1 says class 2
                           [[0.0, 9.0, 0.0], [0.0, 5.0, 0.0]]])  # expert 1 says class 1
    data = G.GaterData(torch.zeros(2, 16, 16, 3, dtype=torch.uint8), logits, torch.tensor([2, 0]))
    ev = G.evaluate(gater, data, costs_ms=np.array([1.0, 4.0]), gater_ms=0.25)
    assert ev["target"].tolist() == [1, 1] and ev["correct"].tolist() == [True, False]
    assert ev["cost"].tolist() == [4.25, 4.25]


def test_route_cost_takes_routes_stored_as_floats():
    """A route read back from a table may be float; it still indexes the expert costs."""
    out = G.route_cost_ms(np.array([1.0, 0.0]), costs_ms=[2, 7], gater_ms=0.5)
    assert out.tolist() == [7.5, 2.5] and out.dtype == np.float64
