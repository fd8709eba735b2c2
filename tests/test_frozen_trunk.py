"""`gater.trunk: frozen` (issue 15): the cached trunk activations, the tail-only trainer, the
grid's variant, the store part and its key. Laws: training the tail on the cached fp32
activations IS training the whole gater with its trunk frozen (same losses, same routes); the
trunk never moves; the key follows the trunk's weights and the cache dtype."""
import numpy as np
import pytest
import torch

from sweep.config import load_config
from sweep.errors import UserError
from sweep.families import get
from sweep.families.gater import FROZEN, new_gater, parts, variants
from trainers import gater as G

E, C, N, g = 3, 4, 40, 16


def _split(seed=0):
    rng = np.random.default_rng(seed)
    return {"gater_input": rng.integers(0, 256, (N, g, g, 3)).astype(np.uint8),
            "expert_logits": rng.normal(size=(N, E, C)).astype(np.float32),
            "label": rng.integers(0, C, N).astype(np.int64)}


def _train(data, gater, *, epochs=2):
    opt = torch.optim.Adam([p for p in gater.parameters() if p.requires_grad], lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    losses = [G.train_epoch(gater, opt, data, costs=torch.tensor([1.0, 3.0, 2.0]), lam=0.7,
                            tau=1.0, batch_size=8, generator=gen)["loss"] for _ in range(epochs)]
    return losses


def _frozen_pair():
    """(gater trained on images, its twin trained on cached fp32 activations): same trunk."""
    trunk = G.frozen_trunk(seed=5)
    a, b = (new_gater({"expert_ms": [1, 3, 2], "embed_dim": 8, "trunk_seed": 5}, {}, seed=1,
                      frozen=True) for _ in range(2))
    split = _split()
    split["trunk_features"] = G.trunk_features(trunk, split["gater_input"], dtype="fp32")
    return a, b, split


def test_the_tail_on_cached_activations_is_the_gater_with_a_frozen_trunk():
    a, b, split = _frozen_pair()
    la = _train(G.GaterData.from_store(split), a)
    lb = _train(G.GaterData.from_store(split, inputs="trunk_features"), b)
    np.testing.assert_allclose(la, lb, rtol=1e-5)
    routes_a = G.route(a, torch.as_tensor(split["gater_input"]))
    routes_b = G.route(b, torch.as_tensor(split["trunk_features"]))
    np.testing.assert_array_equal(routes_a, routes_b)


def test_the_trunk_never_moves_and_the_tail_does():
    _, b, split = _frozen_pair()
    trunk0 = {k: v.clone() for k, v in b.trunk.state_dict().items()}
    head0 = b.head.weight.detach().clone()
    _train(G.GaterData.from_store(split, inputs="trunk_features"), b)
    assert all(torch.equal(v, trunk0[k]) for k, v in b.trunk.state_dict().items())
    assert not torch.equal(b.head.weight, head0)
    assert G.trunk_state_sha256(b.trunk) == G.trunk_state_sha256(G.frozen_trunk(seed=5))


def test_fp16_cache_is_close_and_halves_the_bytes():
    trunk, x = G.frozen_trunk(seed=0), _split()["gater_input"]
    f32, f16 = (G.trunk_features(trunk, x, dtype=d) for d in ("fp32", "fp16"))
    # SqueezeNet features[:5] at g = 16: conv/2 -> 7, maxpool/2 (ceil) -> 3: [N,3,3,128]
    assert f32.shape == (N, 3, 3, 128) and f32.dtype == np.float32 and f16.dtype == np.float16
    assert f16.nbytes * 2 == f32.nbytes
    np.testing.assert_allclose(f16.astype(np.float32), f32, rtol=2e-3, atol=1e-3)


def test_fp16_overflow_is_refused():
    trunk = G.frozen_trunk(seed=0)
    with torch.no_grad():
        trunk[0].weight.mul_(1e6)                       # activations far beyond 65504
    with pytest.raises(ValueError, match="fp16 overflows"):
        G.trunk_features(trunk, _split()["gater_input"][:4], dtype="fp16")


def test_the_weights_hash_follows_every_weight():
    a, b = G.frozen_trunk(seed=0), G.frozen_trunk(seed=0)
    assert G.trunk_state_sha256(a) == G.trunk_state_sha256(b)
    assert G.trunk_state_sha256(a) != G.trunk_state_sha256(G.frozen_trunk(seed=1))
    with torch.no_grad():
        b[3].squeeze.bias[0] += 1e-6                    # one number, deep in a Fire module
    assert G.trunk_state_sha256(a) != G.trunk_state_sha256(b)


@pytest.mark.parametrize("trunk, want", [("trained", (None,)), ("frozen", (FROZEN,)),
                                         ("both", (None, FROZEN))])
def test_trunk_key_sets_the_grids_variants_and_parts(trunk, want):
    cfg = load_config(None, [f"gater.trunk={trunk}", "exits.enabled=false"])
    assert variants(cfg) == want
    assert parts(cfg) == (() if trunk == "trained" else ("gater_trunk",))
    grid = get("experts").grid(cfg)
    assert len(grid) == len(want) * 7 * 3 * 3
    assert {p.get("variant") for p in grid} == set(want)
    from sweep.store.build import needed_parts
    assert needed_parts(cfg) == ["experts"] + (["gater_trunk"] if trunk != "trained" else [])


def test_bad_trunk_settings_stop_before_compute():
    with pytest.raises(UserError, match="gater.trunk must be one of trained, frozen, both"):
        load_config(None, ["gater.trunk=fine-tuned"])
    with pytest.raises(UserError, match="gater.trunk_cache_dtype must be one of fp16, fp32"):
        load_config(None, ["gater.trunk_cache_dtype=bf16"])


def test_the_part_key_follows_dtype_size_and_weights(monkeypatch):
    from sweep.store.build import part_key
    key = lambda *sets: part_key("gater_trunk", load_config(None, list(sets)), "cpu")  # noqa: E731
    base = key("gater.trunk=frozen")
    assert base.startswith("gater_trunk-") and base == key("gater.trunk=frozen")
    assert base != key("gater.trunk=frozen", "gater.trunk_cache_dtype=fp32")
    assert base != key("gater.trunk=frozen", "gater.gater_size=24")
    assert base != key("gater.trunk=frozen", "data.seed=1")           # another random trunk
    assert base == key("gater.trunk=frozen", "gater.lr=0.5")          # what only trials read
    torch.manual_seed(9)
    ref = {k: v.numpy().copy() for k, v in G.Gater(3).trunk.state_dict().items()}
    monkeypatch.setattr(G, "pretrained_trunk_state", lambda: ref)
    assert base != key("gater.trunk=frozen", "gater.trunk_pretrained=true")


def test_the_store_part_holds_every_splits_activations(tmp_path):
    from sweep.store.build import _build_gater_trunk
    cfg = load_config(None, ["gater.trunk=frozen", f"cache_dir={tmp_path}"])
    expanded = {s: {"images": np.zeros((n, 48, 48, 3), np.uint8) + 100,
                    "label": np.arange(n), "severity": np.zeros(n, np.int8),
                    "corruption": np.array(["none"] * n), "sample_id": np.arange(n)}
                for s, n in (("train", 5), ("val", 3), ("test", 2))}
    arrays, meta = _build_gater_trunk(cfg, expanded, ncls=10, device="cpu")
    assert {s: a["trunk_features"].shape[0] for s, a in arrays.items()} == \
        {"train": 5, "val": 3, "test": 2}
    m = meta["gater_trunk"]
    assert m["shape"] == [3, 3, 128] and m["dtype"] == "fp16"
    assert m["bytes_per_sample"] == 128 * 9 * 2
    assert m["sha256"] == G.trunk_state_sha256(G.frozen_trunk(seed=cfg.data.seed))
