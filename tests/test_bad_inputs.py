"""A corpus of bad inputs across config, data, models, paths and results.

Each must end with exit code 2 and ONE line on stderr naming the problem (no traceback), with
nothing written or overwritten. Repairable images (grayscale, RGBA) are converted, not rejected.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from sweep.run import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _folder(root, *, classes=("a", "b"), n=3, size=12, mode="RGB", test_classes=None):
    """ROOT/seg_train/<class>/*.png and ROOT/seg_test/<class>/*.png."""
    rng = np.random.default_rng(0)
    for split, cls in (("seg_train", classes), ("seg_test", test_classes or classes)):
        for c in cls:
            os.makedirs(root / split / c, exist_ok=True)
            for i in range(n):
                px = rng.integers(0, 256, (size, size, 4 if mode == "RGBA" else 3), np.uint8)
                img = Image.fromarray(px, "RGBA" if mode == "RGBA" else "RGB")
                img.convert(mode).save(root / split / c / f"{i}.png")
    return root


def _save_ckpt(path, obj):
    torch.save(obj, path)
    return str(path)


def _sq_spec(ckpt):
    return (f"experts.specs=[{{name: sq, arch: 'torchvision:squeezenet1_1', input_size: 32, "
            f"checkpoint: '{ckpt}'}}, {{name: sq2, arch: 'torchvision:squeezenet1_1', "
            f"input_size: 32}}]")


def _cases(tmp):
    """name -> (--set overrides or extra args, expected words in the message)."""
    img = lambda name, **kw: f"data.root={_folder(tmp / name, **kw)}"
    bad = tmp / "bad_ckpt"
    bad.mkdir(exist_ok=True)
    (bad / "junk.pt").write_bytes(b"not a torch file")
    return {
        "lam_range": (["gater.lams=[2]"], "gater.lams"),
        "tau_nonpositive": (["gater.taus=[-1]"], "gater.taus"),
        "empty_seeds": (["gater.seeds=[]"], "empty"),
        "unknown_key": (["gater.temperature=1"], "unknown config key"),
        "wrong_type_list": (["gater.lams=0.5"], "must be a list"),
        "wrong_type_bool": (["exits.enabled=maybe"], "must be bool"),
        "float_for_int": (["gater.epochs=2.5"], "must be int"),
        "no_family": (["gater.enabled=false", "exits.enabled=false"], "nothing to sweep"),
        "bad_severity": (["data.severities=[clean, extreme]"], "severities"),
        "severity_order": (["data.severities=[mild, clean]"], "severities"),
        "negative_level": (["data.levels={mild: {blur: -1, noise: 0}, moderate: {blur: 1, "
                            "noise: 0}, severe: {blur: 1, noise: 0}}"], "levels"),
        "fractions": (["data.val_fraction=0.6", "data.test_fraction=0.5"], "fraction"),
        "em_iters": (["exits.em_iters=0"], "em_iters"),
        "em_thresholds": (["exits.thresholds=[-0.1]"], "thresholds"),
        "cost_mode": (["exits.exit_cost=latency"], "exit_cost"),
        "tune_verbose": (["sweep.tune_verbose=3"], "tune_verbose"),
        "trunk_pretrained_offline": (["gater.trunk_pretrained=true"], "trunk_pretrained"),
        "precision": (["gater.precision=fp16"], "gater.precision"),
        "given_latency_len": (["experts.cost_source=given", "experts.given_latency_ms=[1]"],
                              "given_latency_ms"),
        "given_latency_zero": (["experts.cost_source=given",
                                "experts.given_latency_ms=[1, 2, 0]"], "given_latency_ms"),
        "unknown_profile": (["experts.profile=huge"], "profile"),
        "unknown_arch": (["experts.specs=[{name: x, arch: 'timm:nope_net'}, "
                          "{name: y, arch: 'timm:nope_net2'}]"], "nope_net"),
        "unknown_expert_key": (["experts.specs=[{name: x, arch: 'torchvision:squeezenet1_1', "
                                "colour: red}, {name: y, arch: 'torchvision:squeezenet1_1'}]"],
                               "unknown expert key"),
        "unknown_dataset": (["data.name=mnist"], "unknown dataset"),
        "missing_root": (["data.name=imagefolder", f"data.root={tmp / 'nope'}"], "does not exist"),
        "no_split_folders": (["data.name=imagefolder", f"data.root={tmp}"], "seg_train"),
        "empty_class_folder": (["data.name=imagefolder", img("img"), "gater.batch_size=2",
                                "exits.batch_size=2"], "has no images"),
        "mismatched_classes": (["data.name=imagefolder", img("img2", test_classes=("a", "c"))],
                               "class folders differ"),
        "smaller_than_batch": (["data.name=synthetic", "data.synthetic_n=20"], "fewer than one batch"),
        "ckpt_missing": ([_sq_spec(tmp / "none.pt")], "does not exist"),
        "ckpt_not_state_dict": ([_sq_spec(_save_ckpt(bad / "list.pt", [1, 2, 3]))],
                                "not a state dict"),
        "ckpt_wrong_shape": ([_sq_spec(_save_ckpt(bad / "shape.pt",
                                                  {"features.0.weight": torch.zeros(3, 3)}))],
                             "does not fit"),
        "ckpt_garbage": ([_sq_spec(bad / "junk.pt")], "not a loadable state dict"),
        "pretrained_offline": (["experts.specs=[{name: x, arch: 'torchvision:squeezenet1_1', "
                                "pretrained: true}, {name: y, arch: 'torchvision:squeezenet1_1'}]"],
                               "checkpoint"),
    }


CASE_NAMES = sorted([
    "lam_range", "tau_nonpositive", "empty_seeds", "unknown_key", "wrong_type_list",
    "wrong_type_bool", "float_for_int", "no_family", "bad_severity", "severity_order",
    "negative_level", "fractions", "em_iters", "em_thresholds", "cost_mode", "tune_verbose",
    "trunk_pretrained_offline", "precision",
    "given_latency_len", "given_latency_zero", "unknown_profile", "unknown_arch",
    "unknown_expert_key", "unknown_dataset", "missing_root", "no_split_folders",
    "empty_class_folder", "mismatched_classes", "smaller_than_batch", "ckpt_missing",
    "ckpt_not_state_dict", "ckpt_wrong_shape", "ckpt_garbage", "pretrained_offline"])


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_exits_2_with_one_line(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sets, words = _cases(tmp_path)[name]
    if name == "empty_class_folder":
        root = tmp_path / "img"
        for f in (root / "seg_train" / "b").iterdir():
            f.unlink()
    out = tmp_path / "out"
    before = sorted(os.listdir(tmp_path))
    code = main(["--out", str(out), "--set", f"cache_dir={tmp_path / 'cache'}",
                 *sum((["--set", s] for s in sets), [])])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert words.lower() in err.lower(), err
    assert not out.exists() and sorted(os.listdir(tmp_path)) == before


def test_unwritable_out(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        assert main(["--out", str(ro / "run")]) == 2
        assert "writable" in capsys.readouterr().err
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_grayscale_rgba_palette_are_converted(tmp_path, mode):
    from sweep.data.imagefolder import load_imagefolder
    root = _folder(tmp_path / "img", mode=mode, size=10)
    tr, te, skipped = load_imagefolder(str(root), 8, False)
    assert tr.images.shape == (6, 8, 8, 3) and tr.images.dtype == np.uint8 and not skipped


@pytest.mark.parametrize("skip", [False, True])
def test_corrupt_and_truncated_images(tmp_path, skip):
    from sweep.errors import UserError
    from sweep.data.imagefolder import load_imagefolder
    root = _folder(tmp_path / "img", n=4, size=16)
    (root / "seg_train" / "a" / "junk.png").write_bytes(b"definitely not a png")
    good = (root / "seg_train" / "b" / "0.png").read_bytes()
    (root / "seg_train" / "b" / "trunc.png").write_bytes(good[: len(good) // 2])
    if not skip:
        with pytest.raises(UserError, match="unreadable image"):
            load_imagefolder(str(root), 8, False)
    else:
        tr, _, skipped = load_imagefolder(str(root), 8, True)
        assert len(skipped) == 2 and len(tr.labels) == 8


def test_truncated_parquet_results(tmp_path):
    from tests.fake_results import write_fake_results
    write_fake_results(tmp_path)
    p = tmp_path / "points.parquet"
    p.write_bytes(p.read_bytes()[:100])
    r = subprocess.run([sys.executable, "-m", "analysis.report", str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "points.parquet" in r.stderr and not (tmp_path / "report.html").exists()
