"""sweep.callbacks: each tracker becomes Tune's own logger callback; a tracker whose package is
missing stops at config time (exit 2), before any compute."""
import importlib.util

import pytest

from sweep.config import load_config
from sweep.config.schema import TRACKERS
from sweep.errors import UserError
from sweep.tuning.tracking import BUILDERS, tracking_callbacks


def _cfg(*sets):
    return load_config(None, list(sets))


def test_default_is_no_tracker_and_every_tracker_has_a_builder():
    assert _cfg().sweep.callbacks == () and tracking_callbacks(_cfg(), "out") == []
    assert set(BUILDERS) == set(TRACKERS)


def test_tensorboard_is_tunes_tbx_logger():
    from ray.tune.logger import TBXLoggerCallback
    [cb] = tracking_callbacks(_cfg("sweep.callbacks=[tensorboard]"), "out")
    assert isinstance(cb, TBXLoggerCallback)


@pytest.mark.parametrize("name", sorted(TRACKERS))
def test_a_missing_package_is_a_user_error(name, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda mod, *a: None if mod == TRACKERS[name] else real(mod, *a))
    with pytest.raises(UserError, match=rf"sweep.callbacks has '{name}' but its package "
                                        rf"'{TRACKERS[name]}' is not installed"):
        _cfg(f"sweep.callbacks=[{name}]")


def test_an_unknown_tracker_is_refused():
    with pytest.raises(UserError, match="sweep.callbacks has 'neptune'"):
        _cfg("sweep.callbacks=[neptune]")


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow not installed")
def test_mlflow_logs_to_a_file_store_in_the_run(tmp_path):
    [cb] = tracking_callbacks(_cfg("sweep.callbacks=[mlflow]"), str(tmp_path))
    assert cb.tracking_uri == "file://" + str(tmp_path / "mlruns")
