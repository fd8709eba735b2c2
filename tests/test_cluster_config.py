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
