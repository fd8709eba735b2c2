"""Config loading and every bad-input case: one line on stderr, exit code 2, nothing written."""
import os
import subprocess
import sys

import pytest

from sweep.config import Config, load_config
from sweep.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_defaults_run_as_is():
    cfg = load_config()
    assert cfg == Config() or cfg.name == "default"
    assert len(cfg.gater.lams) * len(cfg.gater.taus) * len(cfg.gater.seeds) == 63


@pytest.mark.parametrize("path", sorted(p for p in os.listdir(os.path.join(ROOT, "configs"))
                                        if p.endswith(".yaml")))
def test_shipped_configs_parse(path, tmp_path):
    # data roots of the paper configs do not exist here: point them at an existing folder
    over = [f"data.root={tmp_path}"] if "paper" in path else []
    cfg = load_config(os.path.join(ROOT, "configs", path), over)
    assert cfg.name


def test_paper_gater_config_is_methods_a():
    cfg = load_config(os.path.join(ROOT, "configs/paper_gater_intel.yaml"), ["data.root=."])
    assert cfg.gater.gater_size == 96 and cfg.gater.lr == 1e-4 and cfg.gater.batch_size == 32
    assert cfg.gater.lams == (0.7, 0.8, 0.9, 0.95, 1.0) and cfg.gater.taus == (1.0,)
    assert cfg.data.image_size == 224 and cfg.experts.profile == "paper"
    given = load_config(os.path.join(ROOT, "configs/paper_gater_intel.yaml"),
                        ["data.root=.", "experts.cost_source=given"])
    assert given.experts.given_latency_ms == (2.14, 10.59, 7.56)


def test_paper_em_config_is_methods_b():
    cfg = load_config(os.path.join(ROOT, "configs/paper_em_cifar10.yaml"), ["data.root=."])
    assert cfg.data.name == "cifar10" and cfg.exits.width == 64 and cfg.exits.stem == "cifar"
    assert cfg.exits.taus == (1.0,) and not cfg.gater.enabled


def test_set_overrides_and_types():
    cfg = load_config(None, ["gater.lams=[0.5, 1]", "gater.epochs=2", "name=x"])
    assert cfg.gater.lams == (0.5, 1.0) and cfg.gater.epochs == 2 and cfg.name == "x"


BAD = {
    "lam_above_1": ["gater.lams=[0.5, 1.5]"],
    "lam_below_0": ["gater.lams=[-0.1]"],
    "tau_zero": ["gater.taus=[0]"],
    "empty_grid": ["gater.lams=[]"],
    "unknown_key": ["gater.lambda=[0.5]"],
    "unknown_section": ["optimiser.lr=1"],
    "wrong_type": ["gater.epochs=three"],
    "unknown_dataset": ["data.name=imagenet"],
    "missing_data_path": ["data.name=imagefolder", "data.root=/nonexistent/intel"],
    "unknown_arch": ["experts.specs=[{name: a, arch: 'timm:no_such_net'}, "
                     "{name: b, arch: 'torchvision:squeezenet1_1'}]"],
    "latency_wrong_length": ["experts.cost_source=given", "experts.given_latency_ms=[1.0, 2.0]"],
    "latency_non_positive": ["experts.cost_source=given", "experts.given_latency_ms=[1.0, 0, 3]"],
    "em_lam_negative": ["exits.lams=[-1]"],
    "em_tau_zero": ["exits.taus=[0.0]"],
    "em_iters_zero": ["exits.em_iters=0"],
    "threshold_outside": ["exits.thresholds=[0.5, 1.2]"],
    "exit_cost_mode": ["exits.exit_cost=linear"],
    "no_family": ["gater.enabled=false", "exits.enabled=false"],
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_raises(case):
    with pytest.raises(UserError):
        load_config(None, BAD[case])


def _file(tmp_path, data: bytes):
    p = tmp_path / "c.yaml"
    p.write_bytes(data)
    return str(p)


@pytest.mark.parametrize("data, words", [
    (b"gater:\n  lams: [0.5]\n  lams: [0.9]\n", "key 'lams' on line 3 repeats line 2"),
    (b"name: a\ngater: {epochs: 1}\nname: b\n", "key 'name' on line 3 repeats line 1"),
    (b"data:\n  levels:\n    mild: {blur: 1, noise: 0, blur: 2}\n", "key 'blur' on line 3"),
    (b"", "is empty"), (b"# only a comment\n", "is empty"), (b"{}\n", "is empty"),
    (b"[1, 2]\n", "must be a mapping"), (b"just text\n", "must be a mapping"),
    (b"name: caf\xe9\n", "not valid UTF-8"), (b"\xff\xfe\x00n", "not valid UTF-8"),
    (b"gater: [1,\n", "not valid YAML"), (b"a: 1\n---\nb: 2\n", "not valid YAML"),
])
def test_bad_config_file_names_the_file(tmp_path, data, words):
    path = _file(tmp_path, data)
    with pytest.raises(UserError, match=f"config file '{path}'") as e:
        load_config(path)
    assert words in str(e.value)


def test_yaml_merge_keys_may_be_overridden_and_1e_minus_4_is_a_number(tmp_path):
    path = _file(tmp_path, b"gater:\n  lr: 1e-4\n  epochs: 2\n")    # PyYAML alone: a string
    cfg = load_config(path)
    assert cfg.gater.lr == 1e-4 and isinstance(cfg.gater.lr, float)
    path = _file(tmp_path, b"gater:\n  <<: {lr: 0.5, epochs: 2}\n  lr: 0.25\n")
    assert load_config(path).gater.lr == 0.25 and load_config(path).gater.epochs == 2


@pytest.mark.parametrize("item, words", [("gater.lams=[0.5,", "--set gater.lams value"),
                                         ("data.levels={mild: 1, mild: 2}", "key 'mild'")])
def test_bad_set_value_names_the_key(item, words):
    with pytest.raises(UserError, match=words.replace("[", "\\[")):
        load_config(None, [item])


def _run(args, cwd):
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.run([sys.executable, "-m", "sweep.run", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _main(args, cwd, capsys, monkeypatch) -> tuple[int, str]:
    """sweep.run's main in this process (what `python -m sweep.run` runs, minus the start-up):
    -> (exit code, stderr)."""
    from sweep.run import main
    monkeypatch.chdir(cwd)
    rc = main(args)
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("case", ["lam_above_1", "tau_zero", "empty_grid", "unknown_arch",
                                  "missing_data_path", "latency_wrong_length", "unknown_key"])
def test_cli_bad_input_exit_2_nothing_written(case, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    rc, err = _main(["--out", str(out), *sum((["--set", s] for s in BAD[case]), [])], tmp_path,
                    capsys, monkeypatch)
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("routesweep: error:"), err
    assert os.listdir(tmp_path) == []                   # no out dir, no cache, no results/


def test_cli_existing_out_needs_overwrite(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    (out / "points.parquet").write_text("keep me")
    rc, err = _main(["--out", str(out)], tmp_path, capsys, monkeypatch)
    assert rc == 2 and "--overwrite" in err
    assert (out / "points.parquet").read_text() == "keep me"


@pytest.mark.slow
def test_cli_missing_config_file(tmp_path):
    r = _run(["--config", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o")], tmp_path)
    assert r.returncode == 2 and "does not exist" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert os.listdir(tmp_path) == []
