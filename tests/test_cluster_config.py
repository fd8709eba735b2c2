"""cluster.yaml / cluster-local.yaml pass Ray's own config preparation and schema validation
(what `ray up` runs before touching a cloud), offline and without credentials."""
import copy
import os
import re

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = ("cluster.yaml", "cluster-local.yaml")


def _load(name):
    with open(os.path.join(ROOT, name)) as f:
        return yaml.safe_load(f)


def _prepare_and_validate(config):
    from ray.autoscaler._private.util import prepare_config, validate_config
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


@pytest.mark.parametrize("name", FILES)
def test_ray_prepares_and_validates(name):
    prepared = _prepare_and_validate(_load(name))
    assert prepared["head_node_type"] in prepared["available_node_types"]
    assert any("pip install" in c and "routesweep" in c for c in prepared["setup_commands"])


def test_validation_would_catch_an_error():
    import jsonschema
    bad = _load("cluster.yaml")
    bad["available_node_types"]["ray.worker.gpu"]["min_wrokers"] = 1
    with pytest.raises(jsonschema.ValidationError):
        _prepare_and_validate(bad)


def test_aws_head_cpu_and_autoscaling_gpu_workers():
    prepared = _prepare_and_validate(_load("cluster.yaml"))
    types = prepared["available_node_types"]
    head = types[prepared["head_node_type"]]
    gpu = [t for t in types.values() if t.get("resources", {}).get("GPU", 0) >= 1]
    assert head["resources"].get("GPU", 0) == 0 and len(gpu) == 1
    assert gpu[0]["min_workers"] < gpu[0]["max_workers"] <= prepared["max_workers"]


@pytest.mark.parametrize("name", FILES)
def test_nothing_but_ssh_open_to_the_world(name):
    config = _load(name)
    rules = config["provider"].get("security_group", {}).get("IpPermissions", [])
    assert all(r.get("FromPort") == r.get("ToPort") == 22 for r in rules)
    commands = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in commands and "0.0.0.0" not in commands


@pytest.mark.parametrize("name", FILES)
def test_every_top_level_key_is_commented(name):
    lines = open(os.path.join(ROOT, name)).read().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[A-Za-z_]+:", line):
            above = lines[i - 1].strip() if i else ""
            assert above.startswith("#"), f"{name}: '{line}' has no comment above it"


def test_the_paper_config_fits_the_gpu_workers():
    """sweep.run checks trial resources against the node types in the bootstrap config."""
    from sweep.config import load_config
    from sweep.tuning.cluster import check_capacity, node_types_capacity
    cfg = load_config(os.path.join(ROOT, "configs", "paper_gater_intel.yaml"),
                      [f"data.root={ROOT}"])
    check_capacity(cfg, node_types_capacity(os.path.join(ROOT, "cluster.yaml")))


# ---------------------------------------------------- the loopback cluster of ray_up_loopback.sh
def _loopback(worker_ip="10.213.0.2"):
    """scripts/loopback_yaml.py's config (what tests/test_ray_up.py brings up for real)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "loopback_yaml", os.path.join(ROOT, "scripts", "loopback_yaml.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.loopback_config(_load("cluster-local.yaml"), name="routesweep-loopback-test",
                               head_ip="10.213.0.1" if worker_ip else "127.0.0.1",
                               worker_ip=worker_ip, user="root", key="/tmp/k", token="/tmp/t",
                               repo=ROOT, gcs_port=6380)


@pytest.mark.parametrize("worker_ip", ["10.213.0.2", None])
def test_loopback_config_validates_and_is_offline(worker_ip):
    prepared = _prepare_and_validate(_loopback(worker_ip))
    assert prepared["provider"]["worker_ips"] == ([worker_ip] if worker_ip else [])
    setup = " ".join(prepared["setup_commands"])
    assert "pip install" not in setup and "git clone" not in setup      # nothing downloads
    head = " ".join(prepared["head_start_ray_commands"])
    worker = " ".join(prepared["worker_start_ray_commands"])
    assert "--port=6380" in head and "$RAY_HEAD_IP:6380" in worker and "6379" not in head + worker
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in head
    assert "RAY_AUTH_MODE=token" in head and "RAY_AUTH_MODE=token" in worker
    assert ("--num-cpus=0" in head) == bool(worker_ip)   # with a worker, trials run only there
    assert prepared["file_mounts"]["~/routesweep"] == ROOT


def test_loopback_keeps_everything_else_of_cluster_local():
    source, loop = _load("cluster-local.yaml"), _loopback()
    changed = {"cluster_name", "provider", "auth", "file_mounts", "setup_commands",
               "head_start_ray_commands", "worker_start_ray_commands"}
    assert {k: v for k, v in loop.items() if k not in changed} == \
        {k: v for k, v in source.items() if k not in changed}
    assert [c for c in loop["head_start_ray_commands"] if "ray start" not in c] == \
        [c for c in source["head_start_ray_commands"] if "ray start" not in c]
