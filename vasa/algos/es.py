"""Evolution strategies (OpenAI-ES as SURREAL-ES runs it) with the population sharded over the mesh.

Each iteration (Salimans et al. 2017; dissertation section 3.3.4):

1. draw ``population`` perturbations of the policy parameters ``theta`` (a flat ``[n]``
   vector): with ``antithetic`` sampling, ``population / 2`` noise vectors ``eps_j ~ N(0, I)``
   each giving the pair ``theta + sigma eps_j`` and ``theta - sigma eps_j``;
2. run every member for ``rollouts_per_member`` full episodes (a ``lax.scan`` over the time
   limit, rewards after the first ``done`` masked) with fixed Gaussian action noise; its
   fitness ``F`` is its mean return;
3. shape the fitness over the whole population: centred ranks in ``[-0.5, 0.5]`` (default),
   z-scores, or raw returns;
4. estimate the ascent direction ``g = sum_j (F+_j - F-_j) eps_j / population`` (OpenAI's
   ``batched_weighted_sum / returns.size``; without antithetic sampling ``sum_i F_i eps_i /
   population``), and step Adam on ``-g + l2_coef * theta`` (OpenAI's weight decay).

On the mesh (``jax.shard_map`` over ``"data"``) each device draws its own members' noise from
keys (``eps_j`` comes from ``fold_in(key, j)``: no noise table is stored or shipped), runs their
episodes, and the devices exchange only the ``population`` fitness scalars
(``all_gather``). Every device then regenerates all ``eps_j`` from the same keys and makes the
same update, so ``theta`` stays replicated without communicating parameters or gradients.

The policy is an MLP with ``tanh`` output scaled to the action bounds, or with
``action_bins = K`` one ``K``-way argmax per action dimension over ``K`` evenly spaced values
from the lower to the upper bound (SURREAL: 10 bins for Swimmer and Hopper; the action noise
then perturbs the logits, so actions stay on the bin values). Observations are z-filtered
with running statistics merged from a fraction ``obs_stats_fraction`` of each iteration's
rollouts (OpenAI: 1%), clipped to +-5.

Usage::

    from vasa.algos import es
    policy, state, rows = es.train(es.ESConfig(env="toy/pendulum", total_env_steps=2_000_000))
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.flatten_util import ravel_pytree
from jax.sharding import NamedSharding, PartitionSpec as P

from vasa.dist.mesh import DATA_AXIS, jit_sharded_step, make_mesh, psum
from vasa.envs import EnvId, EnvOptions, batch_step, make, parse_env_options
from vasa.envs.rollout import episode_returns
from vasa.nn import MLP, RunningStats
from vasa.run import RunConfig, chunk_plan, chunked_iterations, prepare_run, require
from vasa.run.fields import NonNegFloat, PosFloat, PosInt, Range, Seed, check_fields

OBS_CLIP = 5.0  # OpenAI-ES clips normalised observations to +-5


@dataclass(frozen=True)
class ESConfig:
    """ES hyperparameters (OpenAI-ES / SURREAL-ES defaults)."""

    env: EnvId = "toy/pendulum"
    """environment id (see vasa.envs.registered_ids()); its state observation"""
    env_options: EnvOptions = ()
    """task builder arguments as name=value (e.g. num_layouts=64 for nav/pointgoal)"""
    total_env_steps: PosInt = 4_000_000
    """training length in environment steps (population x rollouts x episode steps x action repeat per iteration)"""
    seed: Seed = 0
    """random seed"""
    episode_length: PosInt | None = None
    """time limit in task steps (None: the task's own)"""
    action_repeat: PosInt | None = None
    """repeat each action this many task steps (None: the task's own)"""

    population: PosInt = 256
    """members per iteration (global, split over devices)"""
    antithetic: bool = True
    """mirrored pairs theta +- sigma eps (population even, and each device's share even)"""
    noise_std: PosFloat = 0.02
    """sigma, the parameter perturbation scale (SURREAL: 0.02)"""
    learning_rate: PosFloat = 0.01
    """Adam learning rate on the estimated gradient (OpenAI: 0.01)"""
    l2_coef: NonNegFloat = 0.005
    """L2 weight decay added to the negated gradient (OpenAI: 0.005)"""
    fitness_shaping: Literal["centered_rank", "z_score", "raw"] = "centered_rank"
    """centred ranks in [-0.5, 0.5] (OpenAI), standardised returns, or the returns themselves"""
    action_noise: NonNegFloat = 0.01
    """std of the Gaussian noise added to every training action (to the logits with action_bins)"""
    action_bins: Annotated[int, Range(ge=2)] | None = None
    """discretise each action dimension into this many evenly spaced values (SURREAL: 10 for Swimmer/Hopper)"""
    rollouts_per_member: PosInt = 1
    """episodes per member; its fitness is their mean return"""
    normalize_observations: bool = True
    """z-filter observations with running statistics (clipped to +-5)"""
    obs_stats_fraction: Annotated[float, Range(gt=0, le=1)] = 0.01
    """fraction of each iteration's members whose observations (before their episodes end) update the statistics
    (OpenAI: 0.01; at least one member)"""

    hidden_layers: tuple[PosInt, ...] = (64, 64)
    """policy MLP hidden sizes (SURREAL-ES: two fully connected layers)"""
    activation: Literal["tanh", "relu", "swish", "elu", "gelu"] = "tanh"
    """hidden activation"""

    def validate(self, num_devices: int = 1) -> None:
        """Raise ``ValueError`` naming the field, its value and what is allowed, before compiling."""
        check_fields(self)
        require(self, self.population % num_devices == 0, "population",
                f"it must be divisible by the number of devices ({num_devices})")
        if self.antithetic:
            require(self, self.population % (2 * num_devices) == 0, "population",
                    f"antithetic sampling needs an even number of members per device ({num_devices} devices): a "
                    f"multiple of {2 * num_devices}")

    def steps_per_episode(self, env) -> int:
        """Agent steps of one full episode of ``env`` (the time limit over the action repeat)."""
        return -(-int(env.episode_length) // int(env.steps_per_action))

    def env_steps_per_iteration(self, env) -> int:
        """Task steps per iteration: every member's episodes to the time limit, repeats counted."""
        return self.population * self.rollouts_per_member * self.steps_per_episode(env) * int(env.steps_per_action)

    def num_iterations(self, env) -> int:
        """Iterations to reach ``total_env_steps`` (rounded up)."""
        return -(-self.total_env_steps // self.env_steps_per_iteration(env))


def make_env(config: ESConfig, training: bool = False):
    """The state environment of ``config`` (with time limit and repeat; auto-resetting).

    ``training``: the environment the members' rollouts use. Each member runs its episodes
    to the time limit with the steps after an episode's end masked, so what those steps
    simulate does not matter, but what it costs does: without any reset a fallen body keeps
    pressing on its joint limits and contacts, which makes MJX's constraint solver iterate
    longer (on ``brax/inverted_pendulum``, 256 environments: ~43K steps/s against ~70K with a
    cached reset, measured side by side on the 2-core CPU); a fresh reset at every step costs
    a forward pass. So training rollouts auto-reset to the episode's cached first state
    (``reset_mode="cached"``, Brax's behaviour, as Brax's ES does), which keeps the masked
    tail cheap without changing any counted reward or observation.
    """
    return make(config.env, episode_length=config.episode_length, action_repeat=config.action_repeat,
                auto_reset=True, reset_mode="cached" if training else "fresh", **parse_env_options(config.env_options))


# --------------------------------------------------------------------------- policy


class Policy:
    """The policy as pure functions of a flat parameter vector ``theta: float32 [n]``."""

    def __init__(self, config: ESConfig, env):
        spec = env.action_spec
        self.action_size = int(spec.shape[0])
        self.obs_size = int(env.observation_spec.size)
        self.bins = config.action_bins
        out = self.action_size * (self.bins or 1)
        self.net = MLP(tuple(config.hidden_layers), out, config.activation)
        self.low = jnp.asarray(spec.low, jnp.float32)
        self.high = jnp.asarray(spec.high, jnp.float32)
        self.config = config
        _, self.unravel = ravel_pytree(self.net.init(jax.random.PRNGKey(0), jnp.zeros((1, self.obs_size))))

    def init(self, key) -> jax.Array:
        """Initial ``theta: float32 [n]`` (the MLP's default initialisation, flattened)."""
        return ravel_pytree(self.net.init(key, jnp.zeros((1, self.obs_size))))[0]

    def bin_values(self) -> jax.Array:
        """``float32 [A, K]``: the values each discretised action dimension can take."""
        t = jnp.linspace(0.0, 1.0, self.bins)
        return self.low[:, None] + t[None, :] * (self.high - self.low)[:, None]

    def act(self, theta, normalizer: RunningStats, obs, noise=None):
        """Actions ``[..., A]`` for observations ``[..., obs_size]`` (``noise`` of the
        network output's shape perturbs the output before squashing or argmax)."""
        return self.act_with(self.unravel(theta), normalizer, obs, noise)

    def act_with(self, params, normalizer: RunningStats, obs, noise=None):
        """:meth:`act` with the network's parameter pytree (``unravel(theta)``) instead of
        the flat ``theta``: rollouts unravel each member once, not once per step."""
        x = normalizer.normalize(obs, clip=OBS_CLIP) if self.config.normalize_observations else obs
        u = self.net.apply(params, x)
        if noise is not None:
            u = u + noise
        if self.bins is None:
            return self.low + (jnp.tanh(u) + 1.0) * 0.5 * (self.high - self.low)
        logits = u.reshape(u.shape[:-1] + (self.action_size, self.bins))
        index = jnp.argmax(logits, axis=-1)
        return jnp.take_along_axis(jnp.broadcast_to(self.bin_values(), logits.shape), index[..., None], -1)[..., 0]

    @property
    def output_size(self) -> int:
        return self.action_size * (self.bins or 1)


# --------------------------------------------------------------------------- state and maths


@struct.dataclass
class TrainState:
    """Everything an ES run needs to continue exactly.

    Attributes:
      theta: ``float32 [n]`` the centre's flat parameters (replicated).
      opt_state: Adam's state. normalizer: observation statistics.
      key: PRNG key ``uint32[2]``; iteration: ``[] int32`` completed iterations.
    """

    theta: jax.Array
    opt_state: Any
    normalizer: RunningStats
    key: jax.Array
    iteration: jax.Array


def centered_ranks(x: jax.Array) -> jax.Array:
    """OpenAI-ES's fitness shaping: ranks of ``x: [P]`` (0 for the lowest; ties broken by
    position) mapped linearly onto ``[-0.5, 0.5]``; ``float32 [P]``."""
    ranks = jnp.zeros(x.shape[0], jnp.float32).at[jnp.argsort(x)].set(jnp.arange(x.shape[0], dtype=jnp.float32))
    return ranks / max(x.shape[0] - 1, 1) - 0.5


def shape_fitness(fitness: jax.Array, how: str) -> jax.Array:
    """``centered_rank`` (:func:`centered_ranks`), ``z_score`` ((F - mean) / std) or ``raw``."""
    if how == "centered_rank":
        return centered_ranks(fitness)
    if how == "z_score":
        return (fitness - fitness.mean()) / (fitness.std() + 1e-8)
    return fitness.astype(jnp.float32)


def noise_vector(key: jax.Array, index, size: int) -> jax.Array:
    """``eps_index ~ N(0, I)``, ``float32 [size]``, from ``fold_in(key, index)``."""
    return jax.random.normal(jax.random.fold_in(key, index), (size,), jnp.float32)


def gradient_estimate(shaped: jax.Array, key: jax.Array, size: int, noise_index, sign) -> jax.Array:
    """The ascent direction ``[size]`` from shaped fitness ``[P]``: ``sum_m F_m s_m eps_{i_m} / P``
    with member ``m``'s noise index ``i_m`` and sign ``s_m`` (:func:`member_layout`), i.e.
    ``sum_j (F+_j - F-_j) eps_j / P`` for antithetic pairs. Each ``eps_j`` is regenerated from
    ``key`` (:func:`noise_vector`)."""
    noise_index = np.asarray(noise_index)
    count = int(noise_index.max()) + 1
    weights = jax.ops.segment_sum(shaped * jnp.asarray(sign), jnp.asarray(noise_index), num_segments=count)
    eps = jax.vmap(lambda j: noise_vector(key, j, size))(jnp.arange(count))
    return weights @ eps / shaped.shape[0]


def member_layout(population: int, num_shards: int, antithetic: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(noise index [P], sign [P])`` of each global member ``m = shard * (P / S) + i``: with
    antithetic sampling, a device's first half of members are ``+eps`` and its second half
    ``-eps`` of its own pairs ``shard * (P / 2S) + j``; otherwise member ``m`` uses ``+eps_m``."""
    local = population // num_shards
    m = np.arange(population)
    if not antithetic:
        return m, np.ones(population, np.float32)
    shard, i = m // local, m % local
    half = local // 2
    return shard * half + i % half, np.where(i < half, 1.0, -1.0).astype(np.float32)


def _optimizer(config: ESConfig):
    return optax.adam(config.learning_rate)


def init(config: ESConfig, env=None, mesh=None) -> TrainState:
    """The initial state (validated config), replicated on ``mesh``."""
    mesh = mesh or make_mesh()
    config.validate(mesh.size)
    env = env or make_env(config)
    policy = Policy(config, env)
    k_params, k_run = jax.random.split(jax.random.PRNGKey(config.seed))

    def build():
        theta = policy.init(k_params)
        return TrainState(theta=theta, opt_state=_optimizer(config).init(theta),
                          normalizer=RunningStats.create(policy.obs_size), key=k_run,
                          iteration=jnp.zeros((), jnp.int32))

    replicated = NamedSharding(mesh, P())
    return jax.jit(build, out_shardings=jax.tree.map(lambda _: replicated, jax.eval_shape(build)))()


# --------------------------------------------------------------------------- iteration


def make_train_step(config: ESConfig, env=None, mesh=None, chunk: int | None = None) -> Callable:
    """The jitted iteration ``step(state) -> (state, metrics)`` (state donated); with
    ``chunk=K``, ``run(state, count)`` for ``min(count, K)`` iterations per device call
    (:func:`vasa.dist.jit_sharded_step`).

    Metrics (``[]``): ``fitness_mean``, ``fitness_std``, ``fitness_max``, ``fitness_min`` (the
    members' mean returns, unshaped), ``episode_steps`` (mean agent steps before an episode
    ended, of ``steps_per_episode``), ``grad_norm`` (of the ascent direction), ``theta_norm``.
    """
    mesh = mesh or make_mesh()
    config.validate(mesh.size)
    env = env or make_env(config, training=True)
    policy = Policy(config, env)
    tx = _optimizer(config)
    S, pop, R = mesh.size, config.population, config.rollouts_per_member
    local = pop // S
    T = config.steps_per_episode(env)
    noise_index, sign = member_layout(pop, S, config.antithetic)
    identity = 2 * noise_index + (sign < 0) if config.antithetic else noise_index  # 0..P-1 whatever S is
    stats_members = max(1, int(round(config.obs_stats_fraction * pop)))  # members of identity 0..k-1
    size = int(jax.eval_shape(lambda: policy.init(jax.random.PRNGKey(0))).shape[0])

    def rollouts(thetas, normalizer, keys, counted):
        """Run each local member (``thetas [local, n]``, ``keys [local]``) for ``R`` episodes.
        Returns ``(returns [local, R], agent steps alive [local, R], obs sums)``: the count,
        sum and sum of squares (about the current mean) of the alive observations of the
        members with ``counted [local]``. Every random draw comes from the member's own key,
        so results do not depend on how members are split over devices."""
        keys = jax.vmap(lambda k: jax.random.split(k, R))(keys).reshape(local * R, -1)
        k_reset, k_act = jax.vmap(jax.random.split, out_axes=1)(keys)
        env_state = jax.vmap(env.reset)(k_reset)
        member_params = jax.vmap(policy.unravel)(jnp.repeat(thetas, R, axis=0))  # leaves [local * R, ...]
        weight = jnp.repeat(counted, R).astype(jnp.float32)
        noisy = config.action_noise > 0
        act = jax.vmap(lambda prm, o, z: policy.act_with(prm, normalizer, o, z), (0, 0, 0 if noisy else None))
        draw = jax.vmap(lambda k, t: jax.random.normal(jax.random.fold_in(k, t), (policy.output_size,)), (0, None))

        def body(carry, t):
            s, total, alive, steps, (n, s1, s2) = carry
            if config.normalize_observations:
                w = (alive * weight)[:, None]
                dev = jnp.where(w > 0, s.obs - normalizer.mean, 0.0)  # where, not *: a finished episode may hold NaN
                n, s1, s2 = n + w.sum(), s1 + (w * dev).sum(0), s2 + (w * dev**2).sum(0)
            noise = config.action_noise * draw(k_act, t) if noisy else None
            s = batch_step(env, s, act(member_params, s.obs, noise))
            total = total + jnp.where(alive > 0, s.reward, 0.0)
            return (s, total, jnp.where(s.done > 0, 0.0, alive), steps + alive, (n, s1, s2)), None

        zeros, obs0 = jnp.zeros(local * R), jnp.zeros(policy.obs_size)
        carry = (env_state, zeros, zeros + 1.0, zeros, (jnp.zeros(()), obs0, obs0))
        (_, total, _, steps, sums), _ = jax.lax.scan(body, carry, jnp.arange(T))
        return total.reshape(local, R), steps.reshape(local, R), sums

    def iteration(state: TrainState):
        key, k_noise, k_roll = jax.random.split(state.key, 3)
        shard = jax.lax.axis_index(DATA_AXIS)
        mine = shard * local + jnp.arange(local)  # global member indices
        eps = jax.vmap(lambda j: noise_vector(k_noise, j, size))(jnp.asarray(noise_index)[mine])
        thetas = state.theta + config.noise_std * jnp.asarray(sign)[mine][:, None] * eps
        ident = jnp.asarray(identity)[mine]  # keys by (noise, sign), not by position: layout-free
        member_keys = jax.vmap(lambda m: jax.random.fold_in(k_roll, m))(ident)
        returns, steps, sums = rollouts(thetas, state.normalizer, member_keys, ident < stats_members)
        fitness = jax.lax.all_gather(returns.mean(axis=1), DATA_AXIS, tiled=True)  # [P]: the only exchange
        shaped = shape_fitness(fitness, config.fitness_shaping)
        g = gradient_estimate(shaped, k_noise, size, noise_index, sign)  # the same on every device
        updates, opt_state = tx.update(-g + config.l2_coef * state.theta, state.opt_state, state.theta)
        theta = optax.apply_updates(state.theta, updates)
        normalizer = state.normalizer
        if config.normalize_observations:
            normalizer = normalizer.update_from_sums(*psum(sums, DATA_AXIS))
        metrics = {"fitness_mean": fitness.mean(), "fitness_std": fitness.std(), "fitness_max": fitness.max(),
                   "fitness_min": fitness.min(), "episode_steps": psum(steps.sum(), DATA_AXIS) / (pop * R),
                   "grad_norm": jnp.linalg.norm(g), "theta_norm": jnp.linalg.norm(theta)}
        return TrainState(theta=theta, opt_state=opt_state, normalizer=normalizer, key=key,
                          iteration=state.iteration + 1), metrics

    specs = jax.tree.map(lambda _: P(), jax.eval_shape(lambda: init_abstract(config, policy)))
    step = jax.shard_map(iteration, mesh=mesh, in_specs=(specs,), out_specs=(specs, P()), check_vma=False)
    return jit_sharded_step(step, mesh, specs, chunk)


def init_abstract(config: ESConfig, policy: Policy) -> TrainState:
    theta = policy.init(jax.random.PRNGKey(0))
    return TrainState(theta=theta, opt_state=_optimizer(config).init(theta),
                      normalizer=RunningStats.create(policy.obs_size), key=jax.random.PRNGKey(0),
                      iteration=jnp.zeros((), jnp.int32))


# --------------------------------------------------------------------------- inference


def make_policy(config: ESConfig, env=None):
    """Inference: ``policy(state_or_params, obs) -> actions [..., A]``, the centre's
    deterministic policy (no action noise). ``state_or_params``: a :class:`TrainState` or a
    dict ``{"theta", "normalizer"}``."""
    policy = Policy(config, env or make_env(config))

    def act(state_or_params, obs):
        if isinstance(state_or_params, TrainState):
            return policy.act(state_or_params.theta, state_or_params.normalizer, obs)
        return policy.act(state_or_params["theta"], state_or_params["normalizer"], obs)

    return act


def make_evaluate(config: ESConfig, num_envs: int = 16, env=None):
    """Jitted ``evaluate(state, key) -> [] float32``: the mean return of ``num_envs``
    deterministic episodes of the centre."""
    env = env or make_env(config)
    act = make_policy(config, env)
    return jax.jit(lambda state, key: episode_returns(env, lambda obs: act(state, obs), key, num_envs).mean())


# --------------------------------------------------------------------------- outer loop

NAME = "es"
DEFAULT_RUN = RunConfig(eval_every=10, checkpoint_every=50, chunk=5)
LOGGED = ("fitness_mean", "fitness_std", "fitness_max", "fitness_min", "episode_steps", "grad_norm", "theta_norm")


def train(config: ESConfig, run: RunConfig = DEFAULT_RUN):
    """Train with logging (one ``metrics.csv`` row per iteration, see :data:`LOGGED`),
    periodic deterministic evaluation of the centre (``eval_return``), checkpoints and
    ``run.resume`` bit-for-bit on CPU, as :func:`vasa.algos.ppo.train`.

    Returns ``(policy, state, rows)``: ``policy(obs) -> action`` (the final centre,
    deterministic), the final :class:`TrainState` and the logged rows.
    """
    run.validate()
    plan = prepare_run(config, run, NAME, defaults=DEFAULT_RUN)
    config, run = plan.config, plan.run
    mesh = make_mesh(run.num_devices)
    config.validate(mesh.size)
    env = make_env(config)  # evaluation; the members' rollouts use make_env(config, training=True)
    per_iteration = config.env_steps_per_iteration(env)
    total = config.num_iterations(env)

    with plan.open() as session:
        start, state = session.restore(init(config, env, mesh))
        t0 = time.perf_counter()
        step = make_train_step(config, make_env(config, training=True), mesh, chunk=run.chunk).lower(
            state, run.chunk).compile()
        session.compile_s = time.perf_counter() - t0
        evaluate = make_evaluate(config, run.num_eval_envs, env)
        session.begin(total, start)
        eval_key = jax.random.PRNGKey(config.seed + 10_000)
        stop = total if run.max_iterations is None else min(total, start + run.max_iterations)
        calls = chunk_plan(start, stop, run.chunk, (run.eval_every, run.checkpoint_every))
        for state, it, values, dt in chunked_iterations(lambda s, n, _: step(s, n), state, start, calls):
            session.check_finite(values, it, ["fitness_mean", "grad_norm"])
            session.wall += dt
            row = {"iteration": it, "env_steps": it * per_iteration, "wall_time": session.wall,
                   "sps": per_iteration / dt, **{k: values[k] for k in LOGGED}, "eval_return": float("nan")}
            if it == total or (run.eval_every and it % run.eval_every == 0):
                row["eval_return"] = float(evaluate(state, jax.random.fold_in(eval_key, it)))
            session.log(row)
            if it == stop or (run.checkpoint_every and it % run.checkpoint_every == 0):
                session.save(it, state)
    act = make_policy(config, env)
    final = state
    return (lambda obs: act(final, obs)), state, session.rows


__all__ = ["DEFAULT_RUN", "ESConfig", "LOGGED", "Policy", "TrainState", "centered_ranks", "gradient_estimate",
           "init", "make_env", "make_evaluate", "make_policy", "make_train_step", "member_layout", "noise_vector",
           "shape_fitness", "train"]
