"""A corpus of bad inputs across config, data, models, paths and results.

Each must end with exit code 2 and ONE line on stderr naming the problem (no traceback), with
nothing written or overwritten and no feature store built. Convertible images (grayscale,
palette, 16-bit, RGBA, CMYK, animated) load as RGB; unusable files name themselves.
"""
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from sweep.run import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _folder(root, *, classes=("a", "b"), n=3, size=12, mode="RGB", test_classes=None):
    """ROOT/seg_train/<class>/*.png and ROOT/seg_test/<class>/*.png; n: per class, or a
    {class: count} for the training folder."""
    rng = np.random.default_rng(0)
    for split, cls in (("seg_train", classes), ("seg_test", test_classes or classes)):
        for c in cls:
            os.makedirs(root / split / c, exist_ok=True)
            count = n.get(c, 3) if isinstance(n, dict) and split == "seg_train" else \
                (3 if isinstance(n, dict) else n)
            for i in range(count):
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


def _png_claiming(path, width, height):
    """A valid 1x1 PNG whose header claims width x height (a decompression bomb's header)."""
    Image.new("RGB", (1, 1)).save(path)
    b = bytearray(path.read_bytes())
    b[16:24] = struct.pack(">II", width, height)                 # IHDR data starts at 16
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])))    # CRC of 'IHDR' + 13 bytes
    path.write_bytes(bytes(b))
    return path


def _bad_image(tmp, name, write, suffix=".png"):
    """A good image folder plus one bad file, written by write(path), in seg_train/a."""
    root = _folder(tmp / name)
    path = root / "seg_train" / "a" / f"bad_{name}{suffix}"
    write(path)
    return S("data.name=imagefolder", f"data.root={root}"), path.name


def _config_file(tmp, name, data: bytes):
    path = tmp / f"{name}.yaml"
    path.write_bytes(data)
    return ["--config", str(path)], f"{name}.yaml"


def _missing_class_folder(tmp):
    """Class 'b' has 1 training image and data.seed puts it in val: none left in train."""
    from sweep.data.datasets import split_indices
    seed = next(s for s in range(100)                 # a = images 0..3, b = image 4
                if 4 not in split_indices(5, val_fraction=0.2, test_fraction=0.0, seed=s)[0])
    root = _folder(tmp / "img_missing", n={"a": 4, "b": 1})
    return S("data.name=imagefolder", f"data.root={root}", f"data.seed={seed}",
             "data.val_fraction=0.2", "gater.batch_size=2", "exits.batch_size=2")


def S(*sets):
    """--set KEY=VALUE ... as argv."""
    return sum((["--set", s] for s in sets), [])


def _cases(tmp):
    """name -> (argv after --out, expected words in the message)."""
    img = lambda name, **kw: f"data.root={_folder(tmp / name, **kw)}"
    bad = tmp / "bad_ckpt"
    bad.mkdir(exist_ok=True)
    (bad / "junk.pt").write_bytes(b"not a torch file")
    levels = lambda noise: (f"data.levels={{mild: {{blur: 1, noise: 0}}, moderate: {{blur: 1, "
                            f"noise: 0}}, severe: {{blur: 1, noise: {noise}}}}}")
    sets = {
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
        "unknown_dataset": (["data.name=mnist"], "data.name must be one of"),
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
        # every value before compute: finite, in range, seeds usable, grid capped
        "lr_nan": (["gater.lr=.nan"], "gater.lr must be a finite number > 0"),
        "lams_inf": (["exits.lams=[0, .inf]"], "exits.lams has inf"),
        "taus_nan": (["gater.taus=[.nan]"], "gater.taus has nan"),
        "threshold_nan": (["sweep.cascade_thresholds=[0.5, .nan]"], "sweep.cascade_thresholds"),
        "level_inf": ([levels(".inf")], "data.levels.severe.noise must be a finite number >= 0"),
        "latency_inf": (["experts.cost_source=given", "experts.given_latency_ms=[1, .inf, 2]"],
                        "experts.given_latency_ms has inf"),
        "fraction_nan": (["data.test_fraction=.nan"], "data.test_fraction must be a finite"),
        "em_tol_negative": (["exits.em_tol=-0.1"], "exits.em_tol must be a finite number >= 0"),
        "seed_negative": (["gater.seeds=[0, -1]"], "gater.seeds has -1"),
        "seed_too_big": (["data.seed=4294967296"], "data.seed must be an integer in [0, 4294967296)"),
        "seed_repeated": (["exits.seeds=[1, 1]"], "exits.seeds has 1 twice"),
        "int_zero": (["exits.router_batch_size=0"], "exits.router_batch_size must be an integer >= 1"),
        "gpus_fraction": (["sweep.gpus_per_trial=1.5"], "sweep.gpus_per_trial"),
        "grid_cap": (["sweep.max_grid_trials=100"], "117 trials"),
        "grid_cap_default": (["exits.enabled=false", "gater.seeds=[" +
                              ", ".join(map(str, range(300))) + "]"], "max_grid_trials=5000"),
        "augment_unknown": (["exits.augment=[rotate]"], "exits.augment has 'rotate'"),
        "expert_lr_inf": (["experts.specs=[{name: x, arch: 'torchvision:squeezenet1_1', "
                           "lr: .inf}, {name: y, arch: 'torchvision:squeezenet1_1'}]"],
                          "expert 'x': lr must be a finite"),
        "expert_name_twice": (["experts.specs=[{name: x, arch: 'torchvision:squeezenet1_1'}, "
                               "{name: x, arch: 'torchvision:squeezenet1_1'}]"], "'x' twice"),
        "set_not_yaml": (["gater.lams=[0.5,"], "--set gater.lams value"),
        "set_repeated_key": (["data.levels={mild: {blur: 1, blur: 2}}"], "key 'blur'"),
        # every class in the training split, checked after loading, before any training
        "class_not_in_train_synthetic": (["data.name=synthetic", "data.synthetic_n=40",
                                          "data.synthetic_classes=30", "gater.batch_size=2",
                                          "exits.batch_size=2"],
                                         "has no image in the training split"),
    }
    cases = {k: (S(*v), w) for k, (v, w) in sets.items()}
    cases["class_not_in_train_folder"] = (_missing_class_folder(tmp),
                                          "class 'b' has no image in the training split")
    # config files: one line naming the file (and the repeated key with its line)
    cases["config_not_utf8"] = _config_file(tmp, "latin1", "name: caf\xe9\n".encode("latin-1"))
    cases["config_not_mapping"] = _config_file(tmp, "listy", b"- gater\n- exits\n")
    cases["config_empty"] = _config_file(tmp, "empty", b"# nothing here\n")
    cases["config_repeated_key"] = (
        _config_file(tmp, "twice", b"gater:\n  lams: [0.5]\n  taus: [1.0]\n  lams: [0.9]\n")[0],
        "twice.yaml': key 'lams' on line 4 repeats line 2")
    cases["config_repeated_section"] = (
        _config_file(tmp, "sections", b"gater:\n  lams: [0.5]\nexits:\n  em_iters: 2\n"
                                      b"gater:\n  taus: [1.0]\n")[0],
        "sections.yaml': key 'gater' on line 5 repeats line 1")
    cases["config_directory"] = (["--config", str(tmp)], "is not a file")
    # image files that no conversion makes usable: one line naming the file
    cases["img_zero_byte"] = _bad_image(tmp, "zero", lambda p: p.write_bytes(b""))
    cases["img_not_image"] = _bad_image(tmp, "text", lambda p: p.write_text("just text"))
    cases["img_truncated"] = _bad_image(
        tmp, "trunc", lambda p: p.write_bytes((tmp / "trunc" / "seg_train" / "b" /
                                               "0.png").read_bytes()[:60]))
    cases["img_huge"] = _bad_image(tmp, "huge", lambda p: _png_claiming(p, 100_000, 100_000))
    cases["img_float"] = _bad_image(
        tmp, "float", lambda p: Image.fromarray(np.ones((12, 12), np.float32)).save(p), ".tif")
    return cases


CASE_NAMES = sorted([
    "lam_range", "tau_nonpositive", "empty_seeds", "unknown_key", "wrong_type_list",
    "wrong_type_bool", "float_for_int", "no_family", "bad_severity", "severity_order",
    "negative_level", "fractions", "em_iters", "em_thresholds", "cost_mode", "tune_verbose",
    "trunk_pretrained_offline", "precision",
    "given_latency_len", "given_latency_zero", "unknown_profile", "unknown_arch",
    "unknown_expert_key", "unknown_dataset", "missing_root", "no_split_folders",
    "empty_class_folder", "mismatched_classes", "smaller_than_batch", "ckpt_missing",
    "ckpt_not_state_dict", "ckpt_wrong_shape", "ckpt_garbage", "pretrained_offline",
    "lr_nan", "lams_inf", "taus_nan", "threshold_nan", "level_inf", "latency_inf",
    "fraction_nan", "em_tol_negative", "seed_negative", "seed_too_big", "seed_repeated",
    "int_zero", "gpus_fraction", "grid_cap", "grid_cap_default", "augment_unknown",
    "expert_lr_inf", "expert_name_twice", "set_not_yaml", "set_repeated_key",
    "class_not_in_train_synthetic", "class_not_in_train_folder",
    "config_not_utf8", "config_not_mapping", "config_empty", "config_repeated_key",
    "config_repeated_section", "config_directory",
    "img_zero_byte", "img_not_image", "img_truncated", "img_huge", "img_float"])


def test_case_list_is_the_corpus(tmp_path):
    assert sorted(_cases(tmp_path)) == CASE_NAMES


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_exits_2_with_one_line(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv, words = _cases(tmp_path)[name]
    if name == "empty_class_folder":
        root = tmp_path / "img"
        for f in (root / "seg_train" / "b").iterdir():
            f.unlink()
    import sweep.tuning.remote

    def no_compute(*a, **k):
        raise AssertionError("bad input reached the feature store build")
    monkeypatch.setattr(sweep.tuning.remote, "build_features", no_compute)
    out = tmp_path / "out"
    before = sorted(os.listdir(tmp_path))
    code = main(["--out", str(out), "--set", f"cache_dir={tmp_path / 'cache'}", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("routesweep: error: "), err
    assert words.lower() in err.lower(), err
    assert not out.exists() and sorted(os.listdir(tmp_path)) == before


def _animated(path):
    frames = [Image.new("RGB", (10, 10), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(path, save_all=True, append_images=frames[1:])


def _palette(path, transparent):
    im = Image.new("P", (10, 10), 0)
    im.putpalette([10, 20, 30] * 256)
    im.save(path, **({"transparency": 0} if transparent else {}))


# name -> (write(path), file suffix, the RGB every pixel must load as)
IMAGE_KINDS = {
    "grayscale": (lambda p: Image.new("L", (10, 10), 200).save(p), ".png", (200, 200, 200)),
    "bilevel": (lambda p: Image.new("1", (10, 10), 1).save(p), ".png", (255, 255, 255)),
    "palette": (lambda p: _palette(p, False), ".png", (10, 20, 30)),
    "palette_transparent": (lambda p: _palette(p, True), ".png", (10, 20, 30)),
    "rgba": (lambda p: Image.new("RGBA", (10, 10), (1, 2, 3, 0)).save(p), ".png", (1, 2, 3)),
    "gray_alpha": (lambda p: Image.new("LA", (10, 10), (50, 7)).save(p), ".png", (50, 50, 50)),
    # 16-bit: 32896 = 128 * 257 is mid-grey, not white (a plain convert("RGB") clips to 255)
    "gray16_png": (lambda p: Image.fromarray(np.full((10, 10), 32896, np.uint16)).save(p),
                   ".png", (128, 128, 128)),
    "gray16_tiff": (lambda p: Image.fromarray(np.full((10, 10), 65535, np.uint16)).save(p),
                    ".tif", (255, 255, 255)),
    "cmyk_tiff": (lambda p: Image.new("CMYK", (10, 10), (0, 255, 0, 0)).save(p), ".tif",
                  (255, 0, 255)),
    "animated_gif": (_animated, ".gif", (255, 0, 0)),         # the first frame
}


@pytest.mark.parametrize("kind", sorted(IMAGE_KINDS))
def test_unusual_images_load_as_rgb(tmp_path, kind):
    from sweep.data.imagefolder import load_imagefolder
    write, suffix, rgb = IMAGE_KINDS[kind]
    root = _folder(tmp_path / "img", classes=("b",), size=10)
    for split in ("seg_train", "seg_test"):
        os.makedirs(root / split / "a")
        write(root / split / "a" / f"x{suffix}")
    tr, te, skipped = load_imagefolder(str(root), 8, False)
    assert not skipped and tr.images.dtype == np.uint8 and tr.images.shape == (4, 8, 8, 3)
    assert tr.class_names == ("a", "b") and tr.labels[0] == 0
    assert (tr.images[0] == np.array(rgb, np.uint8)).all(), tr.images[0, 0, 0]
    assert (te.images[0] == np.array(rgb, np.uint8)).all()


def test_cmyk_jpeg_loads(tmp_path):
    from sweep.data.imagefolder import read_image
    Image.new("CMYK", (10, 10), (0, 0, 0, 0)).save(tmp_path / "x.jpg")
    assert (np.abs(read_image(str(tmp_path / "x.jpg"), 8).astype(int) - 255) <= 2).all()


BAD_IMAGES = {      # file name -> (write(path), words of the reason)
    "zero.png": (lambda p: p.write_bytes(b""), "empty file"),
    "text.jpg": (lambda p: p.write_text("not an image"), "cannot identify"),
    "trunc.png": (lambda p: (Image.new("RGB", (64, 64)).save(p),
                             p.write_bytes(p.read_bytes()[:70])), "truncated"),
    "bomb.png": (lambda p: _png_claiming(p, 100_000, 100_000), "exceeds limit"),  # Pillow's
    "large.png": (lambda p: _png_claiming(p, 10_000, 10_000), "10000x10000 px, more than"),
    "float.tif": (lambda p: Image.fromarray(np.ones((12, 12), np.float32)).save(p),
                  "floating-point"),
}


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_unusable_image_names_the_file(tmp_path, name):
    from sweep.errors import UserError
    from sweep.data.imagefolder import load_imagefolder
    root = _folder(tmp_path / "img")
    write, reason = BAD_IMAGES[name]
    write(root / "seg_test" / "b" / name)
    with pytest.raises(UserError, match=f"unreadable image '.*{name}' \\(.*{reason}.*\\); "
                                        f"remove it or set data.skip_corrupt=true"):
        load_imagefolder(str(root), 8, False)


def test_skip_corrupt_skips_and_counts(tmp_path, capsys):
    from sweep.data.imagefolder import load_imagefolder
    root = _folder(tmp_path / "img", n=4, size=16)
    for name, (write, _) in BAD_IMAGES.items():
        write(root / "seg_train" / "a" / name)
    tr, te, skipped = load_imagefolder(str(root), 8, True)
    assert sorted(os.path.basename(p) for p in skipped) == sorted(BAD_IMAGES)
    assert len(tr.labels) == 8 and len(te.labels) == 8 and (np.bincount(tr.labels) == 4).all()
    assert f"skipped {len(BAD_IMAGES)} unreadable image(s)" in capsys.readouterr().out


def test_class_with_only_unreadable_images_is_an_error_even_when_skipping(tmp_path):
    from sweep.errors import UserError
    from sweep.data.imagefolder import load_imagefolder
    root = _folder(tmp_path / "img", n=1)
    (root / "seg_train" / "b" / "0.png").write_bytes(b"")
    with pytest.raises(UserError, match="seg_train/b' has no readable image"):
        load_imagefolder(str(root), 8, True)


def test_hidden_files_and_folders_are_ignored(tmp_path):
    from sweep.data.imagefolder import load_imagefolder
    root = _folder(tmp_path / "img")
    os.makedirs(root / "seg_train" / ".ipynb_checkpoints")
    (root / "seg_train" / "a" / "._0.png").write_bytes(b"macOS resource fork")
    tr, _, skipped = load_imagefolder(str(root), 8, False)
    assert tr.class_names == ("a", "b") and len(tr.labels) == 6 and not skipped


def test_truncated_parquet_results(tmp_path):
    from tests.fake_results import write_fake_results
    write_fake_results(tmp_path)
    p = tmp_path / "points.parquet"
    p.write_bytes(p.read_bytes()[:100])
    r = subprocess.run([sys.executable, "-m", "analysis.report", str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "points.parquet" in r.stderr and not (tmp_path / "report.html").exists()
