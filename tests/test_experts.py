"""The expert zoo: every registered spec builds and classifies, bad specs and checkpoints fail
with one clear ValueError (the sweep turns it into exit 2), training is seeded and freezes the
model. Random weights only."""
import dataclasses

import numpy as np
import pytest
import torch

from trainers import experts
from trainers.experts import (PROFILES, ExpertSpec, build_expert, expert_logits, preprocess,
                              spec_from_dict, spec_to_dict, train_expert)

ALL_SPECS = [(p, s) for p, specs in PROFILES.items() for s in specs]
IDS = [f"{p}-{s.name}" for p, s in ALL_SPECS]
TINY = {s.name: s for s in PROFILES["tiny"]}
SMALL_DEIT = ExpertSpec("deit", "timm:deit_small_patch16_224", input_size=16, epochs=1, lr=1e-3,
                        batch_size=16, kwargs=dict(img_size=16, patch_size=4, embed_dim=32,
                                                   depth=1, num_heads=2))


def images(n=4, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def offline(spec):
    return dataclasses.replace(spec, pretrained=False)


@pytest.mark.parametrize("profile,spec", ALL_SPECS, ids=IDS)
def test_every_registered_expert_gives_logits_at_its_input_size(profile, spec):
    model = build_expert(offline(spec), num_classes=7, seed=0)
    out = expert_logits(model, images=images(2), input_size=spec.input_size)
    assert out.shape == (2, 7) and out.dtype == np.float32 and np.isfinite(out).all()


def test_profiles_have_the_three_families_in_the_paper_cost_order():
    for specs in PROFILES.values():
        assert [s.name for s in specs] == ["squeezenet", "mobilevit", "deit"]
    assert all(s.pretrained and s.input_size == 224 for s in PROFILES["paper"])
    assert not any(s.train_on_corrupted for s in PROFILES["paper"])


@pytest.mark.parametrize("profile,spec", ALL_SPECS, ids=IDS)
def test_spec_dict_round_trip(profile, spec):
    d = spec_to_dict(spec)
    assert spec_from_dict(d) == spec and hash(spec_from_dict(d)) == hash(spec)


@pytest.mark.parametrize("bad,match", [
    ({"name": "x", "arch": "timm:deit_tiny_patch16_224", "epoch": 3}, "unknown expert key"),
    ({"name": "x"}, "needs arch"),
    ({"name": "x", "arch": "timm:deit_tiny_patch16_224", "input_size": 0}, "input_size"),
    ({"name": "x", "arch": "timm:deit_tiny_patch16_224", "lr": -1.0}, "lr"),
    ({"name": "x", "arch": "keras:resnet50"}, "must be 'timm:<model>'"),
])
def test_spec_from_dict_rejects_bad_configs(bad, match):
    with pytest.raises(ValueError, match=match):
        spec_from_dict(bad)


def test_unknown_arch_lists_what_is_known():
    with pytest.raises(ValueError) as e:
        build_expert(ExpertSpec("x", "timm:deit_smal_patch16_224"), num_classes=3)
    msg = str(e.value)
    assert "deit_small_patch16_224" in msg and "torchvision:squeezenet1_1" in msg
    assert "\n" not in msg
    with pytest.raises(ValueError, match="unknown torchvision model"):
        build_expert(ExpertSpec("x", "torchvision:squeezenet9"), num_classes=3)


def test_bad_constructor_kwargs_are_a_user_error():
    with pytest.raises(ValueError, match="bad kwargs"):
        build_expert(ExpertSpec("x", "timm:deit_tiny_patch16_224", kwargs={"depht": 2}),
                     num_classes=3)


@pytest.mark.parametrize("arch", ["torchvision:squeezenet1_1", "timm:deit_small_patch16_224"])
def test_pretrained_offline_fails_fast_and_suggests_checkpoint(arch, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))          # no cached torchvision weights
    monkeypatch.setattr(experts, "_hf_cached", lambda repo_id: None)   # no cached timm weights
    monkeypatch.setattr(experts, "_reachable", lambda host, timeout=3.0: False)
    with pytest.raises(ValueError, match="checkpoint:"):
        build_expert(ExpertSpec("x", arch, pretrained=True), num_classes=3)


def test_build_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_expert(SMALL_DEIT, num_classes=3, seed=0)
    assert torch.equal(torch.rand(1), before)
    b = build_expert(SMALL_DEIT, num_classes=3, seed=0)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                 b.state_dict().values()))


@pytest.mark.parametrize("spec", [TINY["squeezenet"], SMALL_DEIT], ids=["torchvision", "timm"])
def test_checkpoint_round_trip(spec, tmp_path):
    src = build_expert(spec, num_classes=5, seed=0)
    torch.save(src.state_dict(), tmp_path / "expert.pt")
    loaded = build_expert(dataclasses.replace(spec, checkpoint=str(tmp_path / "expert.pt"),
                                              pretrained=True), num_classes=5, seed=1)
    x = images(3)
    np.testing.assert_array_equal(expert_logits(src, images=x, input_size=spec.input_size),
                                  expert_logits(loaded, images=x, input_size=spec.input_size))


def test_checkpoint_with_another_head_loads_the_backbone(tmp_path):
    src = build_expert(SMALL_DEIT, num_classes=1000, seed=0)      # e.g. ImageNet weights
    torch.save({"state_dict": src.state_dict()}, tmp_path / "backbone.pt")
    model = build_expert(dataclasses.replace(SMALL_DEIT, checkpoint=str(tmp_path / "backbone.pt")),
                         num_classes=4, seed=1)
    assert model.head.out_features == 4
    assert torch.equal(model.patch_embed.proj.weight, src.patch_embed.proj.weight)
    with pytest.raises(ValueError, match="set epochs > 0"):      # an untrained head, used as is
        build_expert(dataclasses.replace(SMALL_DEIT, epochs=0,
                                         checkpoint=str(tmp_path / "backbone.pt")), num_classes=4)


@pytest.mark.parametrize("content,match", [
    ([1, 2, 3], "not a state dict"),
    ({"weights": 1.0}, "not a state dict"),
    (torch.zeros(3), "not a state dict"),
])
def test_non_state_dict_checkpoint_is_a_user_error(content, match, tmp_path):
    torch.save(content, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=match):
        build_expert(dataclasses.replace(SMALL_DEIT, checkpoint=str(tmp_path / "bad.pt")),
                     num_classes=3)


def test_pickled_module_and_missing_file_are_user_errors(tmp_path):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")   # refused by weights_only=True
    for path, match in [(tmp_path / "module.pt", "not a loadable state dict"),
                        (tmp_path / "nope.pt", "does not exist")]:
        with pytest.raises(ValueError, match=match):
            build_expert(dataclasses.replace(SMALL_DEIT, checkpoint=str(path)), num_classes=3)


def test_wrong_shape_checkpoint_is_a_user_error(tmp_path):
    wider = dataclasses.replace(SMALL_DEIT, kwargs={**SMALL_DEIT.kwargs, "embed_dim": 48})
    torch.save(build_expert(wider, num_classes=3).state_dict(), tmp_path / "wider.pt")
    torch.save(build_expert(TINY["squeezenet"], num_classes=3).state_dict(), tmp_path / "sq.pt")
    for name in ("wider.pt", "sq.pt"):
        with pytest.raises(ValueError, match="does not fit"):
            build_expert(dataclasses.replace(SMALL_DEIT, checkpoint=str(tmp_path / name)),
                         num_classes=3)


def test_preprocess_resizes_and_normalises():
    x = torch.full((2, 8, 8, 3), 255, dtype=torch.uint8)
    y = preprocess(x, 20)
    assert y.shape == (2, 3, 20, 20) and y.dtype == torch.float32
    expect = (1 - torch.tensor(experts.IMAGENET_MEAN)) / torch.tensor(experts.IMAGENET_STD)
    torch.testing.assert_close(y[0, :, 5, 5], expect)


def test_expert_logits_do_not_depend_on_batch_size():
    model = build_expert(SMALL_DEIT, num_classes=3, seed=0)
    x = images(5)
    a = expert_logits(model, images=x, input_size=16, batch_size=2)
    b = expert_logits(model, images=x, input_size=16, batch_size=256)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_train_expert_is_seeded_and_returns_a_frozen_model():
    x, y = images(48, size=16), np.arange(48) % 3
    spec = dataclasses.replace(SMALL_DEIT, augment=True, warmup_epochs=0.5)
    calls = []
    runs = [train_expert(build_expert(spec, num_classes=3, seed=0), spec, images=x, labels=y,
                         seed=0, progress=lambda *a: calls.append(a)) for _ in range(2)]
    assert not runs[0].training and not any(p.requires_grad for p in runs[0].parameters())
    assert len(calls) == 2 and calls[0][:2] == (1, 1) and np.isfinite(calls[0][2])
    np.testing.assert_array_equal(expert_logits(runs[0], images=x, input_size=16),
                                  expert_logits(runs[1], images=x, input_size=16))
    fresh = build_expert(spec, num_classes=3, seed=0)
    assert not torch.equal(fresh.head.weight, runs[0].head.weight)


def test_zero_epochs_only_freezes():
    model = build_expert(SMALL_DEIT, num_classes=3, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = train_expert(model, dataclasses.replace(SMALL_DEIT, epochs=0), images=images(4, 16),
                       labels=np.zeros(4), seed=0)
    assert not out.training and all(torch.equal(before[k], v)
                                    for k, v in out.state_dict().items())
