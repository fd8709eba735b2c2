"""Shared fixtures: a tiny feature store (synthetic images, every expert and the backbone
trained one epoch), built once per session into a temporary cache."""
import pytest

from sweep.config import load_config
from sweep.data.datasets import load_splits
from sweep.store.build import build_store

TINY = ["experts.max_epochs=1", "experts.latency_repeats=2", "exits.epochs=1",
        "exits.head_epochs=1", "data.name=synthetic", "data.synthetic_n=60",
        "data.synthetic_classes=3", "data.image_size=32"]


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory):
    """-> (cfg, splits, store, info) with both store parts built (not from a cache)."""
    cache = tmp_path_factory.mktemp("cache")
    cfg = load_config(None, TINY + [f"cache_dir={cache}"])
    splits, _ = load_splits("synthetic", image_size=32, seed=0, synthetic_n=60,
                            synthetic_classes=3)
    store, info = build_store(cfg, splits, device="cpu")
    return cfg, splits, store, info
