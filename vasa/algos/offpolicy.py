"""What SAC and DDPG share: the configuration of environments, replay and training length; the
on-device iteration (collect with ``lax.scan``, write to the sharded replay buffer, then a
``lax.scan`` of gradient updates); evaluation; and the outer loop with logging, checkpoints
(replay buffer included) and resume.

An algorithm supplies a :class:`Learner`: how to initialise its parameters, act with
exploration, update from a :class:`~vasa.replay.Batch`, and act deterministically.

One iteration, written once against the 1-D ``data`` mesh (``jax.shard_map``):

1. every environment takes ``steps_per_iteration`` steps with the exploration policy (uniform
   random actions during the first ``learning_starts`` transitions), and each device writes
   its environments' transitions into its own shard of the replay buffer;
2. ``updates_per_iteration = replay_ratio * num_envs * steps_per_iteration`` gradient updates
   follow; each device samples ``batch_size / num_devices`` transitions from its own shard and
   gradients are averaged with ``lax.pmean``, so all devices keep identical parameters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Literal, Protocol

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.sharding import NamedSharding, PartitionSpec as P

from vasa import replay
from vasa.algos.demo_bc import bc_term, bc_weight, check_bc_fields, load_pairs, q_scale
from vasa.dist.mesh import DATA_AXIS, global_row_ids, jit_sharded_step, make_mesh, pmean, psum
from vasa.envs import EnvId, EnvOptions, EnvState, batch_step, make, parse_env_options
from vasa.envs.curriculum import SCHEDULE, DemoSchedule, demo_overrides
from vasa.envs.rollout import episode_returns
from vasa.envs.randomize import SuiteName, appearance_problem
from vasa.run import RunConfig, chunk_plan, chunked_iterations, prepare_run, require
from vasa.run.fields import NonNegFloat, NonNegInt, PosFloat, PosInt, Range, Seed, UnitFloat, check_fields


Suite = SuiteName  # (kept under its old name)


@dataclass(frozen=True)
class OffPolicyConfig:
    """Environment, replay and schedule options shared by SAC and DDPG."""

    env: EnvId = "dmc/cartpole_swingup"
    """environment id (see vasa.envs.registered_ids())"""
    env_options: EnvOptions = ()
    """task builder arguments as name=value, e.g. control=joint_velocity for robo/*"""
    pixels: bool = False
    """learn from rendered pixels (84x84 RGB, frame stack) instead of the state vector"""
    train_appearance: Suite = "train"
    """appearance suite while training (pixels only)"""
    appearance: Suite = "train"
    """appearance suite for evaluation: train, color_easy, color_hard, video_easy, video_hard (robo/*: easy, hard,
    extreme and their _heldout variants)"""
    image_size: PosInt = 84
    """rendered image height and width (pixels only)"""
    frame_stack: PosInt = 3
    """frames per observation (pixels only)"""
    action_repeat: PosInt | None = None
    """repeat each action this many task steps (None: PAD's for pixels, the task's own otherwise)"""
    episode_length: PosInt | None = None
    """time limit in task steps (None: the task's own, e.g. 1000 for DM Control)"""
    seed: Seed = 0
    """random seed"""

    num_envs: PosInt = 16
    """parallel environments (global, split over devices)"""
    steps_per_iteration: PosInt = 1
    """environment steps per environment per iteration"""
    total_env_steps: PosInt = 500_000
    """training length in environment steps (action repeats counted)"""
    learning_starts: NonNegInt = 1000
    """transitions (over all envs) collected with uniform random actions before learning"""
    replay_ratio: PosFloat = 1.0
    """gradient updates per collected transition (agent step)"""
    buffer_size: PosInt = 100_000
    """replay capacity in transitions (global; each device keeps num_envs/devices envs' share)"""
    batch_size: PosInt = 512
    """transitions per gradient update (global, split over devices)"""
    n_step: PosInt = 1
    """n-step returns"""
    gamma: Annotated[float, Range(gt=0, le=1)] = 0.99
    """discount"""
    learning_rate: PosFloat = 1e-3
    """Adam learning rate"""

    encoder: Literal["drq", "nature", "drq_small"] = "drq"
    """pixel encoder: DrQ/RAD (4 x 32 conv 3x3), SURREAL's Nature-style (8x8/4, 4x4/2) or drq_small (3 x 32 conv 3x3,
    strides 2, 2, 1: for 24-48 px images)"""
    feature_dim: PosInt = 50
    """encoder output size (Linear -> LayerNorm -> tanh)"""
    hidden_layers: tuple[PosInt, ...] = (1024, 1024)
    """actor and critic MLP hidden sizes"""
    augment: Literal["crop", "conv", "none"] = "crop"
    """pixel augmentation of replayed obs and next obs: crop (DrQ random shift by augment_pad), conv (NetRand random 3x3 conv, one per transition), none"""
    augment_pad: NonNegInt = 4
    """DrQ random shift (augment=crop): replicate-pad this many pixels and crop back (0 disables)"""

    # SURREAL's demonstration curriculum (vasa.envs.curriculum), training environment only
    demo_path: str | None = None
    """demonstrations .npz (vasa.envs.demos, examples/record_demos.py) to start training episodes from"""
    demo_ratio: UnitFloat = 0.5
    """probability that a training episode starts from a demonstration state (needs demo_path)"""
    demo_curriculum: Literal["uniform", "forward", "reverse"] = "uniform"
    """which demonstration states: any (uniform), a growing window at their start (forward) or end (reverse)"""
    demo_schedule: DemoSchedule = SCHEDULE
    """forward/reverse window: (width in steps, growth in steps, every this many demonstration starts of an
    environment); robosuite's (25, 25, 100) grows slowly when thousands of environments share the starts"""
    demo_until_success: bool = True
    """start only from states before each demonstration first succeeds (robosuite's human demonstrations end
    there; fixed-length recordings run on with the task done)"""
    demo_warmup: NonNegInt = 0
    """environment steps (all environments, as total_env_steps counts them) before the first demonstration
    start, then demo_ratio: the task's own starts teach the first stages (robo/stack: grasp, lift) first"""
    demo_anneal: NonNegInt = 0
    """environment steps (counted like demo_warmup) after the warm-up over which demo_ratio falls linearly to 0,
    then every episode starts as the task's own: the demonstrations as a crutch taken away (0: constant)"""
    demo_grow_at: UnitFloat = 0.0
    """grow the forward/reverse window (by demo_schedule's growth, checked every demo_schedule[2] episodes of an
    environment begun at the window's frontier, where half its demonstration starts are drawn) only if at least
    this fraction of those episodes succeeded: the window moves back as the agent masters it (Florensa et al.
    2017's reverse curriculum); 0: the fixed schedule"""
    demo_bc_coef: NonNegFloat = 0.0
    """weight of a behaviour-cloning term on the demonstrations' (observation, action) pairs in the actor's loss:
    demo_bc_coef * demo_bc_decay^k * mean ||actor's deterministic action - demonstrated action||^2 at learning
    iteration k (vasa.algos.demo_bc); needs demo_path and state observations; 0: off"""
    demo_bc_decay: Annotated[float, Range(gt=0, le=1)] = 1.0
    """factor on demo_bc_coef per iteration of learning (updates_per_iteration actor updates): 1 keeps it"""
    demo_bc_batch: PosInt = 256
    """demonstration pairs drawn (uniformly, per device) for each update's behaviour-cloning term"""
    demo_bc_q_filter: bool = False
    """clone a pair only where the critic values the demonstrated action above the actor's (Nair et al. 2018's
    Q-filter): the demonstrations stop pulling where the policy already does better"""
    demo_bc_normalize: bool = False
    """divide the actor's RL term by the batch mean of |Q| at the actor's actions (no gradient through it; the
    mean over all devices' batches), TD3+BC's normalisation (Fujimoto & Gu, NeurIPS 2021): demo_bc_coef then
    weighs the cloning against a unit-scale RL term whatever the reward scale. TD3+BC's alpha = 2.5 (its
    squared error averaged over the action's entries) is demo_bc_coef = 1 / (2.5 * action size)"""

    @property
    def updates_per_iteration(self) -> int:
        return int(round(self.replay_ratio * self.num_envs * self.steps_per_iteration))

    @property
    def transitions_per_iteration(self) -> int:
        return self.num_envs * self.steps_per_iteration

    def resolved_action_repeat(self) -> int:
        if self.action_repeat is not None:
            return int(self.action_repeat)
        if self.pixels:
            from vasa.envs import pixel_action_repeat

            return pixel_action_repeat(self.env)
        return 1

    @property
    def env_steps_per_iteration(self) -> int:
        return self.transitions_per_iteration * self.resolved_action_repeat()

    @property
    def num_iterations(self) -> int:
        return max(1, self.total_env_steps // self.env_steps_per_iteration)

    @property
    def warmup_iterations(self) -> int:
        return -(-self.learning_starts // self.transitions_per_iteration)

    def validate(self, num_devices: int = 1) -> None:
        """Check every option before anything is compiled; messages name the field, the value
        and what is allowed."""
        def need(ok, field, allowed):
            require(self, ok, field, allowed)

        check_fields(self)  # every field: type, finiteness, range, choice (its annotation)
        n = self.updates_per_iteration
        need(n >= 1 and abs(n - self.replay_ratio * self.transitions_per_iteration) < 1e-6, "replay_ratio",
             f"replay_ratio * num_envs * steps_per_iteration = {self.replay_ratio * self.transitions_per_iteration:g} "
             "must be a whole number >= 1 (updates per iteration)")
        need(self.num_envs % num_devices == 0, "num_envs", f"it must be divisible by the {num_devices} devices")
        need(self.batch_size % num_devices == 0, "batch_size", f"it must be divisible by the {num_devices} devices")
        slots = self.buffer_size // self.num_envs
        need(slots >= self.frame_stack + self.n_step + 3, "buffer_size",
             f"each of the {self.num_envs} envs needs at least frame_stack + n_step + 3 = "
             f"{self.frame_stack + self.n_step + 3} slots")
        need(self.batch_size <= self.buffer_size, "batch_size", f"it must not exceed buffer_size={self.buffer_size}")
        need(self.learning_starts <= self.buffer_size, "learning_starts",
             f"it must not exceed buffer_size={self.buffer_size}")
        if self.pixels:
            from vasa.nn.encoders import conv_output_size

            conv_output_size(self.encoder, self.image_size, self.image_size)
        for name in ("train_appearance", "appearance"):  # table-top levels: robo/* only; held-out: evaluation only
            problem = appearance_problem(self.env, getattr(self, name), training=name == "train_appearance")
            need(problem is None, name, problem or "")
        from vasa.envs.curriculum import check_demo_fields

        check_demo_fields(self)  # demo_path exists and loads for env; demo_ratio/demo_curriculum need it
        check_bc_fields(self)  # demo_bc_*: the term needs demo_path and state observations


def make_env(config: OffPolicyConfig, evaluation: bool = False):
    """The training (or evaluation, with ``config.appearance`` and another appearance seed)
    environment of ``config``."""
    kwargs = dict(parse_env_options(config.env_options), episode_length=config.episode_length,
                  action_repeat=config.resolved_action_repeat())
    if config.pixels:
        kwargs.update(pixels=True, image_size=config.image_size, frame_stack=config.frame_stack,
                      appearance=config.appearance if evaluation else config.train_appearance,
                      appearance_seed=config.seed + (1_000 if evaluation else 0))
    kwargs.update(demo_overrides(config, evaluation))  # demonstration starts: training only
    return make(config.env, **kwargs)


def network_input(config: OffPolicyConfig, obs):
    """What the networks see: ``uint8 [..., H, W, C*k]`` pixels, or the state vector."""
    return obs["pixels"] if config.pixels else obs


def augment_transition(config: OffPolicyConfig, key: jax.Array, obs, next_obs):
    """``config.augment`` applied to a replayed batch's network inputs -> ``(obs, next_obs)``.

    Pixels only (state vectors pass through). ``crop``: DrQ's random shift with independent
    offsets for ``obs`` and ``next_obs`` (:func:`vasa.distill.augment.random_shift_pair`;
    ``augment_pad=0`` disables it); ``conv``: NetRand's random 3x3 convolution with Xavier-normal
    weights, one kernel per transition shared by ``obs`` and ``next_obs``
    (:func:`vasa.distill.augment.random_conv_pair`); ``none``: unchanged.
    """
    if not config.pixels or config.augment == "none" or (config.augment == "crop" and config.augment_pad == 0):
        return obs, next_obs
    from vasa.distill.augment import random_conv_pair, random_shift_pair

    if config.augment == "crop":
        return random_shift_pair(key, obs, next_obs, config.augment_pad)
    return random_conv_pair(key, obs, next_obs)


# --------------------------------------------------------------------------- learner contract


class Learner(Protocol):
    """An off-policy algorithm as pure functions (all called inside ``shard_map``)."""

    def init(self, key: jax.Array) -> Any:
        """Parameters, targets and optimiser states (replicated over devices)."""

    def init_explore(self, env_ids: jax.Array) -> Any:
        """Per-environment exploration state, leaves ``[E_local, ...]`` (e.g. OU noise)."""

    def act(self, learner: Any, obs: Any, key: jax.Array, explore: Any, env_ids: jax.Array) -> tuple[jax.Array, Any]:
        """Exploration actions ``[E_local, A]`` within the action bounds, and the next explore state."""

    def reset_explore(self, explore: Any, done: jax.Array, env_ids: jax.Array) -> Any:
        """Explore state after episode ends (``done: [E_local]``)."""

    def update(self, learner: Any, batch: replay.Batch, key: jax.Array, step: jax.Array) -> tuple[Any, dict]:
        """One gradient update from a local batch; averages gradients over ``"data"``.
        ``step``: ``[] int32`` updates done before this one. Returns scalar metrics."""

    def policy(self, learner: Any, obs: Any) -> jax.Array:
        """Deterministic actions ``[..., A]`` for observations ``[..., ...]``."""


@struct.dataclass
class TrainState:
    """Everything an off-policy run needs to continue exactly.

    Attributes:
      learner: the algorithm's parameters, targets and optimiser states (replicated).
      buffer: :class:`~vasa.replay.ReplayBuffer`, sharded over ``"data"`` on its env axis.
      env_state: ``EnvState`` with leading axis ``[num_envs]`` (sharded).
      explore: per-environment exploration state (sharded).
      key: PRNG key ``uint32[2]``.
      iteration: ``[] int32`` completed iterations (warm-up included).
      updates: ``[] int32`` gradient updates done.
    """

    learner: Any
    buffer: replay.ReplayBuffer
    env_state: EnvState
    explore: Any
    key: jax.Array
    iteration: jax.Array
    updates: jax.Array


def state_specs(state: TrainState) -> TrainState:
    """PartitionSpecs: env-indexed leaves split over ``"data"``, the rest replicated."""
    env_axis0 = lambda _: P(DATA_AXIS)
    buffer = jax.tree.map(lambda x: P(None, DATA_AXIS) if x.ndim >= 2 else P(DATA_AXIS), state.buffer)
    return TrainState(learner=jax.tree.map(lambda _: P(), state.learner), buffer=buffer,
                      env_state=jax.tree.map(env_axis0, state.env_state), explore=jax.tree.map(env_axis0, state.explore),
                      key=P(), iteration=P(), updates=P())


def init(config: OffPolicyConfig, learner: Learner, env, mesh=None) -> TrainState:
    """The initial TrainState (validated config; arrays placed on ``mesh``): parameters,
    an empty buffer started with the first observations, reset environments."""
    mesh = mesh or make_mesh()
    config.validate(mesh.size)
    k_params, k_env, k_run = jax.random.split(jax.random.PRNGKey(config.seed), 3)
    action_size = env.action_spec.shape[0]

    def build():
        env_keys = jax.vmap(lambda i: jax.random.fold_in(k_env, i))(jnp.arange(config.num_envs))
        env_state = jax.vmap(env.reset)(env_keys)
        buffer = replay.create(env.observation_spec, action_size, config.buffer_size, config.num_envs,
                               config.frame_stack if config.pixels else 1)
        buffer = replay.start(buffer, env_state.obs)
        return TrainState(learner=learner.init(k_params), buffer=buffer, env_state=env_state,
                          explore=learner.init_explore(jnp.arange(config.num_envs)), key=k_run,
                          iteration=jnp.zeros((), jnp.int32), updates=jnp.zeros((), jnp.int32))

    shapes = jax.eval_shape(build)
    shardings = jax.tree.map(lambda s: NamedSharding(mesh, s), state_specs(shapes))
    return jax.jit(build, out_shardings=shardings)()


# --------------------------------------------------------------------------- iteration


def make_train_step(config: OffPolicyConfig, learner: Learner, env, mesh=None, warmup: bool | None = None,
                    chunk: int | None = None):
    """The jitted iteration ``step(state) -> (state, metrics)`` (input state donated).

    With ``chunk=K`` it is instead ``train_chunk(state, count) -> (state, metrics)``: ``min(count,
    K)`` iterations in one device call, metrics stacked ``[K, ...]`` and NaN past ``count``
    (see :func:`vasa.dist.jit_sharded_step`); a chunk may cross the end of the warm-up.

    By default (``warmup=None``) one program serves the whole run: while
    ``state.iteration < config.warmup_iterations`` it collects with uniform random actions
    and skips the updates (``lax.cond``), afterwards it acts with the learner's exploration
    policy and learns, so the environment step is compiled once. ``warmup=True``/``False``
    build a program that always warms up / always learns (to time collection alone).

    Metrics (``[] float32``): ``episode_return`` (mean undiscounted return of the episodes
    that ended this iteration, NaN if none), ``episodes``, ``buffer_size`` (transitions
    stored), and the learner's update metrics averaged over the iteration's updates (NaN
    while warming up).
    """
    mesh = mesh or make_mesh()
    config.validate(mesh.size)
    D = mesh.size
    local_envs, local_batch = config.num_envs // D, config.batch_size // D
    # XLA:CPU runs convolutions, and their gradients above all, far slower inside a while loop
    # than outside one (two DrQ-encoder gradients on 16 84x84x9 images: 10.9 s in a scan,
    # 0.28 s unrolled; jax 0.10.2). On CPU the pixel update loop is therefore unrolled, at the
    # cost of compile time growing with updates_per_iteration; GPUs keep the loop.
    unroll = True if (config.pixels and jax.default_backend() == "cpu") else 1
    low = jnp.asarray(env.action_spec.low, jnp.float32)
    high = jnp.asarray(env.action_spec.high, jnp.float32)

    def collect(state: TrainState, key, random_actions):
        env_ids = global_row_ids(local_envs)

        def env_step(carry, t):
            env_state, buffer, explore = carry
            k = jax.random.fold_in(key, t)
            keys = jax.vmap(jax.random.fold_in, (None, 0))(k, env_ids)
            uniform = jax.vmap(lambda kk: jax.random.uniform(kk, low.shape, minval=low, maxval=high))(keys)
            if warmup:
                action = uniform
            else:
                action, new_explore = learner.act(state.learner, env_state.obs, k, explore, env_ids)
                if warmup is None:
                    action = jnp.where(random_actions, uniform, action)
                    explore = jax.tree.map(lambda new, old: jnp.where(random_actions, old, new), new_explore, explore)
                else:
                    explore = new_explore
            nxt = batch_step(env, env_state, action)
            buffer = replay.add_env_step(buffer, action, nxt)
            explore = learner.reset_explore(explore, nxt.done, env_ids)
            ended = (nxt.done, nxt.info["final_return"] * nxt.done)
            return (nxt, buffer, explore), ended

        carry = (state.env_state, state.buffer, state.explore)
        (env_state, buffer, explore), (done, returns) = jax.lax.scan(
            env_step, carry, jnp.arange(config.steps_per_iteration))
        return state.replace(env_state=env_state, buffer=buffer, explore=explore), done, returns

    def learn(state: TrainState, key):
        key = jax.random.fold_in(key, jax.lax.axis_index(DATA_AXIS))

        def one_update(carry, i):
            params, step = carry
            k_sample, k_update = jax.random.split(jax.random.fold_in(key, i))
            batch = replay.sample(state.buffer, k_sample, local_batch, config.n_step, config.gamma)
            params, aux = learner.update(params, batch, k_update, step)
            return (params, step + 1), aux

        (params, updates), aux = jax.lax.scan(one_update, (state.learner, state.updates),
                                              jnp.arange(config.updates_per_iteration), unroll=unroll)
        return params, updates, {k: jnp.nanmean(v) for k, v in aux.items()}

    def iteration(state: TrainState):
        key, k_collect, k_learn = jax.random.split(state.key, 3)
        warming = state.iteration < config.warmup_iterations
        state, done, returns = collect(state, k_collect, warming)
        metrics = {}
        if warmup is None:
            shapes = jax.eval_shape(learn, state, k_learn)[2]
            skip = lambda s, k: (s.learner, s.updates, jax.tree.map(lambda x: jnp.full(x.shape, jnp.nan, x.dtype), shapes))
            params, updates, metrics = jax.lax.cond(warming, skip, learn, state, k_learn)
            state = state.replace(learner=params, updates=updates)
        elif not warmup:
            params, updates, metrics = learn(state, k_learn)
            state = state.replace(learner=params, updates=updates)
        episodes, return_sum = psum((done.sum(), returns.sum()), DATA_AXIS)
        stored = psum(state.buffer.size(), DATA_AXIS)
        metrics.update(episodes=episodes, episode_return=jnp.where(episodes > 0, return_sum / jnp.maximum(episodes, 1),
                                                                   jnp.nan),
                       buffer_size=stored.astype(jnp.float32))
        if "demo_width" in state.env_state.info:  # the curriculum's window, growing by success: its mean width
            metrics["demo_window"] = pmean(state.env_state.info["demo_width"].mean(dtype=jnp.float32), DATA_AXIS)
        return state.replace(key=key, iteration=state.iteration + 1), metrics

    abstract = jax.eval_shape(lambda: _abstract_state(config, learner, env))
    specs = state_specs(abstract)
    # check_vma=False: MJX's physics uses lax.cond with device-invariant constants (see ppo.py)
    step = jax.shard_map(iteration, mesh=mesh, in_specs=(specs,), out_specs=(specs, P()), check_vma=False)
    return jit_sharded_step(step, mesh, specs, chunk)


def _abstract_state(config, learner, env) -> TrainState:
    env_state = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), config.num_envs))
    buffer = replay.create(env.observation_spec, env.action_spec.shape[0], config.buffer_size, config.num_envs,
                           config.frame_stack if config.pixels else 1)
    return TrainState(learner=learner.init(jax.random.PRNGKey(0)), buffer=buffer, env_state=env_state,
                      explore=learner.init_explore(jnp.arange(config.num_envs)), key=jax.random.PRNGKey(0),
                      iteration=jnp.zeros((), jnp.int32), updates=jnp.zeros((), jnp.int32))


def make_evaluate(config: OffPolicyConfig, learner: Learner, env, num_envs: int = 16):
    """Jitted deterministic evaluation ``evaluate(learner_state, key) -> [] float32``: the
    mean undiscounted return of ``num_envs`` full episodes on ``env`` (for example the
    evaluation env of :func:`make_env` with a shifted appearance suite)."""

    def evaluate(params, key):
        return episode_returns(env, lambda obs: learner.policy(params, obs), key, num_envs).mean()

    return jax.jit(evaluate)


# --------------------------------------------------------------------------- outer loop


# An off-policy iteration is short (one step of every env by default) and its checkpoint holds
# the replay buffer (2.1 GB for 100K 84x84x3 frames), so evaluations and checkpoints are
# spaced further apart than PPO's, and more iterations go into each device call.
DEFAULT_RUN = RunConfig(eval_every=2000, checkpoint_every=10_000, chunk=50)


def train(config: OffPolicyConfig, make_learner: Callable[[OffPolicyConfig, Any], Learner], name: str,
          run: RunConfig = DEFAULT_RUN, logged: tuple[str, ...] = ()):
    """Warm up, then train with logging, periodic evaluation (under ``config.appearance``),
    checkpoints (the replay buffer included) and a progress bar; ``run.resume`` continues a
    run from its newest intact checkpoint (or ``run.resume_step``) with its saved config and
    run settings (see :mod:`vasa.run.rundir`), as if it had never stopped. Explicit run
    settings are those that differ from :data:`DEFAULT_RUN`.

    Returns ``(policy, state, rows)``: ``policy(obs) -> action`` (deterministic, bound to the
    final parameters), the final TrainState and the logged rows.
    """
    run.validate()
    plan = prepare_run(config, run, name, defaults=DEFAULT_RUN, prefix=f"{name}-")
    config, run = plan.config, plan.run
    mesh = make_mesh(run.num_devices)
    config.validate(mesh.size)
    env, eval_env = make_env(config), make_env(config, evaluation=True)
    learner = make_learner(config, env)

    with plan.open() as session:
        start, state = session.restore(init(config, learner, env, mesh))
        warm = config.warmup_iterations
        total = warm + config.num_iterations
        t0 = time.perf_counter()
        if config.pixels and jax.default_backend() == "cpu":
            # XLA:CPU's convolutions are as slow inside lax.cond as inside loops (see
            # make_train_step), so on CPU pixel runs compile the warm-up and the learning
            # iteration separately instead of one program that switches between them, and
            # make one call per iteration (a chunk would put the iteration in a loop).
            chunk = 1
            programs = {w: make_train_step(config, learner, env, mesh, warmup=w).lower(state).compile()
                        for w in ((True, False) if start < warm else (False,))}

            def step(s, count, done):  # metrics stacked [1, ...], as a chunk's are
                s, metrics = programs[done < warm](s)
                return s, jax.tree.map(lambda x: x[None], metrics)
        else:
            chunk = run.chunk
            compiled = make_train_step(config, learner, env, mesh, chunk=chunk).lower(state, chunk).compile()
            step = lambda s, count, done: compiled(s, count)  # noqa: E731
        session.compile_s = time.perf_counter() - t0
        evaluate = make_evaluate(config, learner, eval_env, run.num_eval_envs)
        session.begin(total, start)
        eval_key = jax.random.PRNGKey(config.seed + 10_000)
        grown = ("demo_window",) if config.demo_grow_at > 0 else ()  # the curriculum's mean window, growing by success
        cloned = DEMO_BC_LOGGED if config.demo_bc_coef > 0 else ()  # the actor's behaviour-cloning term
        names = ("episode_return", "episodes", "buffer_size") + grown + tuple(logged) + cloned
        stop = total if run.max_iterations is None else min(total, start + run.max_iterations)
        # calls end at evaluations (counted from the end of the warm-up), checkpoints and
        # the end of the warm-up itself (so no call mixes cheap and learning iterations)
        events = (run.checkpoint_every, (run.eval_every, warm))
        calls = (chunk_plan(start, min(stop, warm), chunk, events)
                 + chunk_plan(max(start, warm), stop, chunk, events))
        for state, it, values, dt in chunked_iterations(step, state, start, calls):
            if it > warm:  # no updates (NaN losses) while warming up
                session.check_finite(values, it)
            session.wall += dt
            row = {"iteration": it, "env_steps": it * config.env_steps_per_iteration, "wall_time": session.wall,
                   "sps": config.env_steps_per_iteration / dt,
                   "updates_per_s": 0.0 if it <= warm else config.updates_per_iteration / dt,
                   **{k: values.get(k, float("nan")) for k in names}, "eval_return": float("nan")}
            last = it == total
            if it > warm and (last or (run.eval_every and (it - warm) % run.eval_every == 0)):
                row["eval_return"] = float(evaluate(state.learner, jax.random.fold_in(eval_key, it)))
            session.log(row)
            if it == stop or (run.checkpoint_every and it % run.checkpoint_every == 0):
                session.save(it, state)
    params = state.learner
    return (lambda obs: learner.policy(params, obs)), state, session.rows


# with demo_bc_coef > 0: the behaviour-cloning error on the drawn demonstration pairs (after the Q-filter's
# mask, if on) and the fraction of pairs the Q-filter kept (1 without it), averaged over the actor updates
DEMO_BC_LOGGED = ("demo_bc", "demo_bc_kept")


class DemoCloning:
    """The actor's behaviour-cloning term for SAC and DDPG (``demo_bc_*``; :mod:`vasa.algos.demo_bc`):
    the demonstration pairs (state observations, actions clipped to the action bounds) and
    ``term(act, q, key, step) -> (weighted loss [], (error [], kept []))`` for one actor update,
    ``act`` the actor's deterministic ``[B, O] -> [B, A]``, ``q`` the critic's ``(obs, actions) -> [B]``
    (used by the Q-filter only), ``step`` the learner's update count (the weight decays per
    iteration of learning, ``updates_per_iteration`` updates). ``enabled`` is False with
    ``demo_bc_coef = 0``: then nothing is loaded or compiled in."""

    def __init__(self, config: OffPolicyConfig, low, high):
        self.config = config
        self.enabled = config.demo_bc_coef > 0
        if self.enabled:
            self.obs, self.action = load_pairs(config, low, high)

    def scale_rl(self, loss: jax.Array, q: jax.Array) -> jax.Array:
        """The actor's RL term ``loss []`` as the term joins it: with ``demo_bc_normalize`` times
        :func:`q_scale` of ``q [B]`` (the critic's value of the actor's actions), else unchanged."""
        return loss * q_scale(q) if self.config.demo_bc_normalize else loss

    def term(self, act, q, key, step):
        cfg = self.config
        key = jax.random.fold_in(key, 0x5BC)  # its own stream: runs without the term draw as before
        error, kept = bc_term(act, self.obs, self.action, key, cfg.demo_bc_batch,
                              q if cfg.demo_bc_q_filter else None)
        weight = bc_weight(cfg.demo_bc_coef, cfg.demo_bc_decay, step // cfg.updates_per_iteration)
        return weight * error, (error, kept)


def soft_update(target, online, tau: float):
    """EMA ``target <- (1 - tau) * target + tau * online`` over matching pytrees."""
    return jax.tree.map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


class PixelTrunk:
    """The pixel or state front end shared by SAC and DDPG.

    ``critic`` parameters hold ``"encoder"`` (conv) and ``"proj"`` (the critic's projection)
    in pixel mode; the actor's own projection is ``actor["proj"]``. In state mode both
    features are the raw observation and there are no trunk parameters.
    """

    def __init__(self, config: OffPolicyConfig, obs_example):
        from vasa.nn.encoders import ConvEncoder, Projection

        self.pixels = config.pixels
        self.example = obs_example
        if self.pixels:
            self.conv = ConvEncoder(config.encoder)
            self.proj = Projection(config.feature_dim)

    def init(self, key):
        """``(critic_trunk, actor_trunk, feature_example)`` parameters."""
        if not self.pixels:
            return {}, {}, self.example.astype(jnp.float32)
        k1, k2, k3 = jax.random.split(key, 3)
        conv = self.conv.init(k1, self.example)
        h = self.conv.apply(conv, self.example)
        return {"encoder": conv, "proj": self.proj.init(k2, h)}, {"proj": self.proj.init(k3, h)}, self.proj.apply(
            self.proj.init(k2, h), h)

    def on_batch(self, fn, x):
        """``fn(x)`` for a batch ``[B, ...]``; a single observation gets (and loses) a batch axis."""
        single = x.ndim == self.example.ndim - 1
        out = fn(x[None] if single else x)
        return out[0] if single else out

    def conv_out(self, critic, x):
        """Flat conv features ``[B, F]`` (pixels) or the state ``[B, D]`` float32."""
        return self.conv.apply(critic["encoder"], x) if self.pixels else x.astype(jnp.float32)

    def critic_features(self, critic, x=None, h=None):
        h = self.conv_out(critic, x) if h is None else h
        return self.proj.apply(critic["proj"], h) if self.pixels else h

    def actor_features(self, actor, critic, x=None, h=None):
        """The actor's features: its own projection of the *stop-gradient* shared conv output."""
        h = jax.lax.stop_gradient(self.conv_out(critic, x) if h is None else h)
        return self.proj.apply(actor["proj"], h) if self.pixels else h


def example_input(config: OffPolicyConfig, env):
    spec = env.observation_spec
    spec = spec["pixels"] if config.pixels else spec
    return jnp.zeros((1,) + tuple(spec.shape), spec.dtype)


def apply_gradients(tx, grads, opt_state, params):
    """One optax step: ``(new_params, new_opt_state)``."""
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state



__all__ = ["DEFAULT_RUN", "DEMO_BC_LOGGED", "DemoCloning", "Learner", "OffPolicyConfig", "TrainState", "init", "make_env", "make_evaluate", "make_train_step",
           "PixelTrunk", "apply_gradients", "example_input", "network_input", "soft_update", "state_specs", "train"]
