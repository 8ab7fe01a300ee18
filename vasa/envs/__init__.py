"""Environments behind one protocol: ``vasa.envs.make("dmc/cartpole_balance")``.

Ids: ``toy/pendulum`` and ``toy/reach2d`` (pure JAX, compile in about a second; reach2d also
renders itself, for pixel tests), ``toy/cue_memory`` (a cue shown only at the first step:
solvable only with memory, for recurrent policies), ``brax/<name>`` (Brax
locomotion on MJX) and ``dmc/<task>`` (DM Control Suite from MuJoCo Playground, ``impl="jax"``).
"""

from __future__ import annotations

import numbers
import os

from vasa.envs.core import (ArraySpec, Env, EnvId, EnvOptions, EnvState, check_env_id, make_raw, parse_env_options,
                            register, registered_ids)
from vasa.envs.tasks.foreign import BRAX_ENVS, DMC_TASKS
from vasa.envs.wrappers import (ActionRepeat, AutoReset, EpisodeLimit, OwnCameraObservation, PixelObservation,
                                RenderedObservation, Wrapper, batch_step)

__all__ = [
    "ArraySpec", "Env", "EnvId", "EnvOptions", "EnvState", "parse_env_options", "Wrapper", "ActionRepeat", "AutoReset", "EpisodeLimit", "OwnCameraObservation", "PixelObservation",
    "RenderedObservation", "batch_step",
    "make", "make_raw", "register", "registered_ids", "check_env_id", "PIXEL_ACTION_REPEAT", "SECANT_TASKS",
]

# Action repeat for pixel-based DM Control (the PAD/SECANT/DrQ protocol): cartpole 8,
# finger 2, everything else 4.
PIXEL_ACTION_REPEAT = {"cartpole": 8, "finger": 2}
SECANT_TASKS = ("cheetah_run", "ball_in_cup_catch", "cartpole_swingup", "cartpole_balance", "walker_walk",
                "walker_stand", "finger_spin", "reacher_easy")


def pixel_action_repeat(env_id: str) -> int:
    """PAD's action repeat for a ``dmc/<domain>_<task>`` id (1 for ``robo/`` and ``nav/``, 4 for
    other ids)."""
    if env_id.startswith(("robo/", "nav/")):  # one action per control step (robosuite's 20 Hz, LoCoBot's 10 Hz)
        return 1
    domain = env_id.split("/", 1)[-1].split("_", 1)[0]
    return PIXEL_ACTION_REPEAT.get(domain, 4)

register("toy/pendulum", "vasa.envs.tasks.pendulum:pendulum")
register("toy/reach2d", "vasa.envs.tasks.reach2d:reach2d")
register("toy/cue_memory", "vasa.envs.tasks.cue_memory:cue_memory")
register("nav/pointgoal", "vasa.envs.tasks.navigation.pointgoal:pointgoal")
register("nav/interactive_pointgoal", "vasa.envs.tasks.navigation.pointgoal:interactive_pointgoal")
register("nav/objectnav", "vasa.envs.tasks.navigation.objectnav:objectnav")
register("robo/lift", "vasa.envs.tasks.manipulation.lift:lift")
register("robo/nut_assembly", "vasa.envs.tasks.manipulation.nut_assembly:nut_assembly")
register("robo/door", "vasa.envs.tasks.manipulation.door:door")
register("robo/stack", "vasa.envs.tasks.manipulation.stack:stack")
register("robo/pick_place", "vasa.envs.tasks.manipulation.pick_place:pick_place")
register("robo/two_arm_lift", "vasa.envs.tasks.manipulation.two_arm_lift:two_arm_lift")
register("robo/two_arm_peg_in_hole", "vasa.envs.tasks.manipulation.two_arm_peg_in_hole:two_arm_peg_in_hole")
for _name in BRAX_ENVS:
    register(f"brax/{_name}", "vasa.envs.tasks.foreign:brax_env", name=_name)
for _task in DMC_TASKS:
    register(f"dmc/{_task}", "vasa.envs.tasks.foreign:dmc_env", task=_task)


def check_image_size(image_size, field: str = "image_size") -> tuple[int, int]:
    """``(height, width)`` of an image size ``S`` or ``(height, width)``; raises ``ValueError``
    naming ``field`` unless every side is an integer in [1, 1024]."""
    import numpy as np

    def side(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 1 <= v <= 1024

    hw = (image_size, image_size) if isinstance(image_size, (int, np.integer)) else image_size
    if not (isinstance(hw, (tuple, list)) and len(hw) == 2 and all(side(v) for v in hw)):
        raise ValueError(f"{field}={image_size!r} is not allowed: it must be an integer in [1, 1024] or a "
                         "(height, width) tuple of them.")
    return int(hw[0]), int(hw[1])


def _owns_camera(env_id: str) -> bool:
    """Whether ``env_id``'s builder renders its own camera images (takes ``image_size``)."""
    import inspect

    from vasa.envs.core import _REGISTRY, _resolve

    return "image_size" in inspect.signature(_resolve(_REGISTRY[env_id][0])).parameters


def make(
    env_id: str,
    *,
    episode_length: int | None = None,
    action_repeat: int | None = None,
    auto_reset: bool = True,
    reset_mode: str = "fresh",
    pixels: bool = False,
    appearance="train",
    camera: str | int = 0,
    image_size: int | tuple[int, int] | None = None,
    frame_stack: int = 3,
    channels: str = "rgb",
    redraw: str = "episode",
    appearance_seed: int = 0,
    video=None,
    shadows: bool = False,
    shading: str = "mujoco",
    supersample: int = 1,
    dynamics=None,
    demos=None,
    demo_ratio: float = 0.5,
    demo_curriculum: str = "uniform",
    demo_schedule: tuple = (25, 25, 100),
    demo_until_success: bool = True,
    demo_warmup: int = 0,
    demo_anneal: int = 0,
    demo_grow_at: float = 0.0,
    **kwargs,
) -> Env:
    """Build a registered environment with vasa's standard wrappers.

    The result is ``AutoReset([PixelObservation](EpisodeLimit(ActionRepeat([RandomizedDynamics](task)))))``:
    one ``step`` applies the
    action ``action_repeat`` times; episodes are truncated after ``episode_length`` task
    steps (counted before action repeat, as in Brax and DM Control, so DM Control's
    1000-step episodes stay 1000 simulator steps whatever the repeat).

    Args:
      env_id: e.g. ``"toy/pendulum"``, ``"brax/halfcheetah"``, ``"dmc/cartpole_balance"``.
      episode_length: time limit in task steps (default: the task's own, 200 for the toy
        pendulum and 1000 for Brax and DM Control).
      action_repeat: >= 1 (default: the task's own, 1).
      auto_reset: wrap with :class:`AutoReset` (needed for batched training).
      reset_mode: ``"fresh"`` or ``"cached"``, see :class:`AutoReset`.
      pixels: observe ``{"pixels": uint8 [H, W, C * frame_stack], "proprio": ...}``
        rendered on device (:class:`PixelObservation`, or :class:`RenderedObservation` for
        tasks that draw themselves, ``toy/reach2d``, or :class:`OwnCameraObservation` for
        tasks whose observation holds their own camera's ``"rgb"``, ``nav/objectnav``: its
        frames are stacked, ``camera`` is not used); the default action repeat then
        follows PAD (cartpole 8, finger 2, others 4; 1 for ``robo/`` and ``nav/``).
      appearance: a suite name (``train``, ``color_easy``, ``color_hard``, ``video_easy``,
        ``video_hard``; for ``robo/*`` also ``easy``, ``hard``, ``extreme`` and their
        ``_heldout`` variants, :mod:`vasa.envs.randomize_scene`) or an
        :class:`~vasa.envs.randomize.AppearanceRandomization`.
      camera: model camera name or id. image_size: ``S`` or ``(height, width)``, each in
        [1, 1024] (default 84 for the pixel wrapper); tasks with their own cameras (builders
        taking ``image_size``, the ``nav/*`` tasks) receive it too, whenever it is given or
        ``pixels=True``.
      frame_stack, channels (``rgb``/``grey``/``rgbd``), redraw (``episode``/``never``),
      appearance_seed, shadows, shading (``mujoco``: MuJoCo's lighting; ``fast``: one
      light), supersample (rays per pixel side, averaged: 2 antialiases as MuJoCo's
      multisampling does; tasks that render themselves allow 1 only): see
      :class:`PixelObservation`.
      video: background frames for the video suites: a path (see
        :func:`~vasa.envs.randomize.load_video`), a list of paths, or a ``uint8`` array
        ``[F, h, w, 3]``/``[V, F, h, w, 3]``; default: procedural moving backgrounds.
      dynamics: a :class:`~vasa.envs.randomize.DynamicsRandomization` to give each
        environment (and episode) its own masses, friction, damping and gains.
      demos, demo_ratio, demo_curriculum: SURREAL's demonstration curriculum
        (:class:`~vasa.envs.curriculum.DemoCurriculum` around the raw task, its count kept by
        :class:`~vasa.envs.curriculum.DemoProgress` around the auto-reset): with probability
        ``demo_ratio`` an episode starts from a state of ``demos`` (a
        :class:`~vasa.envs.demos.Demos` or an ``.npz`` path), chosen ``uniform``ly or in a
        ``forward``/``reverse`` window; ``demo_schedule`` = ``(window, increment,
        increment_every)`` of that window (robosuite's defaults: 25 steps, growing by 25 every
        100 demonstration starts of an environment); ``demo_until_success``: only states
        before each demonstration's first success; ``demo_warmup``: steps of each environment
        before its first demonstration start (then ``demo_ratio``); ``demo_anneal``: steps of
        each environment after the warm-up over which ``demo_ratio`` falls linearly to 0;
        ``demo_grow_at``: grow the forward/reverse window only when at least this fraction of an
        environment's last ``increment_every`` episodes begun at the window's frontier (where half
        its demonstration starts are drawn) succeeded (0: the schedule; see
        :mod:`vasa.envs.curriculum`).
      **kwargs: passed to the task builder (Brax constructor arguments, Playground config
        overrides).

    Raises:
      ValueError: unknown ``env_id`` (the message lists valid ids, closest first), or
        ``action_repeat``/``episode_length`` < 1, or an unknown ``reset_mode``.
    """
    check_env_id(env_id)
    if action_repeat is not None and int(action_repeat) < 1:
        raise ValueError(f"action_repeat={action_repeat!r} is not allowed: it must be an integer >= 1.")
    if episode_length is not None and int(episode_length) < 1:
        raise ValueError(f"episode_length={episode_length!r} is not allowed: it must be an integer >= 1.")
    if reset_mode not in ("fresh", "cached"):
        raise ValueError(f"reset_mode={reset_mode!r} is not allowed: choose 'fresh' or 'cached'.")
    hw = check_image_size(84 if image_size is None else image_size)
    if (pixels or image_size is not None) and _owns_camera(env_id):
        kwargs = {**kwargs, "image_size": hw}
    task = make_raw(env_id, **kwargs)
    curriculum = None
    if demos is not None:  # SURREAL's demonstration curriculum (vasa.envs.curriculum)
        from vasa.envs.curriculum import add_curriculum

        task = curriculum = add_curriculum(task, env_id, demos, demo_ratio, demo_curriculum, auto_reset=auto_reset,
                                           reset_mode=reset_mode, schedule=demo_schedule,
                                           until_success=demo_until_success, warmup=demo_warmup,
                                           anneal=demo_anneal, grow_at=demo_grow_at)
    if dynamics is not None:
        from vasa.envs.randomize import RandomizedDynamics

        task = RandomizedDynamics(task, dynamics, redraw=redraw, seed=appearance_seed)
    default_repeat = pixel_action_repeat(env_id) if pixels else task.default_action_repeat
    repeat = int(action_repeat or default_repeat)
    env = ActionRepeat(task, repeat)
    env = EpisodeLimit(env, episode_length or task.default_episode_length, steps_per_action=repeat)
    own_rgb = isinstance(task.observation_spec, dict) and "rgb" in task.observation_spec
    if pixels and (hasattr(task, "render_rgb") or own_rgb):  # draws itself (toy/reach2d) or its camera (nav/objectnav)
        height, width = hw
        own = dict(appearance=(appearance, "train"), channels=(channels, "rgb"), video=(video, None), shadows=(shadows, False),
                   shading=(shading, "mujoco"), supersample=(supersample, 1))
        for name, (value, only) in own.items():
            if not (value is only or (isinstance(value, (str, numbers.Integral)) and value == only)):
                raise ValueError(f"{name}={value!r} is not allowed for {env_id}: it renders itself, with one look "
                                 f"({name}={only!r} only).")
        if own_rgb:  # the task's own camera frame, stacked: no second render
            env = OwnCameraObservation(env, frame_stack=frame_stack)
        else:
            env = RenderedObservation(env, width=width, height=height, frame_stack=frame_stack)
    elif pixels:
        height, width = hw
        if isinstance(video, (str, os.PathLike)) or (isinstance(video, (list, tuple)) and video and isinstance(video[0], (str, os.PathLike))):
            from vasa.envs.randomize import load_video, load_videos

            video = load_video(video, (height, width)) if isinstance(video, (str, os.PathLike)) else load_videos(video, (height, width))
        env = PixelObservation(env, width=width, height=height, camera=camera, channels=channels,
                               frame_stack=frame_stack, appearance=appearance, redraw=redraw,
                               seed=appearance_seed, video=video, shadows=shadows, shading=shading,
                               supersample=supersample)
    if auto_reset:
        env = AutoReset(env, mode=reset_mode)
    if curriculum is not None and auto_reset:
        from vasa.envs.curriculum import DemoProgress

        env = DemoProgress(env, curriculum)
    return env
