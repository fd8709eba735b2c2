"""The range table covers every config field, and every number is checked before compute."""
import dataclasses
import importlib
import typing

import numpy as np
import pytest

from sweep.config import Config, load_config, section_types
from sweep.config.schema import SCALARS
from sweep.config.validate import check_sizes, config_fields, rules
from sweep.data.images import ImageSet
from sweep.errors import UserError
from sweep.rules import Grid, Later, Num

V = importlib.import_module("sweep.config.validate")   # sweep.config.validate is also a function
RULES = rules()          # the fixed sections' RULES and every family's section_rules()


def _hints():
    """dotted key -> annotation of every leaf field: the top-level scalars, then each section
    (data, experts, the registered families', sweep)."""
    out = {k: typing.get_type_hints(Config)[k] for k in SCALARS}
    for name, cls in section_types().items():
        out.update({f"{name}.{f.name}": typing.get_type_hints(cls)[f.name]
                    for f in dataclasses.fields(cls)})
    return out


HINTS = _hints()


def _floaty(tp) -> bool:
    """float, float | None, tuple[float, ...] (| None)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
    return any(a is float or (typing.get_origin(a) is tuple and typing.get_args(a)[0] is float)
               for a in args)


def test_every_field_has_exactly_one_rule():
    assert set(RULES) == set(HINTS) == {k for k, _ in config_fields(Config())}


def test_later_rules_name_a_function_that_exists():
    for key, rule in RULES.items():
        if isinstance(rule, Later):
            assert callable(getattr(V, rule.where)), key


@pytest.mark.parametrize("bad", [".nan", ".inf", "-.inf"])
@pytest.mark.parametrize("key", sorted(k for k, tp in HINTS.items() if _floaty(tp)))
def test_no_float_field_takes_nan_or_inf(key, bad):
    is_list = isinstance(getattr_path(Config(), key), tuple) or isinstance(RULES[key], Grid)
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        load_config(None, [f"{key}={'[' + bad + ']' if is_list else bad}"])


def getattr_path(obj, key):
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def _below(rule):
    """A value just outside the rule's lower bound, or None when it has none."""
    if rule.lo is None:
        return None
    return rule.lo if rule.lo_open else rule.lo - 1


@pytest.mark.parametrize("key", sorted(k for k, r in RULES.items()
                                       if isinstance(r, Num) and r.lo is not None or
                                       isinstance(r, Grid) and isinstance(r.item, Num)))
def test_values_below_the_range_are_rejected_naming_key_and_range(key):
    rule = RULES[key]
    num = rule.item if isinstance(rule, Grid) else rule
    v = _below(num)
    if v is None:
        pytest.skip("no lower bound")
    v = int(v) if "int" in str(HINTS[key]) else float(v)
    with pytest.raises(UserError) as e:
        load_config(None, [f"{key}={[v] if isinstance(rule, Grid) else v}"])
    msg = str(e.value)
    assert key in msg and num.allowed(v) in msg, msg


@pytest.mark.parametrize("key", sorted(k for k, r in RULES.items() if isinstance(r, Grid)))
def test_grids_reject_a_repeated_value(key):
    v = getattr_path(Config(), key)
    v = v[0] if v else {"sweep.callbacks": "tensorboard"}.get(key, 1.0)   # empty by default
    with pytest.raises(UserError, match=f"{key.replace('.', '[.]')} has .* twice"):
        load_config(None, [f"{key}=[{v}, {v}]"])


@pytest.mark.parametrize("key", ["data.seed", "gater.seeds", "exits.seeds"])
def test_seeds_are_usable_by_numpy_and_torch(key):
    import torch
    wrap = (lambda v: f"[{v}]") if key.endswith("seeds") else str
    top = 2 ** 32 - 1
    load_config(None, [f"{key}={wrap(top)}"])                        # accepted: and it works
    np.random.SeedSequence(top).generate_state(1)
    torch.manual_seed(top)
    for bad in (-1, 2 ** 32):
        with pytest.raises(UserError, match=r"\[0, 4294967296\)"):
            load_config(None, [f"{key}={wrap(bad)}"])


def test_grid_cap_is_the_product_of_the_grid():
    # defaults: gater 7 x 3 x 3 = 63, exits 6 x 3 x 3 = 54 -> 117 trials
    load_config(None, ["sweep.max_grid_trials=117"])
    with pytest.raises(UserError, match="117 trials .*gater 63 \\+ exits 54.*=116"):
        load_config(None, ["sweep.max_grid_trials=116"])
    load_config(None, ["sweep.max_grid_trials=63", "exits.enabled=false"])
    assert Config().sweep.max_grid_trials == 5000


def test_gpus_per_trial_fraction_only_up_to_one():
    for ok in ("0", "0.25", "1", "2"):
        load_config(None, [f"sweep.gpus_per_trial={ok}"])
    with pytest.raises(UserError, match="gpus_per_trial"):
        load_config(None, ["sweep.gpus_per_trial=1.5"])


# ------------------------------------------------------------------ classes after loading
def _splits(train_labels, names=("a", "b", "c")):
    mk = lambda y: ImageSet(np.zeros((len(y), 8, 8, 3), np.uint8), np.asarray(y, np.int64), names)
    return {"train": mk(train_labels), "val": mk([0, 1, 2]), "test": mk([0, 1, 2])}


def test_every_class_must_be_in_train():
    cfg = load_config(None, ["gater.batch_size=2", "exits.batch_size=2"])
    check_sizes(cfg, _splits([0, 1, 2, 2]))
    for labels, missing in (([0, 1, 1, 0], "c"), ([1, 2, 2, 1], "a")):
        with pytest.raises(UserError, match=f"class '{missing}' has no image in the training "
                                            f"split \\(train 0, val 1, test 1\\)"):
            check_sizes(cfg, _splits(labels))


def test_labels_outside_the_class_list_are_rejected():
    cfg = load_config(None, ["gater.batch_size=2", "exits.batch_size=2"])
    with pytest.raises(UserError, match="label \\[3\\] outside the 3 classes"):
        check_sizes(cfg, _splits([0, 1, 2, 3]))


def test_class_count_comes_from_the_class_list_not_the_labels(monkeypatch, tmp_path):
    """Both store parts size their heads from the dataset's class list: a train split without
    the last class (check_sizes bypassed) still gets a 3-class head."""
    import trainers.experts as zoo
    import trainers.multiexit as mx
    from sweep.store.build import build_store

    class Built(Exception):
        pass

    def capture(*a, num_classes=None, **k):
        raise Built(num_classes if num_classes is not None else a[0])
    monkeypatch.setattr(zoo, "build_expert", capture)
    monkeypatch.setattr(mx, "MultiExitResNet", capture)
    splits = _splits([0, 1, 1, 0])                      # class 'c' (label 2) not in train
    for family in ("gater", "exits"):
        other = "exits" if family == "gater" else "gater"
        cfg = load_config(None, [f"{other}.enabled=false", f"cache_dir={tmp_path}",
                                 "data.image_size=8"])
        with pytest.raises(Built) as e:
            build_store(cfg, splits, device="cpu", log=lambda *_: None)
        assert e.value.args[0] == 3, family
