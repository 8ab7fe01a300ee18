"""Evaluate a navigation policy: success, SPL and return over whole episodes.

:func:`evaluate` runs ``num_episodes`` episodes of a :class:`PointGoalNav` in parallel
(``vmap`` over episodes, ``lax.scan`` over steps, one jitted program), freezing each episode
when it ends, and reports per-episode arrays and their mean and standard deviation.
:func:`evaluate_heldout` does so on held-out layouts and looks (seeds the training split never
uses). Two reference policies: :func:`random_policy` and :func:`geodesic_oracle` (a privileged
scripted controller that follows the distance field: an upper-reference for learned ones).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from vasa.envs.tasks.navigation.pointgoal import PointGoalNav
from vasa.envs.wrappers import batch_step


def random_policy(obs, key, state=None) -> jax.Array:
    """Uniform actions ``[2]`` in ``[-1, 1]``."""
    return jax.random.uniform(key, (2,), minval=-1.0, maxval=1.0)


def geodesic_oracle(env: PointGoalNav) -> Callable:
    """A scripted policy with privileged state: head for the cell of lowest geodesic
    distance within 0.3 m, turning in place while the heading error exceeds 30 degrees.
    Returns ``policy(obs, key, state) -> action [2]``."""

    def policy(obs, key, state):
        field = env.fields[state.info["layout"], state.info["goal"]]
        pos, theta = env._pose(state.physics)
        rel = (pos - env.origin) / env.resolution
        i0, j0 = jnp.floor(rel[1]).astype(jnp.int32), jnp.floor(rel[0]).astype(jnp.int32)
        offs = jnp.arange(-3, 4)
        ii = jnp.broadcast_to(jnp.clip(i0 + offs[:, None], 0, field.shape[0] - 1), (7, 7))
        jj = jnp.broadcast_to(jnp.clip(j0 + offs[None, :], 0, field.shape[1] - 1), (7, 7))
        vals = jnp.where(jnp.isfinite(field[ii, jj]), field[ii, jj], 1e6).reshape(-1)
        k = jnp.argmin(vals)
        target = env.origin + (jnp.stack([jj.reshape(-1)[k], ii.reshape(-1)[k]]).astype(jnp.float32) + 0.5) * env.resolution
        goal = state.info["goal_pos"]
        target = jnp.where(jnp.linalg.norm(goal - pos) < 0.5, goal, target)
        d = target - pos
        err = jnp.arctan2(d[1], d[0]) - theta
        err = jnp.arctan2(jnp.sin(err), jnp.cos(err))
        turn = jnp.clip(err / (1.57 * 0.1 * 2), -1.0, 1.0)
        fwd = jnp.where(jnp.abs(err) < jnp.pi / 6, 1.0, 0.0)
        return jnp.stack([fwd, turn])

    return policy


def evaluate(env: PointGoalNav, policy: Callable, key: jax.Array, num_episodes: int = 32,
             max_steps: int | None = None) -> dict:
    """Run ``num_episodes`` episodes of at most ``max_steps`` (default: the env's 500).

    Args:
      policy: ``policy(obs, key, state) -> action [2]`` for one environment (vmapped here;
        learned policies ignore ``state``), or a policy with memory: batched ``policy(obs
        [N, ...], memory) -> (action [N, 2], memory)`` with ``policy.zero_carry(N)`` (a
        recurrent PPO run's, :func:`vasa.algos.ppo_eval.load_policy`), its memory starting at
        zero and carried through each episode.

    Returns:
      ``{"success", "spl", "return", "length", "collisions", "shortest": float [N]}`` (NumPy)
      and ``"summary": {name: (mean, std)}``.
    """
    if not isinstance(num_episodes, (int, np.integer)) or num_episodes < 1:
        raise ValueError(f"num_episodes={num_episodes!r} is not allowed: it must be an integer >= 1.")
    steps = int(max_steps or env.default_episode_length)
    out = _run(env, policy, int(num_episodes), steps)(key)
    out.pop("trace")
    res = {k: np.asarray(v) for k, v in out.items()}
    res["summary"] = {k: (float(v.mean()), float(v.std())) for k, v in res.items()}
    return res


def _run(env, policy, n, steps, reset=None):
    """``run(key, *args)``: ``n`` episodes of ``steps`` steps, each frozen once it ends.
    ``reset(key, *args)`` starts one (default ``env.reset``). Returns per-episode arrays
    ``[n]`` and per-step traces ``"trace": {"reward", "live", "success"[, "fraction", "count"]}``
    ``[steps, n]`` (``live``: 1 while the episode had not ended before that step)."""
    reset = env.reset if reset is None else reset
    recurrent = hasattr(policy, "zero_carry")

    def run(key, *args):
        k_reset, k_act = jax.random.split(key)
        state = jax.vmap(lambda k: reset(k, *args))(jax.random.split(k_reset, n))
        zero = jnp.zeros(n)
        carry0 = (state, zero, zero, zero, zero, zero, policy.zero_carry(n) if recurrent else None)

        def body(carry, k):
            state, ended, ret, succ, spl, length, memory = carry
            if recurrent:
                act, memory = policy(state.obs, memory)
            else:
                act = jax.vmap(policy)(state.obs, jax.random.split(k, n), state)
            nxt = batch_step(env, state, act)
            live = 1.0 - ended
            ret = ret + live * nxt.reward
            succ = jnp.maximum(succ, live * nxt.metrics["success"])
            spl = spl + live * nxt.metrics.get("spl", zero)
            length = length + live
            keep = ended > 0
            state = jax.tree.map(lambda a, b: jnp.where(keep.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), state, nxt)
            ended = jnp.maximum(ended, nxt.done)
            trace = {"reward": nxt.reward, "live": live, "success": nxt.metrics["success"],
                     **{k: nxt.metrics[k] for k in ("fraction", "count") if k in nxt.metrics}}
            return (state, ended, ret, succ, spl, length, memory), trace

        (state, _, ret, succ, spl, length, _), trace = jax.lax.scan(body, carry0, jax.random.split(k_act, steps))
        return {"success": succ, "spl": spl, "return": ret, "length": length,
                "collisions": state.info["collisions"], "shortest": state.info.get("shortest", jnp.full(n, jnp.nan)),
                "trace": trace}

    return jax.jit(run)


def evaluate_heldout(policy: Callable, key: jax.Array, *, num_layouts: int = 4, num_episodes: int = 32,
                     look: str = "heldout", max_steps: int | None = None, policy_needs_env: bool = False,
                     **env_kwargs) -> dict:
    """:func:`evaluate` on ``num_layouts`` held-out layouts (seeds from
    :data:`~vasa.envs.scenes.apartment.HELDOUT_SEED_OFFSET`) with ``look`` (``"heldout"``
    colours, floor texture and light by default). ``env_kwargs`` go to
    :class:`PointGoalNav` (use the training family's ``rows``, ``cols``, ``family_seed``...).
    With ``policy_needs_env=True``, ``policy(env)`` makes the policy (e.g.
    :func:`geodesic_oracle`). The result also holds ``"env"``: the held-out env."""
    env = PointGoalNav(split="heldout", num_layouts=num_layouts, look=look, **env_kwargs)
    res = evaluate(env, policy(env) if policy_needs_env else policy, key, num_episodes, max_steps)
    res["env"] = env
    return res
