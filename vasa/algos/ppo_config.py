"""PPO's configuration (:class:`PPOConfig`), validated field by field before anything compiles."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

from vasa.envs import EnvId, EnvOptions
from vasa.envs.curriculum import SCHEDULE, DemoSchedule
from vasa.envs.randomize import SuiteName as Suite, appearance_problem
from vasa.run import require
from vasa.run.fields import NonNegFloat, NonNegInt, PosFloat, PosInt, Range, Seed, UnitFloat, check_fields


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters. Defaults learn ``dmc/cartpole_balance`` on a 2-core CPU in minutes."""

    env: EnvId = "dmc/cartpole_balance"
    """environment id (see vasa.envs.registered_ids())"""
    env_options: EnvOptions = ()
    """task builder arguments as name=value, e.g. num_layouts=64 for nav/pointgoal, control=joint_velocity for robo/*"""
    num_envs: PosInt = 128
    """parallel environments (global, split over devices)"""
    unroll_length: PosInt = 32
    """environment steps per environment per iteration (the rollout horizon)"""
    total_env_steps: PosInt = 4_000_000
    """training length in environment steps (action repeats counted)"""
    seed: Seed = 0
    """random seed"""
    num_seeds: PosInt = 1
    """independent runs trained together with jax.vmap (seeds seed, seed+1, ...)"""
    episode_length: PosInt | None = None
    """time limit in task steps (None: the task's own, e.g. 1000 for DM Control)"""
    action_repeat: PosInt | None = 4
    """repeat each action this many task steps (None: the task's own)"""
    reset_mode: Literal["fresh", "cached"] = "fresh"
    """auto-reset draws a fresh initial state, or replays a cached one (Brax's behaviour)"""

    # surrogate and SURREAL target network
    surrogate: Literal["clip", "kl"] = "clip"
    """policy objective: clipped ratio, or SURREAL's adaptive-KL penalty"""
    clip_epsilon: PosFloat = 0.2
    """ratio clip range for surrogate=clip"""
    kl_target: PosFloat = 0.015
    """target KL(ref || pi) for the adaptive penalty (SURREAL: 0.015)"""
    beta_init: PosFloat = 1.0
    """initial KL penalty coefficient"""
    beta_min: PosFloat = 1.0 / 35.0
    """lower bound of beta"""
    beta_max: PosFloat = 35.0
    """upper bound of beta"""
    beta_factor: Annotated[float, Range(gt=1)] = 1.5
    """beta is multiplied/divided by this when KL leaves [target/2, 2*target]"""
    kl_hinge_coef: NonNegFloat = 250.0
    """coefficient of the squared hinge on KL above 2*kl_target (surrogate=kl)"""
    kl_early_stop: NonNegFloat = 0.0
    """stop an iteration's updates once KL > this * kl_target (0 disables; SURREAL: 4)"""
    target_update_interval: PosInt = 1
    """iterations between refreshes of the reference (behaviour) policy; 1 = ordinary PPO"""

    # returns
    gamma: Annotated[float, Range(gt=0, le=1)] = 0.99
    """discount"""
    gae_lambda: UnitFloat = 0.95
    """GAE lambda"""
    reward_scaling: PosFloat = 1.0
    """multiply rewards by this before learning (returns are logged unscaled)"""
    normalize_observations: bool = True
    """z-filter observations with running mean/variance"""
    normalize_advantages: bool = True
    """standardise advantages per minibatch"""
    normalizer_first: bool = False
    """merge each batch into the observation statistics before learning from it (Brax's
    order) instead of after (vasa's default: the stored behaviour log-probs stay exact)"""

    # optimisation
    num_epochs: PosInt = 4
    """passes over each iteration's batch"""
    num_minibatches: PosInt = 8
    """minibatches per epoch (global; each device takes its share)"""
    learning_rate: PosFloat = 1e-3
    """Adam learning rate"""
    lr_schedule: Literal["constant", "linear", "cosine"] = "linear"
    """learning-rate schedule over all gradient steps (linear/cosine decay to 0)"""
    max_grad_norm: NonNegFloat = 0.5
    """global gradient-norm clip (0 disables)"""
    value_coef: NonNegFloat = 0.5
    """weight of the value loss"""
    clip_value: bool = False
    """clip value predictions to +-clip_epsilon around the rollout's values"""
    entropy_coef: NonNegFloat = 1e-3
    """entropy bonus weight"""
    smooth_temporal: NonNegFloat = 0.0
    """CAPS's temporal smoothness weight (Mysore et al. 2021): adds ``||a(s_t) - a(s_t+1)||`` of the deterministic
    action along the rollout, for a policy that does not dither (a smoother expert to distil from); 0 disables"""
    smooth_spatial: NonNegFloat = 0.0
    """CAPS's spatial smoothness weight: adds ``||a(s) - a(s + sigma * noise)||`` with ``sigma = smooth_sigma``; 0 disables"""
    smooth_sigma: PosFloat = 0.05
    """standard deviation of the spatial smoothness's Gaussian perturbation, in z-filtered observation units
    (raw units without normalize_observations)"""

    # networks
    policy_layers: tuple[PosInt, ...] = (64, 64)
    """policy MLP hidden sizes"""
    value_layers: tuple[PosInt, ...] = (64, 64)
    """value MLP hidden sizes"""
    activation: Literal["tanh", "relu", "swish", "elu", "gelu"] = "tanh"
    """hidden activation"""
    state_dependent_std: bool = False
    """predict log-std from the observation (else one learned vector)"""
    init_log_std: Annotated[float, Range(ge=-20, le=5)] = -0.5
    """initial log standard deviation of the Gaussian policy (SURREAL: -1)"""
    action_squash: Literal["tanh", "clip"] = "tanh"
    """map Gaussian samples to the action bounds by tanh, or clip them"""

    # memory
    core: Literal["none", "lstm", "gru"] = "none"
    """recurrent core between the trunk (state, or pixel encoder) and the heads (SURREAL: lstm);
    minibatches are then whole environment sequences, back-propagated through the unroll"""
    core_size: PosInt = 100
    """units of the recurrent core (SURREAL: 100)"""

    # pixels
    pixels: bool = False
    """learn from pixels rendered by vasa's camera ({"pixels": uint8, "proprio"}) through a conv encoder"""
    image_size: PosInt = 64
    """rendered image height and width (pixels only)"""
    frame_stack: PosInt = 3
    """frames per observation (pixels only)"""
    encoder: Literal["nature", "drq"] = "nature"
    """pixel encoder: SURREAL's Nature-style (8x8/4, 4x4/2, 3x3/1) or DrQ/RAD's (4 x 32 conv 3x3)"""
    feature_dim: PosInt = 50
    """encoder projection size (Linear -> LayerNorm -> tanh)"""
    proprio: bool = False
    """also feed obs["proprio"], the task's state vector (privileged on DM Control; SURREAL's proprioception)"""
    augment: Literal["none", "crop"] = "none"
    """random shift (DrQ) of the pixels of every update minibatch"""
    augment_pad: NonNegInt = 4
    """random shift range in pixels (replicate-pad and crop back)"""
    train_appearance: Suite = "train"
    """appearance suite while training (pixels only)"""
    appearance: Suite = "train"
    """appearance suite for evaluation: train, color_easy, color_hard, video_easy, video_hard (robo/*: easy, hard,
    extreme and their _heldout variants)"""

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
    """weight of a behaviour-cloning term on the demonstrations' (observation, action) pairs added to the loss:
    demo_bc_coef * demo_bc_decay^iteration * mean ||policy's deterministic action - demonstrated action||^2 (DAPG,
    Rajeswaran et al. 2018; vasa.algos.demo_bc); needs demo_path, state observations and core='none'; 0: off"""
    demo_bc_decay: Annotated[float, Range(gt=0, le=1)] = 1.0
    """factor on demo_bc_coef per iteration (DAPG's lambda1): 1 keeps it, 0.99 halves it every 69 iterations"""
    demo_bc_batch: PosInt = 256
    """demonstration pairs drawn (uniformly, per device) for each minibatch's behaviour-cloning term"""
    demo_separate_advantages: bool = False
    """standardise the advantages of episodes begun from demonstrations and from the task's own starts
    separately, each group by its own minibatch mean and std (needs demo_path and normalize_advantages);
    with shared statistics the demonstration starts' larger advantages set the scale (robo/stack at ratio
    0.2: std 4.6 against 0.9). Measured there it did not speed learning from the task's starts (BENCHMARKS.md,
    session 18)"""

    @property
    def batch_size(self) -> int:
        """Transitions per iteration: ``num_envs * unroll_length``."""
        return self.num_envs * self.unroll_length

    def validate(self, num_devices: int = 1) -> None:
        """Raise ``ValueError`` naming the field, its value and what is allowed."""

        def need(ok: bool, field: str, allowed: str):
            require(self, ok, field, allowed)

        check_fields(self)  # every field: type, finiteness, range, choice (its annotation)
        need(self.num_envs % num_devices == 0, "num_envs",
             f"it must be divisible by the number of devices ({num_devices})")
        need(self.batch_size % self.num_minibatches == 0, "num_minibatches",
             f"it must divide the batch num_envs * unroll_length = {self.batch_size}")
        group = minibatch_group_size(self.unroll_length, self.num_minibatches)
        need((self.num_envs // num_devices) % group == 0, "num_minibatches",
             f"with unroll_length={self.unroll_length}, each device's environments "
             f"(num_envs / devices = {self.num_envs // num_devices}) must be a multiple of "
             f"{group} = num_minibatches / gcd(num_minibatches, unroll_length)")
        if self.core != "none":
            need((self.num_envs // num_devices) % self.num_minibatches == 0, "num_minibatches",
                 f"with core={self.core!r} minibatches are whole environment sequences: each device's "
                 f"environments (num_envs / devices = {self.num_envs // num_devices}) must split into "
                 f"num_minibatches equal parts")
        need(self.core != "none" or self.core_size == 100, "core_size",
             "it applies to a recurrent core: set core='lstm' or 'gru'")
        need(self.beta_min <= self.beta_init <= self.beta_max, "beta_init",
             f"it must lie in [beta_min, beta_max] = [{self.beta_min}, {self.beta_max}]")
        if self.pixels:
            from vasa.nn.encoders import conv_output_size

            try:
                conv_output_size(self.encoder, self.image_size, self.image_size)
            except ValueError as e:
                need(False, "image_size", str(e))
        for name in ("proprio", "train_appearance", "appearance"):
            default = "train" if name != "proprio" else False
            need(self.pixels or getattr(self, name) == default, name, "it applies to pixel observations: set pixels")
        for name in ("train_appearance", "appearance"):  # table-top levels: robo/* only; held-out: evaluation only
            problem = appearance_problem(self.env, getattr(self, name), training=name == "train_appearance")
            need(problem is None, name, problem or "")
        need(self.pixels or self.augment == "none", "augment", "it applies to pixel observations: set pixels")
        for name in ("smooth_temporal", "smooth_spatial"):
            need(getattr(self, name) == 0 or (not self.pixels and self.core == "none"), name,
                 "it applies to feed-forward policies on state observations: set it to 0, or pixels=False and "
                 "core='none'")
        from vasa.envs.curriculum import check_demo_fields

        check_demo_fields(self)  # demo_path exists and loads for env; demo_ratio/demo_curriculum need it
        from vasa.algos.demo_bc import check_bc_fields

        check_bc_fields(self)  # demo_bc_*: the term needs demo_path and state observations
        if self.demo_separate_advantages:
            need(self.demo_path is not None, "demo_separate_advantages",
                 "it applies to demonstrations: set demo_path")
            need(self.normalize_advantages, "demo_separate_advantages",
                 "it changes how advantages are standardised: set normalize_advantages")

    @property
    def num_iterations(self) -> int:
        """Iterations needed to reach ``total_env_steps`` (rounded up)."""
        return -(-self.total_env_steps // self.env_steps_per_iteration)

    @property
    def env_steps_per_iteration(self) -> int:
        """Environment (task) steps per iteration, action repeats included."""
        return self.batch_size * (self.action_repeat or 1)


def minibatch_group_size(unroll_length: int, num_minibatches: int) -> int:
    """Environments per shuffling group: the fewest whose ``unroll_length`` steps split into
    ``num_minibatches`` equal parts. Shuffling inside fixed groups of *global* environment
    ids makes minibatches identical whatever the number of devices."""
    return num_minibatches // math.gcd(num_minibatches, unroll_length)


__all__ = ["PPOConfig", "minibatch_group_size"]
