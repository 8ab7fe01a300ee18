"""The Env protocol, the EnvState pytree, observation/action specs and the env registry.

An environment is a pair of pure functions over pytrees::

    state = env.reset(key)            # key: PRNG key uint32[2]
    state = env.step(state, action)   # action: [action_size] float32

Both are ``jax.jit``/``jax.vmap`` friendly; batching is ``jax.vmap(env.step)``.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from typing import Annotated, Any, Callable, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from flax import struct

from vasa.run.fields import Check


@struct.dataclass
class EnvState:
    """State of one environment (add leading axes with ``jax.vmap``).

    Attributes:
      physics: simulator state (MJX ``Data``, Brax pipeline state, or a small array pytree).
      obs: observation, an array ``[obs_size] float32`` or a dict of arrays
        (for example ``{"pixels": uint8[H, W, C], "proprio": float32[P]}``).
      reward: ``[] float32`` reward of the last transition.
      done: ``[] float32`` 1.0 when the last transition ended the episode, by termination
        *or* truncation.
      truncation: ``[] float32`` 1.0 when the episode ended only because of a time limit; the
        state that followed is not terminal and learners should bootstrap from it.
      info: auxiliary per-step data used by wrappers and learners (e.g. ``"final_obs"``).
      metrics: per-step scalars for logging (e.g. ``"episode_return"``).
    """

    physics: Any
    obs: Any
    reward: jax.Array
    done: jax.Array
    truncation: jax.Array
    info: dict = struct.field(default_factory=dict)
    metrics: dict = struct.field(default_factory=dict)

    @property
    def termination(self) -> jax.Array:
        """``[] float32``: 1.0 when the episode ended in a terminal state (no bootstrap)."""
        return self.done * (1.0 - self.truncation)


@struct.dataclass
class ArraySpec:
    """Shape, dtype and (for bounded arrays) element-wise bounds of one array."""

    shape: tuple = struct.field(pytree_node=False)
    dtype: Any = struct.field(pytree_node=False, default=jnp.float32)
    low: Any = None
    high: Any = None

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@runtime_checkable
class Env(Protocol):
    """The environment contract every algorithm in vasa programs against."""

    def reset(self, key: jax.Array) -> EnvState:
        """Start an episode. ``key``: PRNG key ``uint32[2]``."""

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        """Advance one control step with ``action: [action_size] float32``."""

    @property
    def observation_spec(self) -> Any:
        """An :class:`ArraySpec` or a dict of them, matching ``EnvState.obs``."""

    @property
    def action_spec(self) -> ArraySpec:
        """Bounded ``ArraySpec`` of shape ``[action_size]``."""

    @property
    def episode_length(self) -> int | None:
        """Time limit in control steps applied by :func:`make` (``None`` for no limit)."""


# --------------------------------------------------------------------------- registry
# Builders are referenced by "module:function" so that listing ids never imports MuJoCo,
# Brax or Playground (``import vasa`` stays fast).

_REGISTRY: dict[str, tuple[str, dict]] = {}


def register(env_id: str, builder: str | Callable[..., Env], **defaults) -> None:
    """Register ``env_id`` -> ``builder(**defaults, **kwargs)``.

    ``builder`` is a callable or a lazily imported ``"package.module:function"`` string.
    """
    _REGISTRY[env_id] = (builder, defaults)


def registered_ids() -> list[str]:
    """All registered env ids, sorted."""
    return sorted(_REGISTRY)


def check_env_id(env_id: str) -> None:
    """Raise ``ValueError`` naming the valid ids (closest first) if ``env_id`` is unknown."""
    if env_id in _REGISTRY:
        return
    ids = registered_ids()
    close = difflib.get_close_matches(env_id, ids, n=5, cutoff=0.4)
    rest = [i for i in ids if i not in close]
    raise ValueError(
        f"env_id={env_id!r} is not a registered environment. "
        + (f"Closest matches: {', '.join(close)}. " if close else "")
        + (f"Other valid ids: " if close else "Valid ids: ") + f"{', '.join(rest if close else ids)}."
    )


EnvId = Annotated[str, Check(lambda env_id: check_env_id(env_id) is None, "a registered environment id")]
"""A config field holding an environment id (validated against the registry, closest matches named)."""


def parse_env_options(options) -> dict:
    """Task builder arguments from ``name=value`` strings: ``("num_layouts=64", "rows=3",
    "sensors=('lidar', 'depth')")`` -> ``{"num_layouts": 64, "rows": 3, "sensors": ("lidar",
    "depth")}``. A value is read as a Python literal (number, bool, None, string, tuple) and
    otherwise kept as the string itself (``control=osc_pose``).

    Raises:
      ValueError: an entry that is not ``name=value`` with an identifier as ``name``, or a
        name given twice (the message names the entry).
    """
    import ast

    out = {}
    for entry in options:
        name, sep, text = entry.partition("=") if isinstance(entry, str) else ("", "", "")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ValueError(f"env_options entry {entry!r} is not allowed: write name=value (e.g. num_layouts=64).")
        if name in out:
            raise ValueError(f"env_options entry {entry!r} is not allowed: {name} is given twice.")
        try:
            out[name] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            out[name] = text.strip()
    return out


def _options_ok(options) -> bool:
    try:
        parse_env_options(options)
    except ValueError:
        return False
    return True


EnvOptions = Annotated[tuple[str, ...], Check(_options_ok, "name=value entries, name an identifier given once (e.g. num_layouts=64)")]
"""A config field of task builder arguments as ``name=value`` strings (:func:`parse_env_options`)."""


def _resolve(builder):
    if callable(builder):
        return builder
    module, _, name = builder.partition(":")
    return getattr(importlib.import_module(module), name)


def make_raw(env_id: str, **kwargs) -> Env:
    """Build the registered environment without vasa's standard wrappers.

    Raises:
      ValueError: ``kwargs`` the task's builder does not take (the message names them and
        the builder's parameters).
    """
    check_env_id(env_id)
    builder, defaults = _REGISTRY[env_id]
    fn = _resolve(builder)
    params = inspect.signature(fn).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise ValueError(f"{env_id} does not take {', '.join(unknown)}: its builder's parameters are "
                             f"{', '.join(params) or 'none'}.")
    try:
        return fn(**{**defaults, **kwargs})
    except TypeError as e:
        if "unexpected keyword argument" not in str(e):
            raise
        raise ValueError(f"{env_id} does not take {', '.join(sorted(kwargs))} as given: {e}") from e
