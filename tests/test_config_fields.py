"""Every field of every vasa config is validated before anything compiles.

The fuzz test finds the config classes itself (every frozen dataclass in ``vasa`` with a
``validate`` method), so configs added later are covered without editing this file. Which
values must be refused is decided here from the field's declared base type (an int field
refuses NaN, inf, fractions and strings; a bool field refuses everything but True/False;
a Literal field refuses unknown strings), independently of ``vasa.run.fields``.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import math
import os
import pkgutil
import sys
import types
import typing

import jax
import numpy as np
import pytest

import vasa
from vasa.run.fields import Check, Length, Range, check_fields

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BAD = (object(), None, float("nan"), float("inf"), float("-inf"), 0, -1, 0.5, -0.5, 2.5, "unknown", "False", "",
       (), (0,), (-1, -2), [1, 2], True, False, 10**12)


def _config_classes() -> list[type]:
    found = {}
    for info in pkgutil.walk_packages(vasa.__path__, "vasa."):
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__.startswith("vasa.")
                    and obj.__dataclass_params__.frozen and callable(getattr(obj, "validate", None))):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return [found[k] for k in sorted(found)]


CLASSES = _config_classes()


def test_discovery_finds_the_known_configs():
    names = {c.__name__ for c in CLASSES}
    assert {"PPOConfig", "SACConfig", "DDPGConfig", "OffPolicyConfig", "RunConfig", "VideoTrainConfig",
            "VideoDataConfig", "RubiksNetConfig", "AppearanceRandomization", "DynamicsRandomization",
            "LidarConfig"} <= names, names


def _base(cls, tmp_path):
    if cls.__name__ == "VideoDataConfig":
        return cls(root=str(tmp_path))
    if cls.__name__ == "RubiksNetConfig":
        from vasa.video.rubiksnet import TIERS

        return TIERS["tiny"]
    return cls()


def _strip(hint):
    """(base type without Annotated, optional?)"""
    optional = False
    if typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0] if len(args) == 1 else hint
        if typing.get_origin(hint) is typing.Annotated:
            hint = typing.get_args(hint)[0]
    return hint, optional


def _type_invalid(value, hint) -> bool:
    """True when ``value`` cannot be right for a field declared ``hint``, whatever its range."""
    base, optional = _strip(hint)
    if value is None:
        return not optional
    is_bool = isinstance(value, bool)
    if base is bool:
        return not is_bool
    if base is int:
        return is_bool or not isinstance(value, int)
    if base is float:
        return is_bool or not isinstance(value, (int, float)) or not math.isfinite(value)
    if base is str:
        return not isinstance(value, str)
    if typing.get_origin(base) is typing.Literal:
        return value not in typing.get_args(base) or type(value) is not type(typing.get_args(base)[0])
    if typing.get_origin(base) is tuple:
        if not isinstance(value, tuple):
            return True
        args = typing.get_args(base)
        item = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        if item is None and len(value) != len(args):
            return True
        return any(_type_invalid(v, item or a) for v, a in zip(value, args if item is None else [item] * len(value)))
    return False


class _Compiles:
    """Counts XLA compilations (any jit, AOT or eager op that reaches the backend)."""

    def __init__(self):
        self.count = 0

    def __call__(self, event, *args, **kwargs):
        if "backend_compile" in event or "compile_requests" in event:
            self.count += 1


@pytest.fixture(scope="module")
def compiles():
    counter = _Compiles()
    jax.monitoring.register_event_duration_secs_listener(counter)
    jax.monitoring.register_event_listener(counter)
    return counter


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_fuzz_every_field(cls, tmp_path, compiles):
    base = _base(cls, tmp_path)
    base.validate()  # the defaults are valid
    hints = typing.get_type_hints(cls, include_extras=True)
    before = compiles.count
    checked = refused = 0
    for f in dataclasses.fields(cls):
        for bad in BAD:
            config = dataclasses.replace(base, **{f.name: bad})
            try:
                config.validate()
            except ValueError as e:
                refused += 1
                if _type_invalid(bad, hints[f.name]):
                    assert f"{cls.__name__}.{f.name}=" in str(e), (f.name, bad, str(e))
            except Exception as e:  # noqa: BLE001 - anything but a ValueError is the defect
                pytest.fail(f"{cls.__name__}.{f.name}={bad!r} raised {type(e).__name__}: {e} (expected ValueError)")
            else:
                assert not _type_invalid(bad, hints[f.name]), f"{cls.__name__}.{f.name}={bad!r} was accepted"
            checked += 1
    assert compiles.count == before, "validation compiled something"
    assert refused > checked // 3


def test_messages_name_field_value_and_what_is_allowed():
    from vasa.algos import ddpg, ppo, sac
    from vasa.video.train import VideoTrainConfig

    cases = [
        (ppo.PPOConfig(num_envs=float("nan")), "PPOConfig.num_envs=nan is not allowed: it must be an integer."),
        (ppo.PPOConfig(episode_length=2.5), "PPOConfig.episode_length=2.5 is not allowed: it must be an integer"),
        (ppo.PPOConfig(clip_epsilon=float("inf")), "PPOConfig.clip_epsilon=inf is not allowed: it must be a finite"),
        (ppo.PPOConfig(normalize_observations="False"), "normalize_observations='False' is not allowed: it must be True or False"),
        (ppo.PPOConfig(gamma=0.0), "PPOConfig.gamma=0.0 is not allowed: it must be a number in (0, 1]."),
        (ppo.PPOConfig(policy_layers=(64, 0)), "item 1 is 0"),
        (sac.SACConfig(total_env_steps=float("inf")), "SACConfig.total_env_steps=inf"),
        (ddpg.DDPGConfig(noise="pink"), "DDPGConfig.noise='pink' is not allowed: it must be one of ou, gaussian."),
        (ddpg.DDPGConfig(target_update="never"), "one of soft, hard"),
        (VideoTrainConfig(schedule="linear"), "VideoTrainConfig.schedule='linear'"),
        (VideoTrainConfig(blocks=()), "VideoTrainConfig.blocks=()"),
        (VideoTrainConfig(dtype="float16"), "one of float32, bfloat16"),
        (ppo.PPOConfig(env="dmc/cartpol_balance"), "Closest matches: dmc/cartpole_balance"),
    ]
    for config, expected in cases:
        with pytest.raises(ValueError) as e:
            config.validate()
        assert expected in str(e.value), (str(e.value), expected)


@dataclasses.dataclass(frozen=True)
class Inner:
    n: typing.Annotated[int, Range(ge=2)] = 2


@dataclasses.dataclass(frozen=True)
class Outer:
    x: typing.Annotated[float, Range(gt=0, lt=1)] = 0.5
    pair: typing.Annotated[tuple[float, float], Check(lambda p: p[0] <= p[1], "ordered")] = (0.0, 1.0)
    name: typing.Annotated[str, Length(min=2, max=3)] = "ab"
    mode: typing.Literal["a", 1] = "a"
    inner: Inner = Inner()


def test_check_fields_rules():
    check_fields(Outer(x=np.float32(0.25)))
    check_fields(Outer(mode=1))
    for kw, msg in [({"x": 1.0}, "in (0, 1)"), ({"x": np.float32("nan")}, "finite"), ({"pair": (2.0, 1.0)}, "ordered"),
                    ({"name": "abcd"}, "of length 2 to 3"), ({"mode": True}, "one of"), ({"mode": "1"}, "one of"),
                    ({"inner": Inner(n=1)}, "Outer.inner.n=1"), ({"inner": 3}, "a Inner")]:
        with pytest.raises(ValueError, match="is not allowed") as e:
            check_fields(Outer(**kw))
        assert msg in str(e.value), (kw, str(e.value))


def _load_example(name):
    spec = importlib.util.spec_from_file_location(f"_example_{name}", os.path.join(ROOT, "examples", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script, args, field", [
    ("train_ppo", ["--learning-rate", "nan"], "PPOConfig.learning_rate=nan"),
    ("train_ppo", ["--clip-epsilon", "inf"], "PPOConfig.clip_epsilon=inf"),
    ("train_sac", ["--init-temperature", "-inf"], "SACConfig.init_temperature=-inf"),
    ("train_ddpg", ["--sigma-max", "nan"], "DDPGConfig.sigma_max=nan"),
    ("train_rubiksnet", ["--temporal-lambda", "inf"], "VideoTrainConfig.temporal_lambda=inf"),
    ("train_es", ["--noise-std", "nan"], "ESConfig.noise_std=nan"),
])
def test_cli_refuses_nan_and_inf_before_compiling(script, args, field, tmp_path, compiles):
    import tyro

    module = _load_example(script)
    parsed = tyro.cli(module.Args, args=args + ["--run-dir", str(tmp_path / "run")],
                      config=(tyro.conf.OmitArgPrefixes,))
    before = compiles.count
    with pytest.raises(ValueError, match=field.replace(".", r"\.").replace("-inf", "-inf")):
        module.main(parsed)
    assert compiles.count == before
    assert not (tmp_path / "run").exists(), "a refused run must not create its run directory"
