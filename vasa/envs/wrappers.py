"""Environment wrappers: action repeat, episode limit (truncation), auto-reset.

All wrappers act on a single environment and stay pure and vmappable; batch with
``jax.vmap``, or step a batch with :func:`batch_step` (``vmap`` that skips the unused resets of
:class:`AutoReset`). :func:`vasa.envs.make` applies them in the order
``AutoReset(EpisodeLimit(ActionRepeat(task)))``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from vasa.envs.core import EnvState


def _select(pred: jax.Array, on_true: Any, on_false: Any) -> Any:
    """Leaf-wise ``where(pred, on_true, on_false)`` for a scalar ``pred`` (per environment)."""
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


class Wrapper:
    """Forwards everything it does not override to the wrapped env."""

    def __init__(self, env):
        self.env = env

    def reset(self, key: jax.Array) -> EnvState:
        return self.env.reset(key)

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        return self.env.step(state, action)

    @property
    def unwrapped(self):
        return getattr(self.env, "unwrapped", self.env)

    def __getattr__(self, name):
        if name == "env":  # not yet set: avoid infinite recursion during unpickling
            raise AttributeError(name)
        return getattr(self.env, name)


class ActionRepeat(Wrapper):
    """Repeat each action ``repeat`` times, summing rewards; stops early inside the repeat
    once the episode has ended (later sub-steps neither move the state nor add reward)."""

    def __init__(self, env, repeat: int):
        if int(repeat) < 1:
            raise ValueError(f"action_repeat={repeat!r} is not allowed: it must be an integer >= 1.")
        super().__init__(env)
        self.repeat = int(repeat)

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        if self.repeat == 1:
            return self.env.step(state, action)

        def sub_step(carry, _):
            s, total = carry
            nxt = self.env.step(s, action)
            ended = s.done > 0
            total = total + jnp.where(ended, 0.0, nxt.reward)
            return (_select(ended, s, nxt), total), None

        start = state.replace(done=jnp.zeros_like(state.done))
        (out, total), _ = jax.lax.scan(sub_step, (start, jnp.zeros_like(state.reward)), None, length=self.repeat)
        return out.replace(reward=total)


class EpisodeLimit(Wrapper):
    """End episodes after ``episode_length`` inner steps (counted before action repeat,
    as Brax and DM Control do), flagging ``truncation=1`` (distinct from termination).

    ``info["steps"]``: ``[] int32`` inner steps taken in the current episode.
    """

    def __init__(self, env, episode_length: int, steps_per_action: int = 1):
        if int(episode_length) < 1:
            raise ValueError(f"episode_length={episode_length!r} is not allowed: it must be >= 1.")
        super().__init__(env)
        self.limit = int(episode_length)
        self.steps_per_action = int(steps_per_action)

    @property
    def episode_length(self) -> int:
        return self.limit

    def reset(self, key):
        state = self.env.reset(key)
        return state.replace(info={**state.info, "steps": jnp.zeros((), jnp.int32)})

    def step(self, state, action):
        nxt = self.env.step(state, action)
        steps = state.info["steps"] + self.steps_per_action
        out_of_time = (steps >= self.limit).astype(jnp.float32)
        truncation = out_of_time * (1.0 - nxt.done)
        done = jnp.maximum(nxt.done, out_of_time)
        return nxt.replace(done=done, truncation=truncation, info={**nxt.info, "steps": steps})


class AutoReset(Wrapper):
    """Start a new episode in place whenever one ends, so a batch of envs never stalls.

    After a step that ended an episode (``done == 1``) the returned state holds the first
    observation of the next episode; the transition's true last observation stays in
    ``info["final_obs"]`` (learners bootstrap from it on truncation). Also tracks episode
    statistics: ``metrics["episode_return"]``/``["episode_length"]`` (running) and
    ``info["final_return"]``/``["final_length"]`` (of the episode that just ended; valid
    where ``done == 1``).

    Args:
      mode: ``"fresh"`` draws a new initial state from a per-env key (``info["reset_key"]``)
        at every reset: the correct semantics, at the cost of evaluating ``reset`` in every
        batched step (``vmap`` turns the branch into a select). ``"cached"`` reuses the
        env's first initial state, as Brax's and Playground's auto-reset wrappers do:
        cheaper, but each env slot replays the same start.
    """

    def __init__(self, env, mode: str = "fresh"):
        if mode not in ("fresh", "cached"):
            raise ValueError(f"reset_mode={mode!r} is not allowed: choose 'fresh' or 'cached'.")
        super().__init__(env)
        self.mode = mode

    def reset(self, key):
        key, reset_key = jax.random.split(key)
        inner = self.env.reset(reset_key)
        zero = jnp.zeros((), jnp.float32)
        info = {
            **inner.info,
            "final_obs": inner.obs,
            "final_return": zero,
            "final_length": zero,
        }
        if self.mode == "fresh":
            info["reset_key"] = key
        else:
            info["first_state"] = inner
        metrics = {**inner.metrics, "episode_return": zero, "episode_length": zero}
        return inner.replace(info=info, metrics=metrics)

    def step(self, state, action):
        return self._finish(state, self._advance(state, action), self._fresh(state))

    def batch_step(self, state, action):
        """``jax.vmap(self.step)(state, action)`` for a batch of environments (leading axis
        ``E``), with the same values, but in ``"fresh"`` mode the next episodes' initial states
        are computed only when some environment of the batch ended this step (``lax.cond`` on
        the batch's ``any(done)``). ``vmap`` turns :meth:`step`'s per-environment branch into a
        select that runs ``reset`` in every step; in a pixel environment that is a second
        rendered frame per step (measured on walker_stand at 48x48, 16 environments: 58 ms per
        step, of which the unused reset's frame ~28). Use it through :func:`batch_step`."""
        nxt = jax.vmap(self._advance)(state, action)
        finish = jax.vmap(self._finish)
        if self.mode != "fresh":
            return finish(state, nxt, jax.vmap(self._fresh)(state))
        return jax.lax.cond(jnp.any(nxt.done > 0), lambda: finish(state, nxt, jax.vmap(self._fresh)(state)),
                            lambda: finish(state, nxt, None))

    def _advance(self, state, action):
        """The wrapped env's step from ``state`` (this wrapper's own entries removed)."""
        own = ("final_obs", "final_return", "final_length", "reset_key", "first_state")
        inner_state = state.replace(
            info={k: v for k, v in state.info.items() if k not in own},
            metrics={k: v for k, v in state.metrics.items() if k not in ("episode_return", "episode_length")},
        )
        return self.env.step(inner_state, action)

    def _fresh(self, state):
        """``(next reset key or None, the next episode's initial state)``."""
        if self.mode == "fresh":
            key, reset_key = jax.random.split(state.info["reset_key"])
            return key, self.env.reset(reset_key)
        return None, state.info["first_state"]

    def _finish(self, state, nxt, fresh):
        """The step's returned state: ``nxt``, or ``fresh = (key, initial state)`` where it
        ended; ``fresh=None``: no environment ended (the same values as any ``fresh`` then)."""
        ep_return = state.metrics["episode_return"] + nxt.reward
        ep_length = state.metrics["episode_length"] + 1.0
        done = nxt.done > 0

        info = dict(state.info)
        if fresh is None:
            physics, obs, inner_info = nxt.physics, nxt.obs, nxt.info
        else:
            key, initial = fresh
            if key is not None:
                info["reset_key"] = jnp.where(done, key, state.info["reset_key"])
            physics = _select(done, initial.physics, nxt.physics)
            obs = _select(done, initial.obs, nxt.obs)
            inner_info = _select(done, {k: initial.info[k] for k in nxt.info}, nxt.info)
        info.update(inner_info)
        info["final_obs"] = nxt.obs
        info["final_return"] = jnp.where(done, ep_return, 0.0)
        info["final_length"] = jnp.where(done, ep_length, 0.0)
        metrics = {
            **nxt.metrics,
            "episode_return": jnp.where(done, 0.0, ep_return),
            "episode_length": jnp.where(done, 0.0, ep_length),
        }
        return nxt.replace(physics=physics, obs=obs, info=info, metrics=metrics)


def batch_step(env, state, action, lazy_reset: bool | None = None):
    """Step a batch of environments (leading axis ``E`` on ``state`` and ``action``): the same as
    ``jax.vmap(env.step)(state, action)``, computed by :meth:`AutoReset.batch_step` when ``env``
    is an :class:`AutoReset` and ``lazy_reset`` (the next episodes' initial states only in steps
    where one ended), else by that ``vmap``.

    ``lazy_reset=None`` (default): on the CPU only. There the ``lax.cond`` saves the unused
    reset (a pixel step 1.4-1.8x faster, a state step about the same, ``benchmarks/batch_step.py``);
    an accelerator decides a ``cond`` by reading its predicate on the host, one synchronisation
    per step, not yet measured against the saved reset (``benchmarks/gpu_session.sh``)."""
    if lazy_reset is None:
        lazy_reset = jax.default_backend() == "cpu"
    if lazy_reset and isinstance(env, AutoReset):  # (not getattr: a Wrapper forwards what it lacks)
        return env.batch_step(state, action)
    return jax.vmap(env.step)(state, action)


CHANNELS = {"rgb": 3, "grey": 1, "rgbd": 4}


class PixelObservation(Wrapper):
    """Turn an MJX-backed env into a visual one: ``obs = {"pixels", "proprio"}``.

    ``pixels``: ``uint8 [height, width, C * frame_stack]``, the last ``frame_stack`` frames
    along the channel axis, oldest first and newest last; ``reset`` fills the stack with
    copies of the first frame. ``C`` is 3 for ``rgb``, 1 for ``grey`` (ITU-R 601 luma) and
    4 for ``rgbd`` (depth as ``uint8``: 0 at the camera, 255 at ``depth_max`` metres or
    beyond, and for background). ``proprio``: the wrapped env's own observation.

    Rendering happens on device, in the same jitted step as the physics (pure JAX ray
    casting, :mod:`vasa.envs.render`). Poses are refreshed from ``qpos`` first, so the frame
    shows the state after the step.

    Appearance: ``appearance`` names a suite of :data:`vasa.envs.randomize.SUITES` (or is an
    :class:`~vasa.envs.randomize.AppearanceRandomization`). ``redraw="episode"`` draws a new
    look from each reset's key (so every env and every episode differs, reproducibly);
    ``"never"`` draws one look from ``seed`` for all envs (with :class:`AutoReset`'s
    ``"cached"`` mode, ``"episode"`` instead keeps each env's first look). The drawn look is
    ``info["appearance"]``; ``info["frame"]`` counts frames for moving backgrounds.

    Quality: ``shading="mujoco"`` (default) lights the scene as MuJoCo's OpenGL renderer
    does (headlight, the model's lights, specular), so the ``train`` look is the look of the
    published DM Control pixel benchmarks (within a few levels of 255 per channel of
    ``mujoco.Renderer``); ``"fast"`` is the original one-light model. ``shadows``,
    ``reflections`` and ``supersample`` add MuJoCo's shadows, floor reflections and
    antialiasing (shadow and mirror rays, ``supersample ** 2`` rays per pixel); they are off
    by default, as together they bring the difference to MuJoCo down by only about 1 level
    (of 255) while shadows or reflections cost 1.2-2x and 2x2 supersampling 3-5x the frame
    time on a CPU (``benchmarks/render_throughput.py``).

    Cost note: under :class:`AutoReset` in ``"fresh"`` mode, ``reset`` (and so one render)
    is evaluated at every batched step; ``"cached"`` avoids that second render.
    """

    def __init__(self, env, *, width: int = 84, height: int = 84, camera: str | int = 0, channels: str = "rgb",
                 frame_stack: int = 3, appearance="train", redraw: str = "episode", seed: int = 0,
                 video=None, shadows: bool = False, depth_max: float = 6.0, shading: str = "mujoco",
                 reflections: bool = False, supersample: int = 1):
        from vasa.envs.randomize import AppearanceSampler, mjx_model_holder
        from vasa.envs.render import Renderer

        if not isinstance(frame_stack, (int,)) or frame_stack < 1:
            raise ValueError(f"frame_stack={frame_stack!r} is not allowed: it must be an integer >= 1.")
        if channels not in CHANNELS:
            raise ValueError(f"channels={channels!r} is not allowed: choose from {tuple(CHANNELS)}.")
        if redraw not in ("episode", "never"):
            raise ValueError(f"redraw={redraw!r} is not allowed: choose 'episode' or 'never'.")
        if depth_max <= 0:
            raise ValueError(f"depth_max={depth_max!r} is not allowed: it must be > 0 metres.")
        super().__init__(env)
        holder, attr = mjx_model_holder(env)
        self._model_holder = (holder, attr)
        mj_model = self.unwrapped.mj_model
        self.renderer = Renderer(mj_model, width, height, shading=shading, shadows=shadows, reflections=reflections,
                                 supersample=supersample, video=video,
                                 optional_geoms=getattr(self.unwrapped, "optional_geoms", ()))
        self.renderer.camera_id(camera)  # unknown cameras fail here, listing the model's
        self.camera = camera
        self.channels = channels
        self.frame_stack = int(frame_stack)
        self.redraw = redraw
        self.seed = int(seed)
        self.depth_max = float(depth_max)
        self.sampler = AppearanceSampler(self.renderer, appearance)

    @property
    def mjx_model(self):
        """The MJX model the wrapped task steps with (a traced per-env one inside
        :class:`~vasa.envs.randomize.RandomizedDynamics`)."""
        holder, attr = self._model_holder
        return getattr(holder, attr)

    @property
    def observation_spec(self):
        from vasa.envs.core import ArraySpec

        c = CHANNELS[self.channels] * self.frame_stack
        pixels = ArraySpec((self.renderer.height, self.renderer.width, c), jnp.uint8, low=0, high=255)
        return {"pixels": pixels, "proprio": self.env.observation_spec}

    def render_frame(self, physics, appearance, frame) -> jax.Array:
        """One ``uint8 [H, W, C]`` frame of ``physics`` (an ``mjx.Data``)."""
        from vasa.envs.render import refresh_kinematics

        data = refresh_kinematics(self.mjx_model, physics)
        want = ("rgb", "depth") if self.channels == "rgbd" else ("rgb",)
        out = self.renderer.render(data, self.camera, appearance, t=frame, outputs=want)
        rgb = out["rgb"]
        if self.channels == "grey":
            luma = rgb.astype(jnp.float32) @ jnp.array([0.299, 0.587, 0.114])
            return jnp.round(luma)[..., None].astype(jnp.uint8)
        if self.channels == "rgbd":
            d = jnp.clip(jnp.nan_to_num(out["depth"], posinf=self.depth_max) / self.depth_max, 0.0, 1.0)
            return jnp.concatenate([rgb, jnp.round(d * 255.0).astype(jnp.uint8)[..., None]], -1)
        return rgb

    def reset(self, key) -> EnvState:
        key, draw = jax.random.split(key)
        inner = self.env.reset(key)
        appearance = self.sampler(jax.random.PRNGKey(self.seed) if self.redraw == "never" else draw)
        frame_t = jnp.zeros((), jnp.int32)
        frame = self.render_frame(inner.physics, appearance, frame_t)
        pixels = jnp.concatenate([frame] * self.frame_stack, axis=-1)
        info = {**inner.info, "appearance": appearance, "frame": frame_t}
        return inner.replace(obs={"pixels": pixels, "proprio": inner.obs}, info=info)

    def step(self, state, action) -> EnvState:
        own = ("appearance", "frame")
        inner = state.replace(obs=state.obs["proprio"], info={k: v for k, v in state.info.items() if k not in own})
        nxt = self.env.step(inner, action)
        appearance, frame_t = state.info["appearance"], state.info["frame"] + 1
        frame = self.render_frame(nxt.physics, appearance, frame_t)
        c = frame.shape[-1]
        pixels = jnp.concatenate([state.obs["pixels"][..., c:], frame], axis=-1)
        info = {**nxt.info, "appearance": appearance, "frame": frame_t}
        return nxt.replace(obs={"pixels": pixels, "proprio": nxt.obs}, info=info)


class RenderedObservation(Wrapper):
    """Pixels for a task that draws itself (pure-JAX toy tasks such as ``toy/reach2d``), as
    :class:`PixelObservation` gives them to MJX tasks: ``obs = {"pixels", "proprio"}``.

    The task provides ``render_rgb(physics, height, width) -> uint8 [height, width, 3]``.
    ``pixels``: ``uint8 [height, width, 3 * frame_stack]``, oldest frame first, the stack
    filled with copies of the first frame on reset; ``proprio``: the task's own observation.
    There is one appearance (the task's own); :func:`vasa.envs.make` refuses other suites,
    channels, videos and shadows for such tasks.
    """

    def __init__(self, env, *, width: int = 84, height: int = 84, frame_stack: int = 3):
        if not isinstance(frame_stack, int) or frame_stack < 1:
            raise ValueError(f"frame_stack={frame_stack!r} is not allowed: it must be an integer >= 1.")
        super().__init__(env)
        self.width, self.height, self.frame_stack = int(width), int(height), int(frame_stack)

    @property
    def observation_spec(self):
        from vasa.envs.core import ArraySpec

        pixels = ArraySpec((self.height, self.width, 3 * self.frame_stack), jnp.uint8, low=0, high=255)
        return {"pixels": pixels, "proprio": self.env.observation_spec}

    def reset(self, key) -> EnvState:
        inner = self.env.reset(key)
        frame = self.env.render_rgb(inner.physics, self.height, self.width)
        return inner.replace(obs={"pixels": jnp.concatenate([frame] * self.frame_stack, axis=-1), "proprio": inner.obs})

    def step(self, state, action) -> EnvState:
        nxt = self.env.step(state.replace(obs=state.obs["proprio"]), action)
        frame = self.env.render_rgb(nxt.physics, self.height, self.width)
        pixels = jnp.concatenate([state.obs["pixels"][..., 3:], frame], axis=-1)
        return nxt.replace(obs={"pixels": pixels, "proprio": nxt.obs})


class OwnCameraObservation(RenderedObservation):
    """Pixels for a task that renders its own camera into its observation ``{"rgb": uint8 [H,
    W, 3], "proprio"?: [P]}`` (``nav/objectnav``): ``obs = {"pixels": uint8 [H, W, 3 *
    frame_stack], "proprio": [P]}`` (``[0]`` without ``"proprio"``), oldest frame first, as
    :class:`PixelObservation` gives them; no second render (the task's frame is reused).
    The image size is the task's (``vasa.envs.make(..., image_size=...)`` passes it on)."""

    def __init__(self, env, *, frame_stack: int = 3):
        spec = env.observation_spec
        if not (isinstance(spec, dict) and "rgb" in spec):
            raise ValueError(f"{type(env).__name__} has no 'rgb' observation to stack (observation keys: "
                             f"{sorted(spec) if isinstance(spec, dict) else spec}).")
        height, width = spec["rgb"].shape[:2]
        super().__init__(env, width=int(width), height=int(height), frame_stack=frame_stack)
        self._proprio = "proprio" in spec

    @property
    def observation_spec(self):
        from vasa.envs.core import ArraySpec

        spec = self.env.observation_spec
        pixels = ArraySpec((self.height, self.width, 3 * self.frame_stack), jnp.uint8, low=0, high=255)
        return {"pixels": pixels, "proprio": spec["proprio"] if self._proprio else ArraySpec((0,), jnp.float32)}

    def _split(self, obs, pixels):
        proprio = obs["proprio"] if self._proprio else jnp.zeros((0,), jnp.float32)
        return {"pixels": pixels, "proprio": proprio}

    def reset(self, key) -> EnvState:
        inner = self.env.reset(key)
        return inner.replace(obs=self._split(inner.obs, jnp.concatenate([inner.obs["rgb"]] * self.frame_stack, axis=-1)))

    def step(self, state, action) -> EnvState:
        pixels = state.obs["pixels"]
        own = {"rgb": pixels[..., -3:], **({"proprio": state.obs["proprio"]} if self._proprio else {})}
        nxt = self.env.step(state.replace(obs=own), action)
        return nxt.replace(obs=self._split(nxt.obs, jnp.concatenate([pixels[..., 3:], nxt.obs["rgb"]], axis=-1)))
