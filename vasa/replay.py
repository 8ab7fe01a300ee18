"""An on-device circular replay buffer as a pytree: per-environment streams, frames stored once,
n-step returns and frame stacks rebuilt at sample time, sharded along the mesh's ``data`` axis.

Layout. Every leaf is ``[L, E, ...]``: ``L = capacity // num_envs`` *slots* for each of the
``E`` environments. Environment ``e`` writes its stream of observations into its own ring of
slots, in order::

    slot:    p      p+1     p+2 ...
    holds:   o_t    o_t+1   ...          (one frame per slot: the newest frame of the obs)
             a_t, r_t, done_t, terminal_t (the transition that leaves the slot)

When a transition ends an episode, two slots are written: the final observation (the true
successor, which learners bootstrap from on truncation; it leaves no transition) and the first
observation of the next episode. Each slot also records its step within the episode, so a frame
stack is rebuilt from the slots behind it and never reaches into the previous episode (the
first frame is repeated instead, exactly as :class:`vasa.envs.wrappers.PixelObservation` fills
the stack on reset). Pixel observations (``uint8 [H, W, C*k]`` leaves named in
``stacked_keys``) are therefore stored once per frame, ``uint8 [H, W, C]``, not once per stack.

Sampling is uniform over the stored transitions: candidates ``(env, age)`` are drawn uniformly
and the first valid one of ``tries`` is kept (slots holding a final observation, and the current
observation of each env, carry no transition). This is exact rejection sampling; only when all
``tries`` candidates are invalid (probability below ``q**tries`` for an invalid fraction ``q``,
about 1/episode length) the env's most recent transition is used instead.

Sharding. Inside ``jax.shard_map`` with the env axis (axis 1) split over ``"data"``, every
function here works on the local shard unchanged: each device writes and samples its own
environments (SURREAL's sharded replay), so capacity and sampling bandwidth scale with the
number of devices.

Memory: ``capacity * (bytes per stored observation + 4 * action_size + 11)`` bytes, where a
stored pixel observation is one frame (``H * W * C`` bytes). See :func:`memory_bytes`; a 1M
transition buffer of 84x84x3 frames takes 21.2 GB (plus 4 bytes per float of other obs
entries), within a single H100's memory.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

STACKED_KEYS = ("pixels",)


@struct.dataclass
class Batch:
    """A sampled batch; ``B`` = batch size.

    Attributes:
      obs, next_obs: observations like the env's (pixels rebuilt as ``uint8 [B, H, W, C*k]``).
      action: ``[B, A] float32``.
      reward: ``[B] float32``, the n-step discounted return ``sum_m gamma^m r_{t+m}``.
      discount: ``[B] float32``, ``gamma^m`` for the ``m`` rewards summed, 0 when the last of
        them ended in a terminal state; the target is ``reward + discount * V(next_obs)``.
      env, slot: ``[B] int32`` where the transition is stored (for tests and priorities).
    """

    obs: Any
    action: jax.Array
    reward: jax.Array
    discount: jax.Array
    next_obs: Any
    env: jax.Array
    slot: jax.Array


@struct.dataclass
class ReplayBuffer:
    """The buffer state (see the module docstring for the layout).

    Attributes:
      obs: stored observations, the env's structure with leaves ``[L, E, ...]`` (stacked
        pixel leaves keep one frame: ``[L, E, H, W, C]``).
      action: ``[L, E, A] float32``; reward: ``[L, E] float32``.
      done, terminal, has_action: ``[L, E] bool`` (episode ended after this slot's
        transition; it ended in a terminal state; the slot holds a transition).
      step: ``[L, E] int32`` step within the episode of the slot's observation.
      pointer: ``[E] int32`` slot of each env's current observation.
      count: ``[E] int32`` slots written so far (not capped at ``L``).
      frame_stack: frames per stacked observation (static).
    """

    obs: Any
    action: jax.Array
    reward: jax.Array
    done: jax.Array
    terminal: jax.Array
    has_action: jax.Array
    step: jax.Array
    pointer: jax.Array
    count: jax.Array
    frame_stack: int = struct.field(pytree_node=False, default=1)

    @property
    def slots(self) -> int:
        """``L``, slots per environment."""
        return self.reward.shape[0]

    @property
    def num_envs(self) -> int:
        """``E``, environments (local to the device inside ``shard_map``)."""
        return self.reward.shape[1]

    def size(self) -> jax.Array:
        """``[] int32`` transitions stored (summed over this shard's envs)."""
        return jnp.sum(self.has_action.astype(jnp.int32))


# --------------------------------------------------------------------------- construction


def _is_stacked(path) -> bool:
    return bool(path) and getattr(path[-1], "key", None) in STACKED_KEYS


def _frame_shape(path, shape, frame_stack: int) -> tuple:
    if not _is_stacked(path):
        return tuple(shape)
    if shape[-1] % frame_stack:
        name = jax.tree_util.keystr(path)
        raise ValueError(f"observation {name} has {shape[-1]} channels, not a multiple of frame_stack={frame_stack}.")
    return tuple(shape[:-1]) + (shape[-1] // frame_stack,)


def create(obs_spec: Any, action_size: int, capacity: int, num_envs: int, frame_stack: int = 1) -> ReplayBuffer:
    """An empty buffer.

    Args:
      obs_spec: one environment's observation: a pytree of arrays, ``jax.ShapeDtypeStruct``
        or :class:`vasa.envs.ArraySpec` (no env axis). Leaves named ``"pixels"`` hold
        ``k = frame_stack`` frames along the last axis, newest last.
      action_size: ``A``.
      capacity: total slots over all envs (``L = capacity // num_envs`` per env; at most
        ``num_envs - 1`` are lost to rounding). Each episode end uses one extra slot.
      num_envs: environments writing to the buffer (global, before sharding).
      frame_stack: ``k`` (1 for state observations).

    Raises:
      ValueError: naming the argument when ``capacity // num_envs < frame_stack + 3``, or
        ``num_envs``/``frame_stack``/``action_size`` < 1.
    """
    for name, value in (("num_envs", num_envs), ("frame_stack", frame_stack), ("action_size", action_size)):
        if int(value) < 1:
            raise ValueError(f"{name}={value!r} is not allowed: it must be >= 1.")
    slots = int(capacity) // int(num_envs)
    if slots < frame_stack + 3:
        raise ValueError(f"capacity={capacity!r} is too small for num_envs={num_envs}: each env gets "
                         f"{slots} slots, and at least frame_stack + 3 = {frame_stack + 3} are needed.")
    E = int(num_envs)

    def leaf(path, spec):
        shape = _frame_shape(path, tuple(spec.shape), frame_stack)
        return jnp.zeros((slots, E) + shape, spec.dtype)

    obs = jax.tree_util.tree_map_with_path(leaf, obs_spec, is_leaf=lambda x: hasattr(x, "shape"))
    zeros = jnp.zeros((slots, E))
    false = jnp.zeros((slots, E), bool)
    return ReplayBuffer(obs=obs, action=jnp.zeros((slots, E, int(action_size))), reward=zeros, done=false,
                        terminal=false, has_action=false, step=jnp.zeros((slots, E), jnp.int32),
                        pointer=jnp.zeros(E, jnp.int32), count=jnp.zeros(E, jnp.int32), frame_stack=int(frame_stack))


def memory_bytes(obs_spec: Any, action_size: int, capacity: int, frame_stack: int = 1) -> int:
    """Bytes the buffer's arrays take for ``capacity`` slots (without creating it)."""
    per_slot = 4 * int(action_size) + 4 + 4 + 3  # action, reward, step, three flags
    for path, spec in jax.tree_util.tree_flatten_with_path(obs_spec, is_leaf=lambda x: hasattr(x, "shape"))[0]:
        per_slot += math.prod(_frame_shape(path, tuple(spec.shape), frame_stack)) * jnp.dtype(spec.dtype).itemsize
    return int(capacity) * per_slot


# --------------------------------------------------------------------------- writing


def _newest(buffer: ReplayBuffer, obs):
    """The part of a batched observation ``[E, ...]`` that is stored: the newest frame of
    stacked leaves, everything of the others."""

    def take(path, x, stored):
        return x[..., -stored.shape[-1]:] if _is_stacked(path) else x

    return jax.tree_util.tree_map_with_path(take, obs, buffer.obs)


def _write_obs(buffer: ReplayBuffer, slots: jax.Array, obs, step: jax.Array) -> ReplayBuffer:
    """Write ``obs`` (``[E, ...]``) at ``slots[e]`` for each env; out-of-range slots are dropped."""
    envs = jnp.arange(buffer.num_envs)
    new = _newest(buffer, obs)
    stored = jax.tree.map(lambda s, x: s.at[slots, envs].set(x.astype(s.dtype), mode="drop"), buffer.obs, new)
    return buffer.replace(obs=stored, step=buffer.step.at[slots, envs].set(step, mode="drop"),
                          has_action=buffer.has_action.at[slots, envs].set(False, mode="drop"))


def start(buffer: ReplayBuffer, obs) -> ReplayBuffer:
    """Begin every env's stream with the first observation of an episode (``[E, ...]``, as
    returned by a vmapped ``env.reset``). Call once, before the first :func:`add`."""
    E = buffer.num_envs
    buffer = _write_obs(buffer, buffer.pointer, obs, jnp.zeros(E, jnp.int32))
    return buffer.replace(count=buffer.count + 1)


def add(buffer: ReplayBuffer, action: jax.Array, reward: jax.Array, next_obs, terminal: jax.Array,
        done: jax.Array, obs_after=None) -> ReplayBuffer:
    """Record one step of every env (all arguments batched over ``E``).

    Args:
      action: ``[E, A]`` actions taken from the current observations.
      reward: ``[E]``.
      next_obs: the true successors (``info["final_obs"]`` of :class:`AutoReset`): on an
        episode end, the last observation of the episode.
      terminal: ``[E]`` the episode ended in a terminal state (no bootstrap).
      done: ``[E]`` the episode ended (terminal or truncated).
      obs_after: the observations the envs continue from (after an auto-reset, the first of
        the next episode); defaults to ``next_obs`` (only valid when no env is done).
    """
    L, E = buffer.slots, buffer.num_envs
    envs = jnp.arange(E)
    p = buffer.pointer
    done = jnp.asarray(done).astype(bool)
    buffer = buffer.replace(
        action=buffer.action.at[p, envs].set(action.astype(buffer.action.dtype)),
        reward=buffer.reward.at[p, envs].set(reward.astype(buffer.reward.dtype)),
        done=buffer.done.at[p, envs].set(done),
        terminal=buffer.terminal.at[p, envs].set(jnp.asarray(terminal).astype(bool) & done),
    )
    step = buffer.step[p, envs]
    has_action = buffer.has_action.at[p, envs].set(True)
    buffer = _write_obs(buffer.replace(has_action=has_action), (p + 1) % L, next_obs, step + 1)
    if obs_after is not None:
        second = jnp.where(done, (p + 2) % L, L)  # L is out of range: dropped
        buffer = _write_obs(buffer, second, obs_after, jnp.zeros(E, jnp.int32))
    extra = done.astype(jnp.int32)
    return buffer.replace(pointer=(p + 1 + extra) % L, count=buffer.count + 1 + extra)


def add_env_step(buffer: ReplayBuffer, action: jax.Array, env_state) -> ReplayBuffer:
    """:func:`add` from the batched :class:`~vasa.envs.EnvState` that ``action`` produced
    (it must come from an :class:`~vasa.envs.wrappers.AutoReset` env, for ``final_obs``)."""
    return add(buffer, action, env_state.reward, env_state.info["final_obs"], env_state.termination,
               env_state.done, env_state.obs)


# --------------------------------------------------------------------------- sampling


def max_age(buffer: ReplayBuffer) -> jax.Array:
    """``[E] int32``: the oldest slot age (slots behind the pointer) that may be sampled; a
    full ring keeps ``frame_stack - 1`` slots behind it intact for the stack."""
    L = buffer.slots
    return jnp.where(buffer.count >= L, L - buffer.frame_stack, buffer.count - 1).astype(jnp.int32)


def gather_obs(buffer: ReplayBuffer, env: jax.Array, slot: jax.Array):
    """Observations ``[B, ...]`` at ``(slot[b], env[b])``, stacked leaves rebuilt from the
    ``frame_stack`` slots ending there (the episode's first frame repeated where the episode
    is younger than the stack), oldest frame first."""
    L, k = buffer.slots, buffer.frame_stack
    step = buffer.step[slot, env]

    def rebuild(path, stored):
        if not _is_stacked(path):
            return stored[slot, env]
        frames = [stored[(slot - jnp.minimum(j, step)) % L, env] for j in range(k - 1, -1, -1)]
        return jnp.concatenate(frames, axis=-1)

    return jax.tree_util.tree_map_with_path(rebuild, buffer.obs)


def sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int, n_step: int = 1, gamma: float = 0.99,
           tries: int = 16) -> Batch:
    """``batch_size`` transitions drawn uniformly with replacement, with n-step returns.

    The n-step sum stops early at the end of an episode (bootstrapping from the final
    observation, discount 0 if terminal) and at the newest stored observation. The buffer
    must hold at least one transition per env before sampling (see :func:`ready`).

    Returns a :class:`Batch` with leading axis ``batch_size``.
    """
    L, E = buffer.slots, buffer.num_envs
    ages_ok = max_age(buffer)
    top = jnp.maximum(jnp.max(ages_ok), 1).astype(jnp.uint32)
    # one 32-bit draw per try gives both the env and the age (u = env + E * (age - 1) over the
    # E * top candidates): four times fewer random bits than two randint calls, which on a CPU
    # were the whole cost of sampling (1.9 of 1.9 ms for 8 batches of 128). The modulo bias is
    # at most E * top / 2**32 relative, 2e-4 for a million-transition buffer.
    u = jax.random.bits(key, (batch_size, tries), jnp.uint32) % (jnp.uint32(E) * top)
    env = (u % jnp.uint32(E)).astype(jnp.int32)
    age = (u // jnp.uint32(E)).astype(jnp.int32) + 1
    slot = (buffer.pointer[env] - age) % L
    valid = buffer.has_action[slot, env] & (age <= ages_ok[env])
    pick = jnp.argmax(valid, axis=1)
    env_b = jnp.take_along_axis(env, pick[:, None], 1)[:, 0]
    slot_b = jnp.take_along_axis(slot, pick[:, None], 1)[:, 0]
    # fallback (all tries invalid): the env's most recent transition
    latest = (buffer.pointer[env_b] - 1) % L
    latest = jnp.where(buffer.has_action[latest, env_b], latest, (latest - 1) % L)
    slot_b = jnp.where(valid.any(axis=1), slot_b, latest)

    ret = jnp.zeros(batch_size)
    disc = jnp.ones(batch_size)
    terminal = jnp.zeros(batch_size, bool)
    nxt = (slot_b + 1) % L
    going = jnp.ones(batch_size, bool)
    for m in range(int(n_step)):
        s = (slot_b + m) % L
        use = going & buffer.has_action[s, env_b]
        ret = ret + jnp.where(use, disc * buffer.reward[s, env_b], 0.0)
        disc = jnp.where(use, disc * gamma, disc)
        terminal = jnp.where(use, buffer.terminal[s, env_b], terminal)
        nxt = jnp.where(use, (s + 1) % L, nxt)
        going = use & ~buffer.done[s, env_b]
    return Batch(obs=gather_obs(buffer, env_b, slot_b), action=buffer.action[slot_b, env_b], reward=ret,
                 discount=jnp.where(terminal, 0.0, disc), next_obs=gather_obs(buffer, env_b, nxt),
                 env=env_b.astype(jnp.int32), slot=slot_b.astype(jnp.int32))


def ready(buffer: ReplayBuffer) -> jax.Array:
    """``[] bool``: every env has at least one transition stored (sampling is defined)."""
    return jnp.all(max_age(buffer) >= 1)


__all__ = ["Batch", "ReplayBuffer", "STACKED_KEYS", "add", "add_env_step", "create", "gather_obs", "max_age",
           "memory_bytes", "ready", "sample", "start"]
