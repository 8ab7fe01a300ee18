"""SURREAL-PPO: proximal policy optimisation with a lagged target (reference) network.

One iteration, :func:`make_train_step`, is a single jitted pure function: roll out
``unroll_length`` steps of ``num_envs`` environments with ``lax.scan``, compute GAE, then
``num_epochs`` x ``num_minibatches`` gradient steps. It is written once against a 1-D device
mesh (``jax.shard_map`` over ``"data"``): environments and minibatches are split across
devices and gradients averaged with ``lax.pmean``. ``num_seeds > 1`` vmaps it over seeds.

What SURREAL adds to PPO (Fan et al., CoRL 2018; dissertation section 2.5.1):

* the **target network**: data is collected by a *reference* policy that the learner
  refreshes only every ``target_update_interval`` iterations (1 = ordinary PPO); the
  likelihood ratio and the KL penalty are measured against it, so it is a fixed centre of
  the trust region;
* the **adaptive-KL surrogate** ``-ratio * A + beta * KL(ref || pi)
  + hinge_coef * max(0, KL - 2 kl_target)^2``, with ``beta`` multiplied by
  ``beta_factor`` when the measured KL exceeds ``2 kl_target``, divided when it is below
  ``kl_target / 2``, and kept inside ``[beta_min, beta_max]``; the clipped-ratio surrogate is
  the alternative (``surrogate="clip"``);
* the **z-filter**: running mean/variance observation normalisation kept in the TrainState.

With ``core="lstm"`` (or ``"gru"``) the policy and the value function are recurrent
(:class:`~vasa.algos.ppo_networks.RecurrentNetwork`): the cores' states live in the
TrainState (``core``, one row per environment, sharded like the environments), are zeroed
exactly where episodes start inside the rollout's ``scan``, and minibatches are whole
environment sequences replayed from their stored initial states
(:mod:`vasa.algos.ppo_recurrent`).
"""

from __future__ import annotations

import functools
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import NamedSharding, PartitionSpec as P

from vasa.algos.demo_bc import bc_term, bc_weight, load_pairs
from vasa.algos.returns import advantage_stats, gae_advantages
from vasa.dist.mesh import DATA_AXIS, jit_sharded_step, make_mesh, pmean, psum
from vasa.envs import EnvState, make, parse_env_options
from vasa.envs.curriculum import demo_overrides
from vasa.envs.rollout import episode_returns
from vasa.algos.ppo_config import PPOConfig, minibatch_group_size
from vasa.algos.ppo_networks import Networks
from vasa.algos.ppo_recurrent import recurrent_values, sequence_minibatches
from vasa.algos.ppo_rollout import Transition, make_rollout, successor_values
from vasa.nn import RunningStats
from vasa.nn.schedules import decay_schedule
from vasa.run import RunConfig, chunk_plan, chunked_iterations, prepare_run


def adapt_beta(beta: jax.Array, kl: jax.Array, config: PPOConfig) -> jax.Array:
    """SURREAL/PPO adaptive KL coefficient: ``beta * beta_factor`` when ``kl > 2 kl_target``,
    ``beta / beta_factor`` when ``kl < kl_target / 2``, else unchanged; then clipped to
    ``[beta_min, beta_max]``. ``beta``, ``kl``: ``[] float32`` (or broadcastable arrays)."""
    beta = jnp.where(kl > 2 * config.kl_target, beta * config.beta_factor,
                     jnp.where(kl < config.kl_target / 2, beta / config.beta_factor, beta))
    return jnp.clip(beta, config.beta_min, config.beta_max)


def make_env(config: PPOConfig, evaluation: bool = False, **overrides):
    """The training environment of ``config`` (auto-resetting, with time limit and repeat);
    with ``pixels``, rendered under ``train_appearance`` (``evaluation``: under
    ``appearance``, with other appearance draws)."""
    if config.pixels:
        overrides = dict(pixels=True, image_size=config.image_size, frame_stack=config.frame_stack,
                         appearance=config.appearance if evaluation else config.train_appearance,
                         appearance_seed=config.seed + (1_000 if evaluation else 0), **overrides)
    overrides = {**demo_overrides(config, evaluation), **overrides}  # demonstration starts: training only
    return make(config.env, episode_length=config.episode_length, action_repeat=config.action_repeat,
                reset_mode=config.reset_mode, **{**parse_env_options(config.env_options), **overrides})


# --------------------------------------------------------------------------- state


@struct.dataclass
class TrainState:
    """Everything a PPO run needs to continue exactly (one seed; vmapped runs add a leading
    seed axis to every leaf).

    Attributes:
      params: ``{"policy": ..., "value": ...}`` flax parameters being learned.
      ref_policy: the reference (target) policy parameters that collect data.
      opt_state: optax state.
      normalizer: observation running statistics.
      beta: ``[] float32`` adaptive KL coefficient.
      key: PRNG key ``uint32[2]``.
      iteration: ``[] int32`` completed iterations.
      env_state: ``EnvState`` with leading axis ``[num_envs]`` (sharded over ``"data"``).
      core: with a recurrent ``core``, ``{"policy": carry, "value": carry, "start": bool
        [num_envs]}``: the cores' states after the last step taken (reset by ``start``, set
        where that step ended an episode, before the next step reads them); sharded like
        ``env_state``. ``None`` for feed-forward networks.
    """

    params: Any
    ref_policy: Any
    opt_state: Any
    normalizer: RunningStats
    beta: jax.Array
    key: jax.Array
    iteration: jax.Array
    env_state: EnvState
    core: Any = None


def _optimizer(config: PPOConfig) -> tuple[optax.GradientTransformation, optax.Schedule]:
    steps = config.num_iterations * config.num_epochs * config.num_minibatches
    schedule = decay_schedule(config.lr_schedule, config.learning_rate, steps)
    chain = [optax.clip_by_global_norm(config.max_grad_norm)] if config.max_grad_norm > 0 else []
    return optax.chain(*chain, optax.adam(schedule, eps=1e-5)), schedule


def _seed_keys(config: PPOConfig) -> jax.Array:
    return jnp.stack([jax.random.PRNGKey(config.seed + i) for i in range(config.num_seeds)])


def init(config: PPOConfig, env=None, mesh=None) -> TrainState:
    """Build the initial TrainState (validated config; arrays placed on ``mesh``).

    With ``num_seeds > 1`` every leaf gets a leading ``[num_seeds]`` axis (seeds
    ``seed, seed + 1, ...``). Environment ``i`` is reset with a key folded from its global
    index, so the state does not depend on the number of devices.
    """
    mesh = mesh or make_mesh()
    config.validate(mesh.size)
    env = env or make_env(config)
    nets = Networks(config, env.observation_spec, env.action_spec)
    obs_size = nets.obs_size
    tx, _ = _optimizer(config)

    def init_one(seed_key):
        k_params, k_env, k_run = jax.random.split(seed_key, 3)
        params = nets.init(k_params)
        env_keys = jax.vmap(lambda i: jax.random.fold_in(k_env, i))(jnp.arange(config.num_envs))
        return TrainState(
            params=params, ref_policy=params["policy"], opt_state=tx.init(params),
            normalizer=RunningStats.create(obs_size), beta=jnp.asarray(config.beta_init, jnp.float32),
            key=k_run, iteration=jnp.zeros((), jnp.int32), env_state=jax.vmap(env.reset)(env_keys),
            core=initial_core(nets, config.num_envs))

    seeded = config.num_seeds > 1
    fn = jax.vmap(init_one) if seeded else init_one
    keys = _seed_keys(config) if seeded else jax.random.PRNGKey(config.seed)
    shapes = jax.eval_shape(fn, keys)
    shardings = jax.tree.map(lambda s: NamedSharding(mesh, s), state_specs(shapes, seeded))
    return jax.jit(fn, out_shardings=shardings)(keys)


def initial_core(nets: Networks, num_envs: int):
    """A recurrent TrainState's ``core`` before the first step (zero states, every
    environment starting an episode); ``None`` for feed-forward networks."""
    if not nets.recurrent:
        return None
    return {**nets.zero_carry(num_envs), "start": jnp.ones((num_envs,), bool)}


def state_specs(state: TrainState, seeded: bool) -> TrainState:
    """PartitionSpecs of a TrainState: env leaves (and recurrent states) split over
    ``"data"`` on their env axis, everything else replicated. ``seeded`` skips a leading
    seed axis."""
    env_spec = P(None, DATA_AXIS) if seeded else P(DATA_AXIS)
    specs = jax.tree.map(lambda _: P(), state)
    return specs.replace(env_state=jax.tree.map(lambda _: env_spec, state.env_state),
                         core=jax.tree.map(lambda _: env_spec, state.core))


# --------------------------------------------------------------------------- iteration


def make_train_step(config: PPOConfig, env=None, mesh=None, chunk: int | None = None) -> Callable:
    """The jitted iteration ``train_step(state) -> (state, metrics)``.

    With ``chunk=K`` it is instead ``train_chunk(state, count) -> (state, metrics)``, which
    runs ``min(count, K)`` iterations in one device call (a ``lax.fori_loop``; one compilation
    serves every count) and returns metrics stacked ``[K, ...]``, NaN past ``count``.
    Chunking saves the per-call dispatch and the host round trip of each iteration
    (:func:`train` uses ``RunConfig.chunk``); results are the same as calling the single
    iteration ``count`` times, up to floating-point rounding.

    The input state is donated. ``metrics`` maps names to ``[] float32`` (or
    ``[num_seeds]`` when vmapped over seeds): ``episode_return`` and ``episode_return_std``
    (mean and std of the undiscounted returns of episodes that ended this iteration; NaN if
    none did), ``episodes``, ``loss``,
    ``policy_loss``, ``value_loss``, ``entropy``, ``kl`` (mean KL(ref || pi) over the last
    epoch), ``beta`` (after adaptation), ``clip_fraction``, ``grad_norm``,
    ``learning_rate``, ``updates_skipped`` (fraction stopped by ``kl_early_stop``).
    """
    mesh = mesh or make_mesh()
    iteration, specs = make_iteration(config, env, mesh)
    # check_vma=False: MJX's physics uses lax.cond with device-invariant constants in one
    # branch, which the varying-manual-axes checker rejects; our collectives are explicit.
    step = jax.shard_map(iteration, mesh=mesh, in_specs=(specs,), out_specs=(specs, P()), check_vma=False)
    seeded = config.num_seeds > 1
    if seeded:
        step = jax.vmap(step)
        specs = specs.replace(env_state=jax.tree.map(lambda _: P(None, DATA_AXIS), specs.env_state),
                              core=jax.tree.map(lambda _: P(None, DATA_AXIS), specs.core))
    return jit_sharded_step(step, mesh, specs, chunk)


def make_iteration(config: PPOConfig, env=None, mesh=None) -> tuple[Callable, TrainState]:
    """One PPO iteration of a single-seed state as a ``jax.shard_map`` body over ``"data"``
    (its collectives on that axis): ``(iteration(state) -> (state, metrics), specs)`` with the
    state's PartitionSpecs. :func:`make_train_step` wraps it; SECANT-Parallel
    (:func:`vasa.distill.experts.ppo_learner`) runs it inside the distillation's own body.
    Metrics as :func:`make_train_step`'s."""
    mesh = mesh or make_mesh()
    config.validate(mesh.size)
    env = env or make_env(config)
    nets = Networks(config, env.observation_spec, env.action_spec)
    tx, schedule = _optimizer(config)
    dist = nets.dist
    T, M = config.unroll_length, config.num_minibatches
    local_envs = config.num_envs // mesh.size
    group = minibatch_group_size(T, M)
    local_groups = local_envs // group
    per_group = group * T // M  # samples each group puts in each minibatch

    normalize = nets.inputs
    recurrent = nets.recurrent
    bc = config.demo_bc_coef > 0  # DAPG's behaviour-cloning term on the demonstrations (vasa.algos.demo_bc)
    if bc:
        bc_obs, bc_action = load_pairs(config, dist.low, dist.high)

    def _shift(key, pixels):
        from vasa.distill.augment import random_shift

        lead, image = pixels.shape[:-3], pixels.shape[-3:]
        return random_shift(key, pixels.reshape((-1,) + image), config.augment_pad).reshape(lead + image)

    def one_step(x):
        return jax.tree.map(lambda a: a[None], x)

    rollout = make_rollout(config, env, nets, local_envs)

    def policy_out(params, mb, inputs):
        """``(mean, log_std)`` of the policy ``params`` on a minibatch (whole sequences,
        replayed from their initial states, when recurrent)."""
        if recurrent:
            return nets.policy_seq(params, mb["carry"]["policy"], inputs, mb["start"])[1]
        return nets.policy.apply(params, inputs)

    def value_out(params, mb, inputs):
        if recurrent:
            return nets.value_seq(params, mb["carry"]["value"], inputs, mb["start"])[1]
        return nets.value_fn(params, inputs)

    # Collectives: one all-reduce per minibatch (gradients, loss terms and the KL together)
    # plus two per epoch (advantage statistics). On a multi-device mesh each collective is a
    # rendezvous, so their number, not their size, is what costs; see BENCHMARKS.md.
    hinge = config.surrogate == "kl" and config.kl_hinge_coef > 0
    smooth = config.smooth_temporal > 0 or config.smooth_spatial > 0

    def loss_fn(params, mb, normalizer, beta, bc_scale):
        """The local minibatch loss (without the KL hinge, whose weight needs the global KL);
        ``bc_scale``: the behaviour-cloning term's weight this iteration (unused without it)."""
        obs = normalize(normalizer, mb["obs"])
        if config.pixels and config.augment == "crop":  # DrQ's random shift of the update batch
            obs = {**obs, "pixels": _shift(mb["aug_key"], obs["pixels"])}
        mean, log_std = policy_out(params["policy"], mb, obs)
        log_prob = dist.log_prob(mb["raw_action"], mean, log_std)
        ratio = jnp.exp(log_prob - mb["log_prob"])
        adv = mb["advantage"]
        if config.normalize_advantages:  # statistics of the whole (all-device) minibatch
            adv = (adv - mb["adv_mean"]) / (mb["adv_std"] + 1e-8)
        kl = dist.kl(mb["mean"], mb["log_std"], mean, log_std).mean()
        if config.surrogate == "clip":
            clipped = jnp.clip(ratio, 1 - config.clip_epsilon, 1 + config.clip_epsilon)
            policy_loss = -jnp.minimum(ratio * adv, clipped * adv).mean()
        else:
            policy_loss = -(ratio * adv).mean() + beta * kl
        value = value_out(params["value"], mb, obs)
        err = (value - mb["return"]) ** 2
        if config.clip_value:
            clipped_v = mb["value"] + jnp.clip(value - mb["value"], -config.clip_epsilon, config.clip_epsilon)
            err = jnp.maximum(err, (clipped_v - mb["return"]) ** 2)
        value_loss = 0.5 * err.mean()
        # the behaviour sample's standard-normal noise, re-used for a reparameterised sample
        noise = (mb["raw_action"] - mb["mean"]) * jnp.exp(-mb["log_std"])
        entropy = dist.entropy(mean, log_std, noise).mean()
        loss = policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy
        clip_frac = (jnp.abs(ratio - 1) > config.clip_epsilon).mean()
        aux = dict(policy_loss=policy_loss, value_loss=value_loss, entropy=entropy,
                   kl=jax.lax.stop_gradient(kl), clip_fraction=clip_frac)
        if smooth:
            act = lambda x: dist.to_action(nets.policy.apply(params["policy"], x)[0])  # noqa: E731
            nxt = normalize(normalizer, mb["next_obs"]) if config.smooth_temporal > 0 else None
            temporal, spatial = caps_terms(act, obs, nxt, mb.get("smooth_key"), config.smooth_sigma)
            loss = loss + config.smooth_temporal * temporal + config.smooth_spatial * spatial
            aux.update(smooth_temporal=temporal, smooth_spatial=spatial)
        if bc:
            act = lambda x: dist.to_action(nets.policy.apply(params["policy"], normalize(normalizer, x))[0])  # noqa: E731
            error = bc_term(act, bc_obs, bc_action, mb["bc_key"], config.demo_bc_batch)[0]
            loss = loss + bc_scale * error
            aux["demo_bc"] = error
        return loss, aux

    def kl_fn(policy_params, mb, normalizer):
        mean, log_std = policy_out(policy_params, mb, normalize(normalizer, mb["obs"]))
        return dist.kl(mb["mean"], mb["log_std"], mean, log_std).mean()

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def sgd_step(state: TrainState, carry, mb):
        params, opt_state, stopped = carry
        bc_scale = bc_weight(config.demo_bc_coef, config.demo_bc_decay, state.iteration) if bc else None
        (loss, aux), grads = grad_fn(params, mb, state.normalizer, state.beta, bc_scale)
        local = dict(grads=grads, aux={**aux, "loss": loss})
        if hinge:
            local["kl_grad"] = jax.grad(kl_fn)(params["policy"], mb, state.normalizer)
        mean = pmean(local, DATA_AXIS)  # the minibatch's one collective
        grads, aux = mean["grads"], mean["aux"]
        if hinge:
            # KL(ref || pi) over the whole minibatch, before this update, sets the hinge's
            # weight: d/dKL of kl_hinge_coef * max(0, KL - 2 target)^2. The hinge is linear
            # in the local KLs' gradients, so adding it after the all-reduce is exact.
            hinge_weight = 2 * config.kl_hinge_coef * jnp.maximum(0.0, aux["kl"] - 2 * config.kl_target)
            grads = {**grads, "policy": jax.tree.map(lambda g, k: g + hinge_weight * k,
                                                     grads["policy"], mean["kl_grad"])}
            aux["loss"] = aux["loss"] + hinge_weight * aux["kl"]
        if config.kl_early_stop > 0:  # aux["kl"]: KL of the params before this update
            stopped = stopped | (aux["kl"] > config.kl_early_stop * config.kl_target)
        updates, new_opt = tx.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        params, opt_state = jax.tree.map(lambda new, old: jnp.where(stopped, old, new),
                                         (new_params, new_opt), (params, opt_state))
        aux["grad_norm"] = optax.tree.norm(grads)
        aux["skipped"] = stopped.astype(jnp.float32)
        return (params, opt_state, stopped), aux

    def with_advantage_stats(mbs):
        """``mbs`` with each (all-device) minibatch's advantage statistics (per start type with
        ``demo_separate_advantages``, which consumes ``mbs["demo"]``)."""
        mbs = dict(mbs)
        mu, std = advantage_stats(mbs["advantage"], mbs.pop("demo", None), lambda x: pmean(x, DATA_AXIS))
        return {**mbs, "adv_mean": mu, "adv_std": std}

    def shuffle(data, key):
        """``[T, local_envs, ...]`` -> ``[M, local_groups * per_group, ...]`` minibatches."""
        group_ids = jax.lax.axis_index(DATA_AXIS) * local_groups + jnp.arange(local_groups)
        perms = jax.vmap(lambda g: jax.random.permutation(jax.random.fold_in(key, g), group * T))(group_ids)

        def arrange(x):
            x = x.reshape((T, local_groups, group) + x.shape[2:])
            x = jnp.moveaxis(x, 0, 2).reshape((local_groups, group * T) + x.shape[3:])
            x = jax.vmap(lambda row, perm: row[perm])(x, perms)
            x = x.reshape((local_groups, M, per_group) + x.shape[2:])
            return jnp.swapaxes(x, 0, 1).reshape((M, local_groups * per_group) + x.shape[3:])

        return jax.tree.map(arrange, data)

    def iteration(state: TrainState):
        key, k_roll, k_learn = jax.random.split(state.key, 3)
        env_state, policy_carry, starts, tr = rollout(state, k_roll)
        normalizer = state.normalizer
        if config.normalize_observations and config.normalizer_first:
            normalizer = normalizer.update(nets.stats_input(tr.obs), axis_name=DATA_AXIS)
            state = state.replace(normalizer=normalizer)
        core = None
        if recurrent:
            def value_step(c, obs, s):
                c, v = nets.value_seq(state.params["value"], c, one_step(normalize(state.normalizer, obs)), s[None])
                return c, v[0]

            values, next_values, value_carry = recurrent_values(
                value_step, state.core["value"], tr.obs, tr.next_obs, tr.start, tr.done, tr.termination)
            core = {"policy": policy_carry, "value": value_carry, "start": starts}
        else:
            values, next_values = successor_values(
                lambda obs: nets.value_fn(state.params["value"], normalize(state.normalizer, obs)), tr)
        advantages, returns = gae_advantages(tr.reward, values, next_values, tr.termination, tr.done,
                                             config.gamma, config.gae_lambda)
        data = dict(obs=tr.obs, raw_action=tr.raw_action, log_prob=tr.log_prob, mean=tr.mean,
                    log_std=tr.log_std, advantage=advantages, value=values, **{"return": returns})
        if recurrent:
            data["start"] = tr.start
        if config.demo_separate_advantages:
            data["demo"] = tr.demo
        if config.smooth_temporal > 0:
            data["next_obs"] = tr.next_obs

        def epoch(carry, k):
            if recurrent:  # whole sequences, each with its cores' states at the unroll's start
                first_group = jax.lax.axis_index(DATA_AXIS) * (local_envs // M)
                mbs, carries = sequence_minibatches(data, {"policy": state.core["policy"],
                                                           "value": state.core["value"]}, k, M, first_group)
                mbs["carry"] = carries
            else:
                mbs = shuffle(data, k)
            if config.normalize_advantages:
                mbs = with_advantage_stats(mbs)
            if config.smooth_spatial > 0:
                mbs["smooth_key"] = jax.random.split(jax.random.fold_in(k, jax.lax.axis_index(DATA_AXIS) + 7919), M)
            if bc:
                mbs["bc_key"] = jax.random.split(jax.random.fold_in(k, jax.lax.axis_index(DATA_AXIS) + 104_729), M)
            if config.pixels and config.augment == "crop":
                mbs["aug_key"] = jax.random.split(jax.random.fold_in(k, jax.lax.axis_index(DATA_AXIS) + 1), M)
            return jax.lax.scan(functools.partial(sgd_step, state), carry, mbs)

        carry = (state.params, state.opt_state, jnp.zeros((), bool))
        (params, opt_state, _), aux = jax.lax.scan(epoch, carry, jax.random.split(k_learn, config.num_epochs))

        kl = aux["kl"][-1].mean()
        beta = adapt_beta(state.beta, kl, config) if config.surrogate == "kl" else state.beta
        it = state.iteration + 1
        ref_policy = jax.tree.map(lambda new, old: jnp.where(it % config.target_update_interval == 0, new, old),
                                  params["policy"], state.ref_policy)
        if config.normalize_observations and not config.normalizer_first:
            normalizer = normalizer.update(nets.stats_input(tr.obs), axis_name=DATA_AXIS)

        episodes = psum(tr.done.sum(), DATA_AXIS)
        return_sum, return_sq = psum(
            ((tr.final_return * tr.done).sum(), (tr.final_return**2 * tr.done).sum()), DATA_AXIS)
        count = jnp.maximum(episodes, 1.0)
        return_mean = jnp.where(episodes > 0, return_sum / count, jnp.nan)
        grad_steps = state.iteration * config.num_epochs * M
        metrics = {k: v.mean() for k, v in aux.items() if k not in ("kl", "skipped")}
        metrics.update(
            kl=kl, beta=beta, episodes=episodes, updates_skipped=aux["skipped"].mean(),
            episode_return=return_mean,
            episode_return_std=jnp.sqrt(jnp.maximum(return_sq / count - return_mean**2, 0.0)),
            learning_rate=jnp.asarray(schedule(grad_steps), jnp.float32))
        if "demo_width" in env_state.info:  # the curriculum's window, growing by success: its mean over environments
            metrics["demo_window"] = pmean(env_state.info["demo_width"].mean(dtype=jnp.float32), DATA_AXIS)
        new_state = TrainState(params=params, ref_policy=ref_policy, opt_state=opt_state, normalizer=normalizer,
                               beta=beta, key=key, iteration=it, env_state=env_state, core=core)
        return new_state, metrics

    abstract = jax.eval_shape(lambda: init_abstract(config, env, nets))
    return iteration, state_specs(abstract, seeded=False)


def caps_terms(act: Callable, obs: jax.Array, next_obs: jax.Array | None, key: jax.Array | None,
               sigma: float) -> tuple[jax.Array, jax.Array]:
    """CAPS's smoothness terms (Mysore et al., "Regularizing action policies for smooth control", 2021).

    ``act``: network input ``[B, D]`` -> deterministic action ``[B, A]``; ``obs``, ``next_obs``: ``[B, D]``
    float32 inputs at ``t`` and ``t + 1`` (``None``: no temporal term); ``key``: for the spatial term's
    perturbation ``obs + sigma * N(0, I)`` (``None``: no spatial term). Returns ``(temporal, spatial)``,
    scalar float32 means over the batch of the L2 distances ``||act(obs) - act(next_obs)||`` and
    ``||act(obs) - act(obs + sigma * noise)||`` (0.0 for a term not asked for)."""
    here = act(obs) if (next_obs is not None or key is not None) else None

    def dist(other):  # L2 distance with a gradient defined where the two actions coincide
        return jnp.sqrt(jnp.sum((here - other) ** 2, axis=-1) + 1e-12).mean()

    temporal = dist(act(next_obs)) if next_obs is not None else jnp.zeros((), jnp.float32)
    if key is not None:
        spatial = dist(act(obs + sigma * jax.random.normal(key, obs.shape, obs.dtype)))
    else:
        spatial = jnp.zeros((), jnp.float32)
    return temporal, spatial


def init_abstract(config: PPOConfig, env, nets: Networks) -> TrainState:
    """A single-seed TrainState of the right structure (used under ``jax.eval_shape``)."""
    params = nets.init(jax.random.PRNGKey(0))
    tx, _ = _optimizer(config)
    env_state = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), config.num_envs))
    return TrainState(params=params, ref_policy=params["policy"], opt_state=tx.init(params),
                      normalizer=RunningStats.create(nets.obs_size), beta=jnp.zeros(()),
                      key=jax.random.PRNGKey(0), iteration=jnp.zeros((), jnp.int32), env_state=env_state,
                      core=initial_core(nets, config.num_envs))


# --------------------------------------------------------------------------- inference


def make_policy(config: PPOConfig, env=None, deterministic: bool = True):
    """Inference factory: ``policy(state_or_params, obs, key=None) -> action``.

    ``state_or_params`` is a single-seed :class:`TrainState` or a dict with ``"policy"`` and
    ``"normalizer"``. ``obs``: ``[..., obs_size] float32`` (with ``pixels``, the pixel
    environment's dict); returns actions ``[..., A]`` within the env's bounds (the Gaussian
    mean, squashed, when ``deterministic``).

    With a recurrent ``core`` the policy carries its memory:
    ``policy(state_or_params, obs, carry, key=None, start=None) -> (action, carry)`` for a
    batch ``obs [B, ...]``; ``carry`` starts as ``policy.zero_carry(B)`` and ``start [B]
    bool`` (optional) marks the rows whose episode begins at ``obs``, zeroing their memory.
    """
    env = env or make_env(config)
    nets = Networks(config, env.observation_spec, env.action_spec)

    def unpack(state_or_params):
        if isinstance(state_or_params, TrainState):
            return state_or_params.params["policy"], state_or_params.normalizer
        return state_or_params["policy"], state_or_params["normalizer"]

    def act(key, mean, log_std):
        return nets.dist.to_action(mean if deterministic else nets.dist.sample(key, mean, log_std))

    def policy(state_or_params, obs, key=None):
        params, normalizer = unpack(state_or_params)
        return act(key, *nets.policy.apply(params, nets.inputs(normalizer, obs)))

    def recurrent_policy(state_or_params, obs, carry, key=None, start=None):
        params, normalizer = unpack(state_or_params)
        inputs = jax.tree.map(lambda x: x[None], nets.inputs(normalizer, obs))
        start = jnp.zeros(jax.tree.leaves(carry)[0].shape[:1], bool) if start is None else start
        carry, (mean, log_std) = nets.policy_seq(params, carry, inputs, start[None])
        return act(key, mean[0], log_std[0]), carry

    if nets.recurrent:
        recurrent_policy.zero_carry = nets.policy.zero_carry
        return recurrent_policy
    return policy


def make_evaluate(config: PPOConfig, num_envs: int = 16, env=None):
    """Jitted deterministic evaluation ``evaluate(state, key) -> mean_return``.

    Runs ``num_envs`` fresh episodes with the deterministic policy for one full episode
    (``episode_length / action_repeat`` steps) and returns the mean undiscounted return of
    each episode's first ending: ``[] float32``, or ``[num_seeds]`` for seeded states.
    Default ``env``: the evaluation environment (with ``pixels``, under ``appearance``).
    """
    env = env or make_env(config, evaluation=True)
    policy = make_policy(config, env)

    def evaluate_one(state: TrainState, key):
        if config.core != "none":  # memory from zero; only each environment's first episode counts
            return episode_returns(env, lambda obs, carry: policy(state, obs, carry), key, num_envs,
                                   carry=policy.zero_carry(num_envs)).mean()
        return episode_returns(env, lambda obs: policy(state, obs), key, num_envs).mean()

    evaluate = jax.vmap(evaluate_one, (0, None)) if config.num_seeds > 1 else evaluate_one
    return jax.jit(evaluate)


# --------------------------------------------------------------------------- outer loop

LOGGED = ("episode_return", "episode_return_std", "episodes", "loss", "policy_loss", "value_loss", "entropy",
          "kl", "beta", "clip_fraction", "grad_norm", "learning_rate", "updates_skipped")
SMOOTH_LOGGED = ("smooth_temporal", "smooth_spatial")  # with PPOConfig.smooth_temporal / smooth_spatial > 0
# with PPOConfig.demo_grow_at > 0: the curriculum window's mean width (steps); with demo_bc_coef > 0: the
# behaviour-cloning term's squared error (unweighted)
DEMO_LOGGED = ("demo_window", "demo_bc")


def train(config: PPOConfig, run: RunConfig = RunConfig()) -> tuple[Callable, TrainState, list[dict]]:
    """Train with logging, periodic evaluation, checkpoints and a progress bar.

    With ``run.resume`` the run continues from its newest intact checkpoint (or
    ``run.resume_step``) with its saved PPOConfig and run settings (``config`` is then
    ignored, and notes list what differed; see :mod:`vasa.run.rundir`), bit-for-bit as if it
    had never stopped (on CPU). A non-finite loss raises :class:`TrainingDiverged` naming the
    iteration and the last good checkpoint, which is kept.

    Returns ``(policy, state, rows)``: the deterministic inference function of
    :func:`make_policy`, the final TrainState and the logged metrics rows.
    """
    run.validate()
    plan = prepare_run(config, run, "ppo", defaults=RunConfig())
    config, run = plan.config, plan.run
    mesh = make_mesh(run.num_devices)
    config.validate(mesh.size)
    env = make_env(config)

    with plan.open() as session:
        start, state = session.restore(init(config, env, mesh))
        step = make_train_step(config, env, mesh, chunk=run.chunk)
        evaluate = make_evaluate(config, run.num_eval_envs, make_env(config, evaluation=True) if config.pixels or config.demo_path else env)
        total = config.num_iterations
        t0 = time.perf_counter()
        compiled = step.lower(state, run.chunk).compile()
        session.compile_s = time.perf_counter() - t0
        session.begin(total, start)
        eval_key = jax.random.PRNGKey(config.seed + 10_000)
        stop = total if run.max_iterations is None else min(total, start + run.max_iterations)
        # each call ends at an evaluation or checkpoint iteration (and at ``stop``)
        calls = chunk_plan(start, stop, run.chunk, (run.eval_every, run.checkpoint_every))
        for state, it, values, dt in chunked_iterations(lambda s, n, _: compiled(s, n), state, start, calls):
            session.check_finite(values, it)
            session.wall += dt
            row = {"iteration": it, "env_steps": steps_done(config, it), "wall_time": session.wall,
                   "sps": config.env_steps_per_iteration * config.num_seeds / dt,
                   **{k: values[k] for k in LOGGED + SMOOTH_LOGGED + DEMO_LOGGED if k in values}, "eval_return": float("nan")}
            if it == total or (run.eval_every and it % run.eval_every == 0):
                row["eval_return"] = float(np.mean(evaluate(state, jax.random.fold_in(eval_key, it))))
            session.log(row)
            if it == stop or (run.checkpoint_every and it % run.checkpoint_every == 0):
                session.save(it, state)
    return make_policy(config, env), state, session.rows


def steps_done(config: PPOConfig, iteration: int) -> int:
    """Environment steps (action repeats counted) after ``iteration`` iterations."""
    return int(iteration) * config.env_steps_per_iteration


__all__ = ["PPOConfig", "TrainState", "adapt_beta", "caps_terms", "Transition", "init", "initial_core", "make_iteration", "make_rollout", "make_train_step", "make_policy", "make_evaluate",
           "make_env", "minibatch_group_size", "steps_done", "state_specs", "successor_values", "train"]
