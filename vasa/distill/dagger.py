"""Expert -> student distillation on the device: DAgger (SECANT's second stage) and SafeDAgger.

SECANT (Fan et al., ICML 2021; dissertation algorithm 1, section 5.4.2) distils a trained
expert into a pixel student that sees strongly augmented observations:

1. roll out the expert to seed a dataset ``D``: ``expert_steps`` steps of every environment,
   each observation stored with the expert's action on it (its label);
2. per iteration, alternate **one** step of every environment under the student's
   deterministic action, its observations labelled by the expert and added to ``D``, with
   **one** gradient step of the student on a batch ``o ~ D``,
   ``L = mean_b ||pi_s(f(o_b)) - pi_e(o_b)||_2`` with ``f`` a strong augmentation
   (:func:`vasa.distill.augment.strong_augment`, one operator per observation) and the label
   ``pi_e(o)`` of the *unaugmented* observation. (Algorithm 1 writes the gradient step first;
   the environment step comes first here because then XLA updates the dataset in place
   instead of copying it, see ``iteration``. The sequences differ only at their ends: the
   first student step acts before any update, the last update sees the last step's data.)

The thesis writes the loss as the Frobenius norm; here it is the batch mean of each sample's
L2 distance (``loss="l2"``, the per-sample analogue: every sample weighs the same whatever the
batch size), or of its square (``loss="squared"``, plain regression).

``priority_exponent=alpha > 0`` draws the batch by priority instead of uniformly (proportional
prioritised replay, :mod:`vasa.distill.dataset`): each entry's priority is the student's latest
loss on it, so states the student gets wrong are revisited more often. Not in SECANT; added
because on reacher the dataset fills with states parked on the target (label ~0, 80% of the
expert's own steps), and Combo1 students learned to stop a few pixels short of the target,
where the expert would still push with |a| ~0.5 (session 24). No importance weights: the point
is to fit those states, not an unbiased mean over the dataset.

``rollout_noise=sigma > 0`` adds ``N(0, (sigma * half-range)^2)`` to every executed action,
clipped to the bounds, a fresh draw per environment, dimension and step (DART, Laskey et al.,
CoRL 2017): the dataset then also holds the states a slightly wrong policy drifts into and how
the expert recovers from them, each labelled by the expert's clean action on its unaugmented
observation. Not in SECANT. Tried because a walker student whose actions err under a visual
shift falls from states its noiseless rollouts never visit; it did not help there (walker_stand,
seed 0, Combo1 with RAD's conv, 3,000 steps; color_hard over 64 episodes: 375 without noise, 416
at 0.05, 386 at 0.2, the walker falling in 69 / 64 / 67% of them; train 903 / 918 / 871 over 16;
session 27), so the default stays 0.

``data`` selects the thesis's ablation (table 5.3): ``"dagger"`` (the expert seeds, the student
rolls out), ``"expert"`` (the expert also does every later rollout; the student only learns)
and ``"student"`` (the seeding rollout too is the untrained student's). Every observation is
labelled by the expert in all three.

SafeDAgger (Zhang & Cho, AAAI 2017; ``safe=True``) adds a safety head to the student: a logit
from the student's features (a small MLP on the stop-gradient projection, so it does not shape
the policy's representation) for ``p = P(||pi_s(o) - pi_e(o)||^2 > safety_tau)``. At each step
the student acts where ``p < 0.5`` and the expert acts where ``p >= 0.5``; only there is the
expert queried and the observation labelled and added to ``D``. The head is trained by binary
cross-entropy (weight ``safety_weight``), the target being whether the student's *current*
action on the *unaugmented* observation (the one the head judges when acting) is farther than
``safety_tau`` from the stored label, on a held-out split of ``D`` (every ``safety_holdout``-th
slot, Zhang & Cho's ``D_safe``) that the policy never trains on. Trained on the policy's own
training data instead, the head sees only the small errors of fitted observations, soon
declares every state safe and stops all queries (measured: after ~20 iterations, with the
student still far from the expert). Zhang & Cho chose their fixed ``tau`` so that 20% of the
initial samples were unsafe; ``safety_unsafe_fraction=f`` instead lets ``tau`` follow the
student: at every step it is the ``1 - f`` quantile of the squared errors in the held-out batch
(logged as ``safety_tau``), so the head learns to flag the fraction ``f`` of states where the
student is worst, whatever the scale of the actions. DAgger is the special case that always
queries. ``queries`` counts the labels used, exactly: ``expert_steps * num_envs`` for the
seeding plus the queried environments of every step (with ``parallel``, plus every sampled
batch, held-out batches included, which the learning expert labels afresh). (On the device the expert network is run on
all environments' observations and its output selected where queried; the diagnostic
``action_error``, the student-expert distance on the current observations, uses those too and
is not a query: nothing learns from it.)

Seed SafeDAgger with ``data="student"`` where failures are hard to undo. The expert takes over
wherever the head says unsafe, so a student seeded by the expert never drives itself into
trouble while it learns, and never sees the expert's labels there. Seeded by the untrained
student instead, the dataset starts with its flailing and falls, labelled by the expert. On
walker_stand at 32x32 (session 41, seed 0, 5,000 steps, 64 test episodes), 17% of the
expert-seeded student's episodes scored below 500 (the walker fell), and 2% of the
student-seeded one's; DAgger's student, 3%.

SECANT-Parallel (``parallel=True``; dissertation table 5.4) distils from an expert that is still
learning: an :class:`~vasa.distill.experts.Expert` with a learner
(:func:`~vasa.distill.experts.ppo_learner`), whose whole RL train state lives in the
distillation state. Its ``iterations`` RL iterations are spread evenly over the
``student_steps`` (iteration ``i`` of the student runs ``floor((i+1)E/S) - floor(iE/S)`` of
them, before its gradient step), inside the same program. The dataset also keeps each
observation's expert input (the privileged state), and labels are recomputed by the *current*
expert whenever a batch is sampled, so the student never learns from a stale expert.

Everything lives in one jitted iteration on the mesh (``jax.shard_map`` over ``"data"``):
environments (with their renderer) and the dataset are split over devices, each device samples
``batch_size / devices`` from its own shard, and gradients are averaged with
:func:`vasa.dist.pmean`; ``RunConfig.chunk`` iterations run per device call (on a CPU one, as
off-policy pixel runs do: XLA:CPU's convolutions are slower inside a loop).

Usage::

    from vasa.distill import dagger, experts
    expert = experts.expert_from_ppo(ppo_config, ppo_state)       # a privileged state expert
    policy, state, rows = dagger.train(dagger.DAggerConfig(env=ppo_config.env), expert)
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.sharding import NamedSharding, PartitionSpec as P

from vasa.dist.mesh import DATA_AXIS, jit_sharded_step, make_mesh, pmean, psum
from vasa.distill import dataset
from vasa.distill.augment import NEEDS_BANK, StrongAugConfig, resize_bank, strong_augment
from vasa.distill.distractors import DistractorConfig, make_bank
from vasa.distill.experts import Expert, check_expert
from vasa.distill.student import Student, StudentNetwork, needs_expert
from vasa.envs import EnvId, EnvState, batch_step, make, pixel_action_repeat
from vasa.envs.randomize import SuiteName as Suite, appearance_problem
from vasa.envs.rollout import episode_returns
from vasa.nn.schedules import decay_schedule
from vasa.run import RunConfig, chunk_plan, chunked_iterations, prepare_run, require
from vasa.run.fields import NonNegFloat, PosFloat, PosInt, Range, Seed, check_fields

NAME = "dagger"


@dataclass(frozen=True)
class DAggerConfig:
    """Distillation of an expert into a pixel student (SECANT's stage 2), DAgger or SafeDAgger."""

    env: EnvId = "dmc/walker_walk"
    """environment id (see vasa.envs.registered_ids()); the student sees its pixels"""
    image_size: PosInt = 84
    """rendered image height and width"""
    frame_stack: PosInt = 3
    """frames per observation"""
    supersample: PosInt = 1
    """rays per pixel side of the student's camera (2: a 2x2 grid averaged, as MuJoCo's 4x multisampling
    antialiases DMControl's frames; RGB costs supersample ** 2 rays per pixel)"""
    action_repeat: PosInt | None = None
    """repeat each action this many task steps (None: PAD's, vasa.envs.pixel_action_repeat); must equal the expert's"""
    episode_length: PosInt | None = None
    """time limit in task steps (None: the task's own)"""
    seed: Seed = 0
    """random seed"""
    train_appearance: Suite = "train"
    """appearance suite the student trains under (color_easy etc.: the domain-randomisation baseline); evaluation
    during training uses the same suite"""

    num_envs: PosInt = 16
    """parallel environments (global, split over devices)"""
    expert_steps: PosInt = 250
    """steps of every environment in the rollout that seeds the dataset (by the expert; data=student: the student)"""
    student_steps: PosInt = 30_000
    """gradient steps of the student = iterations (each also steps every environment once)"""
    dataset_size: PosInt = 100_000
    """dataset capacity in observations (global; a ring, oldest overwritten); bytes: H*W*3*frame_stack each"""
    batch_size: PosInt = 128
    """observations per gradient step (global, split over devices)"""
    learning_rate: PosFloat = 1e-3
    """Adam learning rate (at the first student step)"""
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    """learning rate over the student_steps gradient steps: constant (the thesis's) or a linear/cosine decay to 0
    (no gain measured on the CPU reacher benchmark, session 21)"""
    loss: Literal["l2", "squared"] = "l2"
    """imitation loss: batch mean of ||pi_s(f(o)) - pi_e(o)||_2 (SECANT) or of its square"""
    priority_exponent: Annotated[float, Range(ge=0, le=1)] = 0.0
    """prioritised sampling of the training batch: entry i drawn with probability ~ e_i^alpha, e_i the student's
    latest loss on it (Schaul et al.'s proportional replay, no importance weights; new entries get the largest);
    0: uniform (SECANT's)"""
    data: Literal["dagger", "expert", "student"] = "dagger"
    """who rolls out: dagger (expert seeds, then the student), expert (always), student (always)"""
    rollout_noise: NonNegFloat = 0.0
    """Gaussian noise on every executed action (seeding included), std in units of the action bounds' half-range,
    clipped to the bounds (DART, Laskey et al. 2017): the dataset then holds the states a perturbed policy drifts
    into, each still labelled by the expert's clean action. 0: SECANT's noiseless rollouts"""
    safe: bool = False
    """SafeDAgger: a safety head decides per step and env whether the expert acts and is queried"""
    safety_tau: PosFloat = 0.0025
    """SafeDAgger: a state is unsafe when ||pi_s(o) - pi_e(o)||^2 > this (Zhang & Cho: 0.0025)"""
    safety_weight: NonNegFloat = 1.0
    """weight of the safety head's binary cross-entropy"""
    safety_unsafe_fraction: Annotated[float, Range(gt=0, lt=1)] | None = None
    """SafeDAgger: if set, tau follows the student: the squared error this fraction of each held-out batch exceeds
    (None: the fixed safety_tau)"""
    safety_query_fraction: Annotated[float, Range(gt=0, lt=1)] | None = None
    """SafeDAgger: if set, the head flags a state when its unsafe logit reaches the (1 - this) quantile of its logits
    on the latest held-out batch (a switch calibrated on held-out states: about this fraction of states like them
    is queried, however skewed the labels); None: Zhang & Cho's sigmoid(logit) >= 0.5"""
    safety_holdout: Annotated[int, Range(ge=2)] = 5
    """SafeDAgger: every k-th dataset slot is held out (D_safe): the policy never trains on it, the safety head
    only on it"""
    parallel: bool = False
    """SECANT-Parallel: the expert keeps learning by RL during distillation (an expert with a learner,
    experts.ppo_learner); labels are recomputed by the current expert when sampled"""

    encoder: Literal["drq", "nature", "drq_small"] = "drq"
    """student's pixel encoder (vasa.nn.ConvEncoder; drq_small: a quarter of drq's FLOPs for 24-48 px images)"""
    feature_dim: PosInt = 50
    """encoder output size (Linear -> LayerNorm -> tanh; features="projection")"""
    features: Literal["projection", "keypoints"] = "projection"
    """what the student's MLP reads: the projection of the flat conv features (SAC-AE/DrQ/SECANT), or a spatial
    softmax of the last conv map, the expected (x, y) of each of its channels (Levine et al. 2016)"""
    hidden_layers: tuple[PosInt, ...] = (1024, 1024)
    """student policy MLP hidden sizes"""
    safety_layers: tuple[PosInt, ...] = (256,)
    """safety head MLP hidden sizes"""
    augment: StrongAugConfig = StrongAugConfig()
    """strong augmentations of the student's batches (SECANT combo1 by default)"""
    distractors: DistractorConfig = DistractorConfig()
    """the image bank of mixup/cutmix (built once, resized to image_size if needed, kept in the state)"""

    def resolved_action_repeat(self) -> int:
        return int(self.action_repeat) if self.action_repeat is not None else pixel_action_repeat(self.env)

    @property
    def env_steps_per_iteration(self) -> int:
        """Task steps per iteration, action repeats included."""
        return self.num_envs * self.resolved_action_repeat()

    def validate(self, num_devices: int = 1) -> None:
        """Check every option before anything is compiled; messages name the field, the value
        and what is allowed."""
        def need(ok, field, allowed):
            require(self, ok, field, allowed)

        check_fields(self)
        self.augment.validate()
        self.distractors.validate()
        d = self.distractors
        if "scenes" in d.sources and d.scene_appearance != "train" and self.env in d.scene_tasks:
            warnings.warn(f"distractors.scene_tasks renders {self.env}, the student's own task, under "
                          f"{d.scene_appearance!r}: mixup and cutmix then show the student a look it is evaluated "
                          "on, and that suite's zero-shot figure is no longer zero-shot (SECANT: neither expert "
                          "nor student sees the test environments). Drop the task from scene_tasks.", stacklevel=2)
        problem = appearance_problem(self.env, self.train_appearance, training=True)  # robo/* levels, no held-out
        need(problem is None, "train_appearance", problem or "")
        for field in ("num_envs", "batch_size", "dataset_size"):
            need(getattr(self, field) % num_devices == 0, field, f"it must be divisible by the {num_devices} devices")
        need(self.dataset_size >= self.num_envs, "dataset_size",
             f"it must hold at least one step of the num_envs={self.num_envs} environments")
        need(self.safe or self.safety_query_fraction is None, "safety_query_fraction",
             "it needs safe=True (it calibrates SafeDAgger's switch)")
        need(not (self.safe and self.data == "expert"), "safe",
             "with data='expert' the expert always acts; SafeDAgger needs data='dagger' or 'student'")
        from vasa.nn.encoders import conv_output_size

        try:
            conv_output_size(self.encoder, self.image_size, self.image_size)
        except ValueError as e:
            need(False, "image_size", str(e))


def make_env(config: DAggerConfig, evaluation: bool = False, appearance: str | None = None,
             seed_offset: int | None = None):
    """The student's pixel environment under ``appearance`` (default ``config.train_appearance``).
    Appearance draws are seeded with ``config.seed + seed_offset`` (default: 0, or 1,000 for
    ``evaluation``, so evaluation draws other resets and looks)."""
    offset = (1_000 if evaluation else 0) if seed_offset is None else seed_offset
    return make(config.env, pixels=True, image_size=config.image_size, frame_stack=config.frame_stack,
                action_repeat=config.resolved_action_repeat(), episode_length=config.episode_length,
                appearance=appearance or config.train_appearance, appearance_seed=config.seed + offset,
                supersample=config.supersample)


# --------------------------------------------------------------------------- state


@struct.dataclass
class DistillState:
    """Everything a distillation run needs to continue exactly.

    Attributes:
      student: the student's parameters (replicated); opt: its Adam state.
      expert: the expert's parameters (replicated, frozen); with ``parallel``, its learner's
        whole train state (sharded as the learner says).
      bank: distractor images ``uint8 [N, H, W, 3]`` for mixup/cutmix (``None`` if unused).
      data: :class:`~vasa.distill.dataset.Dataset`, sharded over ``"data"``.
      env_state: ``EnvState`` with leading axis ``[num_envs]`` (sharded).
      key: PRNG key ``uint32[2]``.
      iteration: ``[] int32`` completed iterations (gradient steps); the seeding is not one.
      queries: ``[] int32`` expert labels used so far (seeding included).
      seeded: ``[] bool`` the seeding rollout is done.
      safety_threshold: ``[] float32`` SafeDAgger's switch: a state is unsafe when the head's
        logit is at least this (0: ``sigmoid >= 0.5``; with ``safety_query_fraction``, set by
        every gradient step from the held-out batch).
    """

    student: Any
    opt: Any
    expert: Any
    bank: Any
    data: dataset.Dataset
    env_state: EnvState
    key: jax.Array
    iteration: jax.Array
    queries: jax.Array
    seeded: jax.Array
    safety_threshold: jax.Array


def state_specs(state: DistillState, expert_specs: Any = None) -> DistillState:
    """PartitionSpecs: the dataset and environment leaves split over ``"data"``, the expert's
    as ``expert_specs`` (default: replicated), the rest replicated."""
    specs = jax.tree.map(lambda _: P(), state)
    split = lambda tree: jax.tree.map(lambda _: P(DATA_AXIS), tree)  # noqa: E731
    specs = specs.replace(data=split(state.data), env_state=split(state.env_state))
    return specs if expert_specs is None else specs.replace(expert=expert_specs)


def _optimizer(config: DAggerConfig):
    """Adam on the student (and its safety head); the learning rate follows ``lr_schedule``
    over the ``student_steps`` gradient steps."""
    return optax.adam(decay_schedule(config.lr_schedule, config.learning_rate, config.student_steps))


@functools.lru_cache(maxsize=2)
def _bank(config: DAggerConfig):
    """The distractor bank the augmentation pool needs (``None`` without mixup/cutmix); built
    once per config (init and the programs' specs share it)."""
    if not NEEDS_BANK & set(config.augment.ops):
        return None
    bank = make_bank(config.distractors)
    size = (config.image_size, config.image_size)
    return bank if tuple(bank.shape[1:3]) == size else resize_bank(bank, size)


def _build(config: DAggerConfig, env, student: Student, expert: Expert, num_shards: int):
    """``build(expert_params, bank) -> DistillState``: reset environments, an empty dataset
    (with the expert's own observation per entry when ``parallel`` relabels from it)."""
    k_student, k_env, k_run = jax.random.split(jax.random.PRNGKey(config.seed), 3)
    pixels = env.observation_spec["pixels"]
    extra = None
    if config.parallel and expert.reads != "pixels":
        extra = jax.ShapeDtypeStruct(tuple(env.observation_spec[expert.reads].shape), jnp.float32)

    def build(expert_params, bank):
        env_keys = jax.vmap(lambda i: jax.random.fold_in(k_env, i))(jnp.arange(config.num_envs))
        params = student.init(k_student)
        data = dataset.create(tuple(pixels.shape), pixels.dtype, expert.action_size, config.dataset_size, num_shards,
                              extra, prioritised=config.priority_exponent > 0)
        zero = jnp.zeros((), jnp.int32)
        return DistillState(student=params, opt=_optimizer(config).init(params), expert=expert_params, bank=bank,
                            data=data, env_state=jax.vmap(env.reset)(env_keys), key=k_run, iteration=zero,
                            queries=zero, seeded=jnp.zeros((), bool), safety_threshold=jnp.zeros((), jnp.float32))

    return build


def _prepare(config: DAggerConfig, expert: Expert, env, mesh):
    mesh = mesh or make_mesh()
    config.validate(mesh.size)
    env = env or make_env(config)
    check_expert(expert, config.env, env, config.resolved_action_repeat())
    if config.parallel and expert.learner is None:
        raise ValueError(f"parallel=True is not allowed with the expert {expert.name!r}: it is frozen; SECANT-Parallel "
                         "needs an expert that keeps learning (vasa.distill.experts.ppo_learner).")
    if config.parallel and expert.learner.iterations * (config.student_steps + 1) >= 2**31:
        raise ValueError(f"student_steps={config.student_steps!r} is not allowed with an expert of "
                         f"{expert.learner.iterations} RL iterations: their product must stay below 2**31.")
    return mesh, env


def _expert_state(config: DAggerConfig, expert: Expert, mesh):
    """``(initial expert entry of the state, its specs or None)``: the frozen parameters, or
    with ``parallel`` the learner's initial train state and its PartitionSpecs."""
    if not config.parallel:
        return expert.params, None
    return expert.learner.init(mesh), expert.learner.make_body(mesh)[1]


def init(config: DAggerConfig, expert: Expert, env=None, mesh=None) -> DistillState:
    """The initial state on ``mesh`` (validated config, expert checked against the env):
    student parameters, reset environments, an empty dataset (seed it with :func:`make_seed`);
    with ``parallel``, the expert learner's initial train state."""
    mesh, env = _prepare(config, expert, env, mesh)
    build = _build(config, env, Student(config, env), expert, mesh.size)
    bank = _bank(config)
    expert_state, expert_specs = _expert_state(config, expert, mesh)
    specs = state_specs(jax.eval_shape(build, expert_state, bank), expert_specs)
    shardings = jax.tree.map(lambda s: NamedSharding(mesh, s), specs)
    return jax.jit(build, out_shardings=shardings)(expert_state, bank)


def expert_params(config: DAggerConfig, expert: Expert, state: DistillState):
    """The expert's current :attr:`~vasa.distill.experts.Expert.act` parameters in ``state``."""
    return expert.learner.params(state.expert) if config.parallel else state.expert


def expert_iterations(config: DAggerConfig, expert: Expert, iteration):
    """RL iterations of a learning expert done after ``iteration`` student iterations
    (``floor(iteration * E / S)``; 0 for a frozen expert). Works on ints and int32 arrays."""
    if not config.parallel:
        return 0 * iteration
    return iteration * expert.learner.iterations // config.student_steps


# --------------------------------------------------------------------------- programs


def _programs(config: DAggerConfig, expert: Expert, env, mesh):
    """The shard_map bodies ``seed(state)`` and ``iteration(state)``, and the state's specs."""
    D = mesh.size
    local_batch = config.batch_size // D
    student = Student(config, env)
    tx = _optimizer(config)
    tau = config.safety_tau
    holdout = config.safety_holdout if config.safe else 0
    learner_body = expert.learner.make_body(mesh)[0] if config.parallel else None

    def env_step(state: DistillState, seeding: bool, noise_key=None):
        """One step of every local env: who acts, who is queried, the dataset, the counters;
        ``noise_key`` (``rollout_noise > 0``) perturbs the executed actions."""
        obs = state.env_state.obs
        a_e = expert.act(expert_params(config, expert, state), obs)
        student_rolls = config.data == "student" if seeding else config.data != "expert"
        if student_rolls or not seeding:  # (data=expert: for the action_error diagnostic only)
            a_s, logit = student.apply(state.student, obs["pixels"])
            error = psum(jnp.linalg.norm(a_s - a_e, axis=-1).sum(), DATA_AXIS) / config.num_envs
        else:
            a_s, error = a_e, jnp.asarray(jnp.nan, jnp.float32)
        if config.safe and not seeding:
            query = needs_expert(logit, state.safety_threshold)
            expert_acts = query
        else:
            query = jnp.ones(a_e.shape[:1], bool)
            expert_acts = jnp.full(a_e.shape[:1], not student_rolls)
        action = jnp.where(expert_acts[:, None], a_e, a_s)
        if config.rollout_noise > 0:
            key = jax.random.fold_in(noise_key, jax.lax.axis_index(DATA_AXIS))
            half = 0.5 * (student.high - student.low)
            noisy = action + config.rollout_noise * half * jax.random.normal(key, action.shape, action.dtype)
            action = jnp.clip(noisy, student.low, student.high)
        extra = None if state.data.extra is None else obs[expert.reads]
        data = dataset.add(state.data, obs["pixels"], a_e, query, extra)
        nxt = batch_step(env, state.env_state, action)
        sums = psum(jnp.stack([query.sum(), (~expert_acts).sum()]).astype(jnp.int32), DATA_AXIS)
        ended = psum(jnp.stack([nxt.done.sum(), (nxt.info["final_return"] * nxt.done).sum()]), DATA_AXIS)
        state = state.replace(data=data, env_state=nxt, queries=state.queries + sums[0])
        return state, {"queried": sums[0], "student_fraction": sums[1] / config.num_envs,
                       "action_error": error, "episodes": ended[0], "return_sum": ended[1]}

    def distance(pred, target):
        sq = jnp.sum((pred - target) ** 2, axis=-1)
        if config.loss == "squared":
            return sq
        positive = sq > 0
        return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)  # a zero gradient at 0

    def loss_fn(params, augmented, label, held, held_label):
        """``(loss, (metrics, per-sample imitation losses [B]))``."""
        if not config.safe:
            action, _ = student.apply(params, augmented)
            each = distance(action, label)
            loss = jnp.mean(each)
            return loss, ({"student_loss": loss}, jax.lax.stop_gradient(each))
        action, _ = student.apply(params, augmented)
        each = distance(action, label)
        policy_loss = jnp.mean(each)
        # the held-out batch trains the safety head only: every other parameter enters it as a constant,
        # so XLA runs no convolution backward for it (one batch through the encoder's backward, not two)
        head_only = {**params, "params": {name: p if name == "safety" else jax.lax.stop_gradient(p)
                                          for name, p in params["params"].items()}}
        held_action, logit = student.apply(head_only, held)
        error = jnp.sum((held_action - held_label) ** 2, axis=-1)
        threshold = tau if config.safety_unsafe_fraction is None else jnp.quantile(
            error, 1.0 - config.safety_unsafe_fraction)
        unsafe = (error > threshold).astype(jnp.float32)
        safety_loss = jnp.mean(optax.sigmoid_binary_cross_entropy(logit, unsafe))
        held_logit = jax.lax.stop_gradient(logit)
        switch = (jnp.zeros((), jnp.float32) if config.safety_query_fraction is None
                  else jnp.quantile(held_logit, 1.0 - config.safety_query_fraction))
        return policy_loss + config.safety_weight * safety_loss, ({
            "student_loss": policy_loss, "safety_loss": safety_loss, "batch_unsafe": unsafe.mean(),
            "safety_accuracy": jnp.mean((held_logit >= switch) == (unsafe > 0)),
            "safety_tau": jnp.asarray(threshold, jnp.float32), "safety_threshold": switch}, jax.lax.stop_gradient(each))

    def draw(state: DistillState, key, held_out: bool = False):
        """A local batch ``(clean pixels, label, slots)`` of one split (the training split by
        priority with ``priority_exponent``); with ``parallel`` labelled by the current expert."""
        index = dataset.sample_slots(state.data, key, local_batch, holdout, held_out, config.priority_exponent)
        clean, label, extra = dataset.gather(state.data, index)
        if config.parallel:
            label = expert.act(expert_params(config, expert, state),
                               {"pixels": clean, **({} if extra is None else {expert.reads: extra})})
        return clean, label, index

    def learn(state: DistillState, key):
        shard = jax.lax.axis_index(DATA_AXIS)
        k_sample, k_aug, k_held = jax.random.split(jax.random.fold_in(key, shard), 3)
        clean, label, index = draw(state, k_sample)
        augmented = strong_augment(k_aug, clean, config.augment, state.bank)
        held, held_label, _ = draw(state, k_held, held_out=True) if config.safe else (None, None, None)
        grads, (aux, each) = jax.grad(loss_fn, has_aux=True)(state.student, augmented, label, held, held_label)
        grads, aux = pmean((grads, aux), DATA_AXIS)
        updates, opt = tx.update(grads, state.opt, state.student)
        state = state.replace(student=optax.apply_updates(state.student, updates), opt=opt)
        if config.priority_exponent > 0:  # each device's own slots, by the loss it just saw on them
            state = state.replace(data=dataset.set_priority(state.data, index, each))
        if config.safe:  # the devices' mean quantile (pmean-ed with aux): the same switch on every device
            state = state.replace(safety_threshold=aux["safety_threshold"])
        if config.parallel:  # the learning expert labelled every sampled observation (and the held-out batch)
            state = state.replace(queries=state.queries + config.batch_size * (2 if config.safe else 1))
        return state, aux

    def summary(state, step_metrics):
        n, total = step_metrics.pop("episodes"), step_metrics.pop("return_sum")
        return {**step_metrics, "episodes": n, "episode_return": jnp.where(n > 0, total / jnp.maximum(n, 1), jnp.nan),
                "expert_queries": state.queries, "dataset_size": psum(state.data.size(), DATA_AXIS)}

    def seed(state: DistillState):
        def body(s, k):
            return env_step(s, seeding=True, noise_key=k)

        keys = (jax.random.split(jax.random.fold_in(state.key, 1), config.expert_steps)
                if config.rollout_noise > 0 else None)  # (state.key itself is left as it was)
        state, steps = jax.lax.scan(body, state, keys, length=config.expert_steps)
        metrics = {"episodes": steps["episodes"].sum(), "return_sum": steps["return_sum"].sum(),
                   "action_error": steps["action_error"].mean()}
        return state.replace(seeded=jnp.ones((), bool)), summary(state, metrics)

    def expert_learns(state: DistillState):
        """The learning expert's RL iterations due at this student iteration; its metrics
        (``expert_return``: the mean return of its training episodes; NaN if none ran or ended)."""
        due = (expert_iterations(config, expert, state.iteration + 1)
               - expert_iterations(config, expert, state.iteration))
        nan = jnp.asarray(jnp.nan, jnp.float32)

        def body(_, carry):
            expert_state, _ = carry
            expert_state, metrics = learner_body(expert_state)
            return expert_state, metrics["episode_return"].astype(jnp.float32)

        expert_state, ret = jax.lax.fori_loop(0, due, body, (state.expert, nan))
        return state.replace(expert=expert_state), {"expert_return": ret}

    def iteration(state: DistillState):
        key, k_learn = jax.random.split(state.key)
        k_noise = None
        if config.rollout_noise > 0:  # (without noise the keys stay as they were: same runs as before)
            k_learn, k_noise = jax.random.split(k_learn)
        state, expert_metrics = expert_learns(state) if config.parallel else (state, {})
        # the environments step first, then the student learns: a batch read from the ring
        # *before* the step writes into it would make XLA copy the whole (donated) ring, twice
        # (measured: 149 vs 80 ms per iteration with a 20K x 32x32x9 ring on 2 CPU cores)
        state, step_metrics = env_step(state, seeding=False, noise_key=k_noise)
        state, aux = learn(state, k_learn)
        aux = {**aux, **expert_metrics}
        step_metrics.pop("queried")
        metrics = {**aux, **summary(state, step_metrics)}
        return state.replace(key=key, iteration=state.iteration + 1), metrics

    bank = _bank(config)
    bank = None if bank is None else jax.ShapeDtypeStruct(bank.shape, bank.dtype)
    expert_state, expert_specs = _expert_state_abstract(config, expert, mesh)
    abstract = jax.eval_shape(_build(config, env, student, expert, D), expert_state, bank)
    return seed, iteration, state_specs(abstract, expert_specs)


def _expert_state_abstract(config: DAggerConfig, expert: Expert, mesh):
    """:func:`_expert_state` as shapes only (nothing computed)."""
    if not config.parallel:
        return expert.params, None
    return jax.eval_shape(lambda: expert.learner.init(mesh)), expert.learner.make_body(mesh)[1]


def _sharded(body, mesh, specs, chunk=None):
    # check_vma=False: MJX's physics uses lax.cond with device-invariant constants (see ppo.py)
    step = jax.shard_map(body, mesh=mesh, in_specs=(specs,), out_specs=(specs, P()), check_vma=False)
    return jit_sharded_step(step, mesh, specs, chunk)


def make_seed(config: DAggerConfig, expert: Expert, env=None, mesh=None):
    """The jitted seeding rollout ``seed(state) -> (state, metrics)`` (state donated):
    ``expert_steps`` steps of every environment, every observation labelled by the expert and
    added to the dataset; the expert acts (the student with ``data="student"``)."""
    mesh, env = _prepare(config, expert, env, mesh)
    seed, _, specs = _programs(config, expert, env, mesh)
    return _sharded(seed, mesh, specs)


def make_train_step(config: DAggerConfig, expert: Expert, env=None, mesh=None, chunk: int | None = None):
    """The jitted iteration ``step(state) -> (state, metrics)`` (input state donated): one
    step of every environment, then one gradient step of the student (see the module
    docstring). With ``chunk=K``: ``train_chunk(state, count)``, ``min(count, K)`` iterations
    per device call, metrics stacked ``[K, ...]`` (:func:`vasa.dist.jit_sharded_step`).

    Metrics (``[]``): ``student_loss``; with ``safe``, ``safety_loss``, ``batch_unsafe`` (the
    fraction of the held-out batch labelled unsafe), ``safety_accuracy`` (of the switch on it),
    ``safety_tau`` and ``safety_threshold`` (the switch's logit threshold); ``expert_queries``
    (cumulative), ``dataset_size``, ``student_fraction`` (environments the student acted in
    this step), ``action_error`` (mean ||pi_s(o) - pi_e(o)|| on this step's observations),
    ``episodes`` and ``episode_return`` (of episodes ended this step, NaN if none).
    """
    mesh, env = _prepare(config, expert, env, mesh)
    _, iteration, specs = _programs(config, expert, env, mesh)
    return _sharded(iteration, mesh, specs, chunk)


def make_evaluate(config: DAggerConfig, env, num_envs: int = 16):
    """Jitted ``evaluate(student_params, key) -> [] float32``: the mean return of ``num_envs``
    deterministic episodes of the student in ``env`` (e.g. ``make_env(config, evaluation=True)``)."""
    student = Student(config, env)
    return jax.jit(lambda params, key: episode_returns(env, lambda obs: student.policy(params, obs), key,
                                                       num_envs).mean())


# --------------------------------------------------------------------------- outer loop

DEFAULT_RUN = RunConfig(eval_every=1000, checkpoint_every=5000, chunk=50)
LOGGED = ("student_loss", "safety_loss", "batch_unsafe", "safety_accuracy", "safety_tau", "safety_threshold",
          "expert_queries", "dataset_size", "student_fraction", "action_error", "episodes", "episode_return",
          "expert_return")
SAFE_ONLY = ("safety_loss", "batch_unsafe", "safety_accuracy", "safety_tau", "safety_threshold")


def train(config: DAggerConfig, expert: Expert, run: RunConfig = DEFAULT_RUN):
    """Seed the dataset, then distil for ``student_steps`` iterations with logging (one
    ``metrics.csv`` row per iteration, see :data:`LOGGED`; ``env_steps`` counts the seeding),
    periodic deterministic evaluation of the student under the training appearance,
    checkpoints of the whole :class:`DistillState` (student, optimiser, expert, dataset,
    environments, key, counters) and ``run.resume`` bit-for-bit on CPU.

    The expert is checked against the environment before anything is compiled or written. On
    resume the checkpoint's expert parameters are used.

    With ``parallel`` the rows also hold ``expert_return`` (its training episodes),
    ``expert_iterations``, ``expert_env_steps`` and, at evaluations, ``expert_eval_return``
    (deterministic, on the student's evaluation environment); the final expert is
    :func:`final_expert`.

    Returns ``(policy, state, rows)``: ``policy(obs) -> action`` (the student, deterministic),
    the final state and the logged rows.
    """
    run.validate()
    plan = prepare_run(config, run, NAME, defaults=DEFAULT_RUN, prefix=f"{NAME}-")
    config, run = plan.config, plan.run
    mesh = make_mesh(run.num_devices)
    env = make_env(config)
    _prepare(config, expert, env, mesh)
    eval_env = make_env(config, evaluation=True)
    student = Student(config, env)
    names = tuple(n for n in LOGGED
                  if (config.safe or n not in SAFE_ONLY) and (config.parallel or n != "expert_return"))
    seeding_steps = config.expert_steps * config.env_steps_per_iteration
    expert_steps = expert.learner.env_steps_per_iteration if config.parallel else 0
    evaluate_expert = jax.jit(lambda params, key: episode_returns(eval_env, lambda obs: expert.act(params, obs), key,
                                                                  run.num_eval_envs).mean())

    with plan.open() as session:
        start, state = session.restore(init(config, expert, env, mesh))
        t0 = time.perf_counter()
        if not bool(state.seeded):
            state, _ = make_seed(config, expert, env, mesh)(state)
        if jax.default_backend() == "cpu":
            # XLA:CPU runs convolutions and their gradients about twice as slowly inside a loop
            # (see vasa.algos.offpolicy): on CPU, one device call per iteration
            chunk = 1
            single = make_train_step(config, expert, env, mesh).lower(state).compile()

            def step(s, count):  # metrics stacked [1, ...], as a chunk's are
                s, metrics = single(s)
                return s, jax.tree.map(lambda x: x[None], metrics)
        else:
            chunk = run.chunk
            step = make_train_step(config, expert, env, mesh, chunk=chunk).lower(state, chunk).compile()
        session.compile_s = time.perf_counter() - t0
        evaluate = make_evaluate(config, eval_env, run.num_eval_envs)
        total = config.student_steps
        session.begin(total, start)
        eval_key = jax.random.PRNGKey(config.seed + 10_000)
        stop = total if run.max_iterations is None else min(total, start + run.max_iterations)
        calls = chunk_plan(start, stop, chunk, (run.eval_every, run.checkpoint_every))
        losses = [n for n in names if n.endswith("_loss")]
        for state, it, values, dt in chunked_iterations(lambda s, n, _: step(s, n), state, start, calls):
            session.check_finite(values, it, losses)
            session.wall += dt
            row = {"iteration": it, "env_steps": seeding_steps + it * config.env_steps_per_iteration,
                   "wall_time": session.wall, "sps": config.env_steps_per_iteration / dt,
                   **{k: values[k] for k in names}, "eval_return": float("nan")}
            if config.parallel:
                row.update(expert_iterations=expert_iterations(config, expert, it),
                           expert_env_steps=expert_iterations(config, expert, it) * expert_steps,
                           expert_eval_return=float("nan"))
            if it == total or (run.eval_every and it % run.eval_every == 0):
                k = jax.random.fold_in(eval_key, it)
                row["eval_return"] = float(evaluate(state.student, k))
                if config.parallel:
                    row["expert_eval_return"] = float(evaluate_expert(expert_params(config, expert, state), k))
            session.log(row)
            if it == stop or (run.checkpoint_every and it % run.checkpoint_every == 0):
                session.save(it, state)
    params = state.student
    return (lambda obs: student.policy(params, obs)), state, session.rows


def final_expert(config: DAggerConfig, expert: Expert, state: DistillState) -> Expert:
    """The expert as it is in ``state``: itself when frozen; with ``parallel``, a frozen
    expert with the learner's current parameters (for evaluation or another distillation)."""
    if not config.parallel:
        return expert
    return dataclasses.replace(expert, params=expert_params(config, expert, state), learner=None,
                               name=expert.name.replace("learning ", "", 1))


__all__ = ["DAggerConfig", "DEFAULT_RUN", "DistillState", "LOGGED", "SAFE_ONLY", "Student", "StudentNetwork",
           "expert_iterations", "expert_params", "final_expert", "init", "make_env", "make_evaluate", "make_seed",
           "make_train_step", "needs_expert", "state_specs", "train"]
