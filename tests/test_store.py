"""The feature store: content-addressed cache, atomic parts, no expert work on a cache hit."""
import json
import os

import numpy as np
import pytest

from sweep.config import load_config
from sweep.store import io as store_io
from sweep.store.build import build_store, part_key
from tests.conftest import TINY


@pytest.fixture(scope="module")
def built(tiny_store):
    return tiny_store


def test_store_layout(built):
    cfg, splits, store, info = built
    n = len(splits["train"].labels) * 4
    tr = store["train"]
    assert tr["expert_logits"].shape == (n, 3, 3) and tr["expert_logits"].dtype == np.float32
    assert tr["gater_input"].shape == (n, cfg.gater.gater_size, cfg.gater.gater_size, 3) and tr["gater_input"].dtype == np.uint8
    assert tr["exit_logits"].shape == (n, 4, 3)
    assert [tr[f"exit_features_{k}"].shape[0] for k in range(4)] == [n] * 4
    assert not any(v["cache_hit"] for v in info.values())
    meta = store["meta"]
    assert len(meta["experts"]) == 3 and all(meta["expert_costs"][e]["latency_ms"] > 0
                                             for e in meta["experts"])
    assert np.all(np.diff(meta["exit_costs"]["flops"]) > 0)


def test_cache_hit_does_no_expert_forward(built, monkeypatch):
    cfg, splits, store, _ = built
    import trainers.experts as zoo
    import trainers.multiexit as mx

    def boom(*a, **k):
        raise AssertionError("expert work on a cache hit")
    for mod, name in ((zoo, "build_expert"), (zoo, "expert_logits"), (zoo, "train_expert"),
                      (mx, "train_backbone"), (mx, "extract_exit_features")):
        monkeypatch.setattr(mod, name, boom)
    store2, info = build_store(cfg, splits, device="cpu")
    assert all(v["cache_hit"] for v in info.values())
    for split in ("train", "test"):
        for k, v in store[split].items():
            assert np.array_equal(v, store2[split][k]), k


def test_key_depends_on_what_determines_it(built):
    cfg = built[0]
    other = load_config(None, TINY + ["data.seed=1"])
    assert part_key("experts", cfg, "cpu") != part_key("experts", other, "cpu")
    gater_only = load_config(None, TINY + ["gater.lr=0.5"])    # trials only: same store
    assert part_key("experts", cfg, "cpu") == part_key("experts", gater_only, "cpu")


def test_partial_part_is_not_complete(built, tmp_path):
    _, _, _, info = built
    src = info["experts"]["path"]
    assert store_io.is_complete(src)
    manifest = json.load(open(os.path.join(src, "MANIFEST.json")))
    victim = next(r for r in manifest["files"] if r.endswith(".npy"))
    # a copy with one truncated array must not be taken as complete
    import shutil
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    with open(dst / victim, "r+b") as f:
        f.truncate(10)
    assert not store_io.is_complete(str(dst))
    os.remove(dst / "MANIFEST.json")
    assert not store_io.is_complete(str(dst))


def _builder_modules() -> set:
    """The data / store / trainers modules sweep/store/build.py imports, directly or through
    each other (not through the registry or the config: they build no array)."""
    from tests.test_imports import EDGES
    inside = lambda m: m.startswith(("sweep.data.", "sweep.store.", "trainers."))
    seen, todo = set(), ["sweep.store.build"]
    while todo:
        for n in EDGES[todo.pop()]:
            if inside(n) and n not in seen:
                seen.add(n)
                todo.append(n)
    return seen - {"sweep.store.io", "sweep.store.same_build"}     # storage, not building


def test_the_key_hashes_every_file_that_builds_a_part():
    """Every data / trainers module the builder reaches is in CODE_FILES (trainers/layout.py:
    the conv nets' memory format changes the floats); the equivalence table is not (adding an
    entry must not change the hash it names), and it maps in one step (no chains)."""
    from sweep.store.build import CODE_FILES, _ROOT
    from sweep.store.same_build import SAME_BUILD_AS
    files = {m.replace(".", "/") + ".py" for m in _builder_modules()}
    assert "trainers/layout.py" in files and files <= set(CODE_FILES), files - set(CODE_FILES)
    assert all(os.path.isfile(os.path.join(_ROOT, f)) for f in CODE_FILES)
    assert "sweep/store/same_build.py" not in CODE_FILES
    assert not set(SAME_BUILD_AS.values()) & set(SAME_BUILD_AS)
