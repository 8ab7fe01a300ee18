"""Domain randomisation as pure functions of ``(key, scene or model)``.

* Appearance: :class:`AppearanceRandomization` says what to draw (colours per body group,
  floor, sky/background, textures, light, camera jitter); :func:`randomize_appearance`
  draws it into an :class:`~vasa.envs.render.Appearance`. Named suites follow the
  DMControl Generalization Benchmark protocol used by SECANT: ``train`` (the original look),
  ``color_easy``, ``color_hard``, ``video_easy``, ``video_hard`` (:data:`SUITES`). The
  table-top scenes (``robo/*``) also take SECANT's robosuite levels ``easy``, ``hard``,
  ``extreme`` and their ``_heldout`` variants (:mod:`vasa.envs.randomize_scene`).
* Dynamics: :class:`DynamicsRandomization` scales masses, friction, damping and actuator
  gains of an MJX model (:func:`randomize_dynamics`); :class:`RandomizedDynamics` applies a
  per-environment draw inside ``step`` and ``reset``.
* Videos: :func:`load_video` reads background frames from ``.npy``/``.npz`` arrays,
  animated GIF/WebP/PNG files, image folders, or (with PyAV installed) video files.

Everything here is ``vmap``-friendly: ``jax.vmap(randomize_appearance, (0, None, None,
None))(keys, base, suite, groups)`` gives every environment its own look, reproducibly from
its key.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Literal, Sequence, get_args

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from vasa import media
from vasa.envs.core import EnvState
from vasa.envs.render import (BG_GRADIENT, BG_SKYBOX, BG_VIDEO, BG_WAVES, PLANE, TEX_BACKGROUND, TEX_CHECKER, TEX_GRID,
                              TEX_MODEL, TEX_MODEL_RECOLOUR, TEX_NOISE, Appearance, Renderer)
from vasa.envs.wrappers import Wrapper
from vasa.run.fields import NonNegFloat, PosFloat, UnitFloat, check_fields, ordered_pair

ColorMode = Literal["keep", "jitter", "normal", "uniform"]
TextureMode = Literal["keep", "random", "background"]
BackgroundMode = Literal["keep", "color", "waves", "video"]
COLOR_MODES, TEXTURE_MODES, BACKGROUND_MODES = get_args(ColorMode), get_args(TextureMode), get_args(BackgroundMode)
NonNegRange = ordered_pair(NonNegFloat)
PosRange = ordered_pair(PosFloat)


@dataclasses.dataclass(frozen=True)
class AppearanceRandomization:
    """What an appearance draw changes. Colour modes: ``keep``; ``jitter`` (each channel
    moved by U[-color_jitter, color_jitter], clipped to [0, 1]); ``normal`` (each channel
    moved by N(0, color_jitter^2), clipped to [0, 1]: DMControl-GB's colour suites);
    ``uniform`` (each channel U[0, 1]).

    agent_color: colours of the agent, one draw per colour group (geoms sharing a material or
      colour move together; in DMControl models only the ``self`` material, as DMControl-GB:
      :class:`SceneGroups`).
    floor_color: both colours of the floor's checker (planes of the world body); a floor with
      the model's texture keeps its texture map (cells, lines) in the two new colours.
    floor_tied: the floor's second colour keeps its offset from the first (one draw moves
      both, as DMControl-GB's ``grid_rgb2 = grid_rgb1 + 0.1``) instead of a draw of its own.
    sky_color: the background gradient's colours (a skybox keeps its texture, marks included,
      in the new gradient colours).
    sky_top_only: only the gradient's top colour is drawn (DMControl-GB rewrites the skybox's
      ``rgb1`` and keeps its black ``rgb2``).
    static_color: other world-body geoms (rails, targets' anchors).
    color_jitter: amplitude of ``jitter`` (half-width) and ``normal`` (standard deviation).
    agent_texture_prob: probability that an agent colour group gets a random procedural
      texture (checker, grid or noise) instead of a plain colour.
    floor_texture: ``keep``; ``random`` (checker, grid or noise at a random scale);
      ``background`` (the floor shows the background, as video_hard).
    background: ``keep`` (the model's sky), ``color`` (``sky_color`` applies), ``waves``
      (procedural moving background), ``video`` (frames of the renderer's video, or waves
      when the renderer has none).
    light_dir_jitter_deg: the light's direction is rotated by up to this angle.
    light_intensity: (low, high) multiplier of the diffuse intensity; ambient likewise.
    camera_pos_jitter: metres per axis (camera frame); camera_rot_jitter_deg: degrees per
    axis; fovy_jitter_deg: degrees.
    """

    name: str = "custom"
    agent_color: ColorMode = "keep"
    floor_color: ColorMode = "keep"
    floor_tied: bool = False
    sky_color: ColorMode = "keep"
    sky_top_only: bool = False
    static_color: ColorMode = "keep"
    color_jitter: NonNegFloat = 0.2
    agent_texture_prob: UnitFloat = 0.0
    floor_texture: TextureMode = "keep"
    background: BackgroundMode = "keep"
    light_dir_jitter_deg: NonNegFloat = 0.0
    light_intensity: NonNegRange = (1.0, 1.0)
    ambient: NonNegRange = (1.0, 1.0)
    camera_pos_jitter: NonNegFloat = 0.0
    camera_rot_jitter_deg: NonNegFloat = 0.0
    fovy_jitter_deg: NonNegFloat = 0.0

    def validate(self):
        """Check every field (type, finiteness, range, choice); returns ``self``."""
        check_fields(self)
        return self

    @property
    def is_identity(self) -> bool:
        return self == AppearanceRandomization(name=self.name)


SUITES: dict[str, AppearanceRandomization] = {
    s.name: s
    for s in (
        AppearanceRandomization(name="train"),
        # DMControl-GB's colour suites (its color_easy.pt / color_hard.pt: 100 draws each of
        # the ``self`` material, the floor grid's rgb1 (rgb2 = rgb1 + 0.1) and the skybox's rgb1,
        # every channel the default plus N(0, 0.1^2) or N(0, 0.2^2), clipped to [0, 1])
        AppearanceRandomization(name="color_easy", agent_color="normal", floor_color="normal", floor_tied=True,
                                sky_color="normal", sky_top_only=True, background="color", color_jitter=0.1),
        AppearanceRandomization(name="color_hard", agent_color="normal", floor_color="normal", floor_tied=True,
                                sky_color="normal", sky_top_only=True, background="color", color_jitter=0.2),
        AppearanceRandomization(name="video_easy", background="video"),
        AppearanceRandomization(name="video_hard", background="video", floor_texture="background"),
    )
}
SCENE_LEVEL_NAMES = ("easy", "hard", "extreme", "easy_heldout", "hard_heldout", "extreme_heldout")
"""The table-top levels (``robo/*`` only): :data:`vasa.envs.randomize_scene.SCENE_LEVELS`."""
SuiteName = Literal["train", "color_easy", "color_hard", "video_easy", "video_hard",
                    "easy", "hard", "extreme", "easy_heldout", "hard_heldout", "extreme_heldout"]
"""A config field naming one of :data:`SUITES` or :data:`SCENE_LEVEL_NAMES`."""
assert get_args(SuiteName) == tuple(SUITES) + SCENE_LEVEL_NAMES, "SuiteName must list SUITES and SCENE_LEVEL_NAMES"


def suite(appearance):
    """A named suite (:data:`SUITES`) or table-top level (:data:`SCENE_LEVEL_NAMES`, a
    :class:`~vasa.envs.randomize_scene.SceneLevel`), or a custom :class:`AppearanceRandomization`
    or ``SceneLevel`` (validated)."""
    from vasa.envs.randomize_scene import SCENE_LEVELS, SceneLevel

    if isinstance(appearance, (AppearanceRandomization, SceneLevel)):
        return appearance.validate()
    if appearance in SCENE_LEVELS:
        return SCENE_LEVELS[appearance]
    if appearance not in SUITES:
        raise ValueError(f"appearance={appearance!r} is not allowed: choose one of {get_args(SuiteName)} "
                         "(the last six for robo/* tasks only) or pass an AppearanceRandomization.")
    return SUITES[appearance]


def appearance_problem(env_id: str, appearance, training: bool = False) -> str | None:
    """Why ``appearance`` does not fit ``env_id`` (``None`` when it does): the table-top
    levels need a ``robo/*`` task, and the ``_heldout`` variants are for evaluation only
    (``training=True``: the appearance an agent trains under)."""
    if not isinstance(appearance, str) or appearance not in SCENE_LEVEL_NAMES:
        return None
    if not str(env_id).startswith("robo/"):
        return (f"the levels {', '.join(SCENE_LEVEL_NAMES)} apply to robo/* table-top tasks only; for {env_id} "
                f"choose from {', '.join(SUITES)}")
    if training and appearance.endswith("_heldout"):
        return (f"held-out levels are for evaluation only: train under one of train, "
                f"{', '.join(n for n in SCENE_LEVEL_NAMES if not n.endswith('_heldout'))}")
    return None


DMC_SELF_MATERIAL = "self"
"""DMControl's material of the agent's body: the one DMControl-GB's colour suites recolour."""
DMC_FLOOR_MATERIAL = "grid"
"""DMControl's floor material: the only floor DMControl-GB's suites recolour (reacher's
arena sides, ``decoration``, keep their colour)."""


@dataclasses.dataclass(frozen=True)
class SceneGroups:
    """Static partition of a model's geoms for appearance draws (numpy, [G] each).

    Which geoms the agent colour draws move: in a DMControl model (one with a material named
    ``self``) only the geoms of that material, as DMControl-GB's colour suites do (they rewrite
    the ``self`` material's rgba and nothing else; the reacher's target and finger, the
    ball_in_cup ball, the finger's tip and decorations keep their colours). In any other model
    (the table-top and indoor scenes, toy tasks) every geom of a non-world body, one colour
    group per material or per distinct rgba.

    The floor: planes of the world body; in a DMControl model (one with a material named
    ``grid``) only the planes of that material, the rest of the world's planes count as static.
    """

    floor: np.ndarray  # bool: planes of the world body
    static: np.ndarray  # bool: other world-body geoms
    agent_group: np.ndarray  # int: colour group of the geoms agent colour draws move, -1 elsewhere
    num_agent_groups: int

    @classmethod
    def from_model(cls, mj_model) -> "SceneGroups":
        m = mj_model
        world = m.geom_bodyid == 0
        floor = world & (m.geom_type == PLANE)
        grid_mat = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_MATERIAL, DMC_FLOOR_MATERIAL)
        if grid_mat >= 0:  # DMControl-GB: the ``grid`` floor only
            floor = floor & (m.geom_matid == grid_mat)
        static = world & ~floor
        keys, group = {}, np.full(m.ngeom, -1, np.int32)
        recoloured = ~world
        self_mat = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_MATERIAL, DMC_SELF_MATERIAL)
        if self_mat >= 0:  # DMControl-GB: the ``self`` material only
            recoloured = recoloured & (m.geom_matid == self_mat)
        for g in np.nonzero(recoloured)[0]:
            key = ("mat", int(m.geom_matid[g])) if m.geom_matid[g] >= 0 else ("rgba", tuple(np.round(m.geom_rgba[g], 4)))
            group[g] = keys.setdefault(key, len(keys))
        return cls(floor=floor, static=static, agent_group=group, num_agent_groups=max(len(keys), 1))


def _draw_color(key, base, mode, jitter):
    if mode == "uniform":
        return jax.random.uniform(key, base.shape)
    if mode == "jitter":
        return jnp.clip(base + jax.random.uniform(key, base.shape, minval=-jitter, maxval=jitter), 0.0, 1.0)
    if mode == "normal":
        return jnp.clip(base + jitter * jax.random.normal(key, base.shape), 0.0, 1.0)
    return base


def turn_lights(app: Appearance, axis: jax.Array, angle: jax.Array, intensity: jax.Array, ambient: jax.Array
                ) -> Appearance:
    """Turn ``app``'s light direction by ``angle`` radians about ``axis [3]`` projected
    perpendicular to it (any non-parallel direction), and scale its diffuse intensity and
    ambient by ``intensity`` and ``ambient`` (``[]`` each)."""
    d = app.light_dir / jnp.linalg.norm(app.light_dir)
    axis = jnp.cross(d, axis)
    axis = axis / jnp.maximum(jnp.linalg.norm(axis), 1e-9)
    d = d * jnp.cos(angle) + jnp.cross(axis, d) * jnp.sin(angle)  # axis is perpendicular to d
    return app.replace(light_dir=d, light_intensity=app.light_intensity * intensity, ambient=app.ambient * ambient)


def move_camera(app: Appearance, pos: jax.Array, rot: jax.Array, fovy: jax.Array) -> Appearance:
    """Add camera jitter: ``pos [3]`` metres and ``rot [3]`` radians (camera frame), ``fovy []`` degrees."""
    return app.replace(cam_pos_offset=app.cam_pos_offset + pos, cam_rot_offset=app.cam_rot_offset + rot,
                       fovy_offset=app.fovy_offset + fovy)


def randomize_appearance(key: jax.Array, base: Appearance, spec: AppearanceRandomization, groups: SceneGroups,
                         num_videos: int = 0, video_frames: int = 1) -> Appearance:
    """Draw one appearance from ``spec`` around ``base`` (pure; vmap over ``key``).

    Args:
      key: PRNG key; the same key gives the same appearance.
      base: the scene's own look, ``renderer.default_appearance()``.
      spec: what to change (a suite from :data:`SUITES` or a custom one).
      groups: :meth:`SceneGroups.from_model` of the same model.
      num_videos, video_frames: shape of the renderer's video (``background="video"``
        draws a video and a start frame); 0 videos means procedural waves instead.

    Only the fields ``spec`` names change: geometry, depth and segmentation never do.
    """
    if spec.is_identity:
        return base
    ks = iter(jax.random.split(key, 16))
    app = base
    rgb, rgb2, tex, scale = app.geom_rgb, app.geom_rgb2, app.geom_texture, app.geom_texture_scale
    # agent: one draw per colour group, gathered onto its geoms
    agent = jnp.asarray(groups.agent_group >= 0)
    gidx = jnp.asarray(np.maximum(groups.agent_group, 0))
    if spec.agent_color != "keep":
        # the group's reference colour is its first geom's colour
        first = np.array([np.argmax(groups.agent_group == k) for k in range(groups.num_agent_groups)])
        drawn = _draw_color(next(ks), rgb[first], spec.agent_color, spec.color_jitter)
        drawn2 = jnp.clip(drawn * 0.6, 0, 1)
        rgb = jnp.where(agent[:, None], drawn[gidx], rgb)
        rgb2 = jnp.where(agent[:, None], drawn2[gidx], rgb2)
    k_tex = next(ks)
    if spec.agent_texture_prob > 0:
        k1, k2, k3, k4 = jax.random.split(k_tex, 4)
        n = groups.num_agent_groups
        textured = jax.random.bernoulli(k1, spec.agent_texture_prob, (n,))
        kind = jax.random.choice(k2, jnp.array([TEX_CHECKER, TEX_GRID, TEX_NOISE]), (n,))
        second = jax.random.uniform(k3, (n, 3))
        cell = jax.random.uniform(k4, (n,), minval=0.02, maxval=0.1)
        tex = jnp.where(agent & textured[gidx], kind[gidx], tex)
        rgb2 = jnp.where((agent & textured[gidx])[:, None], second[gidx], rgb2)
        scale = jnp.where(agent & textured[gidx], cell[gidx], scale)
    floor = jnp.asarray(groups.floor)
    if spec.floor_color != "keep":
        k1, k2 = jax.random.split(next(ks))
        c1 = _draw_color(k1, rgb, spec.floor_color, spec.color_jitter)
        if spec.floor_tied:
            c2 = jnp.clip(c1 + (rgb2 - rgb), 0.0, 1.0)
        else:
            c2 = _draw_color(k2, rgb2, spec.floor_color, spec.color_jitter)
        rgb = jnp.where(floor[:, None], c1, rgb)
        rgb2 = jnp.where(floor[:, None], c2, rgb2)
        # a floor drawn with the model's texture keeps its map with the two colours swapped (as
        # DMControl-GB rewrites the grid's rgb1/rgb2: reacher's 0.6 m floor is one cell of it);
        # an untextured floor gets a procedural checker in the two colours
        tex = jnp.where(floor & (tex == TEX_MODEL), TEX_MODEL_RECOLOUR,
                        jnp.where(floor & (tex != TEX_BACKGROUND), TEX_CHECKER, tex))
    k_floor = next(ks)
    if spec.floor_texture == "random":
        k1, k2, k3 = jax.random.split(k_floor, 3)
        tex = jnp.where(floor, jax.random.choice(k1, jnp.array([TEX_CHECKER, TEX_GRID, TEX_NOISE])), tex)
        scale = jnp.where(floor, jax.random.uniform(k2, (), minval=0.1, maxval=0.6), scale)
        rgb2 = jnp.where(floor[:, None], jax.random.uniform(k3, (3,)), rgb2)
    elif spec.floor_texture == "background":
        tex = jnp.where(floor, TEX_BACKGROUND, tex)
    if spec.static_color != "keep":
        static = jnp.asarray(groups.static)
        rgb = jnp.where(static[:, None], _draw_color(next(ks), rgb, spec.static_color, spec.color_jitter), rgb)
    app = app.replace(geom_rgb=rgb, geom_rgb2=rgb2, geom_texture=tex.astype(jnp.int32), geom_texture_scale=scale)

    k_bg = next(ks)
    if spec.background == "color":
        k1, k2 = jax.random.split(k_bg)
        # a skybox stays (its gradient recoloured, its marks kept); otherwise a gradient
        bottom = app.bg_bottom if spec.sky_top_only else _draw_color(k2, app.bg_bottom, spec.sky_color, spec.color_jitter)
        app = app.replace(background=jnp.where(app.background == BG_SKYBOX, BG_SKYBOX, BG_GRADIENT).astype(jnp.int32),
                          bg_top=_draw_color(k1, app.bg_top, spec.sky_color, spec.color_jitter), bg_bottom=bottom)
    elif spec.background in ("waves", "video"):
        k1, k2, k3, k4, k5, k6, k7 = jax.random.split(k_bg, 7)
        sign = jnp.where(jax.random.bernoulli(k5, 0.5, (3, 2)), 1.0, -1.0)
        app = app.replace(
            background=jnp.asarray(BG_VIDEO if (spec.background == "video" and num_videos > 0) else BG_WAVES, jnp.int32),
            wave_rgb=jax.random.uniform(k1, (3, 3)),
            wave_freq=sign * jax.random.uniform(k2, (3, 2), minval=0.5, maxval=3.0),
            wave_speed=jax.random.uniform(k3, (3,), minval=-0.3, maxval=0.3),
            wave_phase=jax.random.uniform(k4, (3,), maxval=2 * jnp.pi),
            video_index=jax.random.randint(k6, (), 0, max(num_videos, 1)),
            video_offset=jax.random.randint(k7, (), 0, max(video_frames, 1)),
        )
    k_light = next(ks)
    if spec.light_dir_jitter_deg > 0 or spec.light_intensity != (1.0, 1.0) or spec.ambient != (1.0, 1.0):
        k1, k2, k3 = jax.random.split(k_light, 3)
        ki, ka = jax.random.split(k3)
        angle = jnp.deg2rad(spec.light_dir_jitter_deg) * jax.random.uniform(k2, ())
        app = turn_lights(app, jax.random.normal(k1, (3,)), angle,
                          jax.random.uniform(ki, (), minval=spec.light_intensity[0], maxval=spec.light_intensity[1]),
                          jax.random.uniform(ka, (), minval=spec.ambient[0], maxval=spec.ambient[1]))
    k_cam = next(ks)
    if spec.camera_pos_jitter > 0 or spec.camera_rot_jitter_deg > 0 or spec.fovy_jitter_deg > 0:
        k1, k2, k3 = jax.random.split(k_cam, 3)
        u = lambda k, shape, a: jax.random.uniform(k, shape, minval=-a, maxval=a)  # noqa: E731
        app = move_camera(app, u(k1, (3,), spec.camera_pos_jitter), u(k2, (3,), np.deg2rad(spec.camera_rot_jitter_deg)),
                          u(k3, (), spec.fovy_jitter_deg))
    return app


class AppearanceSampler:
    """``sampler(key) -> Appearance`` for one renderer and one suite (pure, vmappable)."""

    def __init__(self, renderer: Renderer, appearance: str | AppearanceRandomization = "train"):
        from vasa.envs.randomize_scene import SceneLevel, TableScene

        self.renderer = renderer
        self.spec = suite(appearance)
        self.groups = SceneGroups.from_model(renderer.model)
        self.scene = None
        if isinstance(self.spec, SceneLevel):
            self.scene = TableScene.from_model(renderer.model, self.spec.name)
            if self.spec.distractors and not renderer.optional[self.scene.distractors].all():
                raise ValueError(f"appearance={self.spec.name!r} shows distractors: build the Renderer with "
                                 "optional_geoms=task.optional_geoms (PixelObservation does).")
        self.base = renderer.default_appearance()
        v = renderer.video
        self.num_videos, self.video_frames = (0, 1) if v is None else (int(v.shape[0]), int(v.shape[1]))

    def __call__(self, key: jax.Array) -> Appearance:
        if self.scene is not None:
            from vasa.envs.randomize_scene import randomize_scene

            return randomize_scene(key, self.base, self.spec, self.scene, self.groups)
        return randomize_appearance(key, self.base, self.spec, self.groups, self.num_videos, self.video_frames)


# ----------------------------------------------------------------------------------------
# videos
# ----------------------------------------------------------------------------------------

_IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp")
_ANIMATED_EXT = (".gif", ".webp", ".apng", ".png")


def _resize(frames: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None:
        return frames
    h, w = size
    rows = np.arange(h) * frames.shape[1] // h
    cols = np.arange(w) * frames.shape[2] // w
    return frames[:, rows][:, :, cols]


def _as_rgb_uint8(frames: np.ndarray, source: str) -> np.ndarray:
    """``uint8 [F, h, w, 3]`` from an array's frames: ``uint8`` as is; floats with every value
    in ``[0, 1]`` are scaled by 255; other values are rounded and clipped to 0-255."""
    frames = np.asarray(frames)
    if frames.ndim == 3:  # [F, h, w] grey
        frames = frames[..., None]
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3, 4):
        raise media.MediaFileError(source, f"has shape {frames.shape}: expected [frames, height, width, 1|3|4]")
    if not (np.issubdtype(frames.dtype, np.number) or frames.dtype == np.bool_):
        raise media.MediaFileError(source, f"holds {frames.dtype} values: frames must be numbers")
    if np.issubdtype(frames.dtype, np.inexact):
        bad = ~np.isfinite(frames)
        if bad.any():
            first = int(np.argmax(bad.reshape(len(frames), -1).any(1)))
            problem = (f"contains NaN/inf values ({int(bad.sum())}, the first in frame {first}); "
                       "frames must be finite: 0-255, or floats in 0-1 (scaled by 255)")
            raise media.MediaFileError(source, problem)
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, -1)
    frames = frames[..., :3]
    if frames.dtype != np.uint8:
        if np.issubdtype(frames.dtype, np.floating) and frames.max(initial=0) <= 1.0:
            frames = frames * 255.0
        frames = np.clip(np.round(frames), 0, 255).astype(np.uint8)
    return frames


def _read_array(path: str) -> np.ndarray:
    """The frames array of a ``.npy`` file, or of a ``.npz`` archive (``frames``, else its first array)."""
    media.require_nonempty(path)
    npz = path.lower().endswith(".npz")
    with open(path, "rb") as f:
        head = f.read(6)
    if head[:4 if npz else 6] != (b"PK\x03\x04" if npz else b"\x93NUMPY"):
        raise media.MediaFileError(path, "not a NumPy .npz archive" if npz else "not a NumPy array file (.npy)")
    try:
        if not npz:
            return np.load(path)
        with np.load(path) as z:
            if not z.files:
                raise media.MediaFileError(path, "holds no arrays")
            return z["frames"] if "frames" in z.files else z[z.files[0]]
    except media.MediaFileError:
        raise
    except Exception as e:  # NumPy and zipfile report broken files with many error types
        what = "archive" if npz else "array file"
        raise media.MediaFileError(path, f"truncated or corrupt NumPy {what}, or one holding Python objects "
                                         f"({type(e).__name__}: {e})") from e


def load_video(path: str | os.PathLike, size: tuple[int, int] | None = (84, 84), max_frames: int | None = None) -> np.ndarray:
    """Read background frames as ``uint8 [F, h, w, 3]`` (resized to ``size`` by nearest
    neighbour; ``None`` keeps the file's size).

    Accepted: ``.npy`` (``[F, h, w, C]``; ``uint8``, or numbers rounded and clipped to 0-255,
    floats all in ``[0, 1]`` scaled by 255 first), ``.npz`` (the array ``frames``, else the
    first), animated ``.gif``/``.webp``/``.png`` and still images (Pillow), a folder of
    images (sorted by name, one frame each, all of one size), and other video files
    (``.mp4``, ``.avi``, ...) through PyAV when it is installed (``pip install 'vasa[video]'``).
    A file that cannot be used raises :class:`vasa.media.MediaFileError` (a ``ValueError``)
    naming it (for a folder, the image at fault) and the problem.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"video={path!r} does not exist.")
    low = path.lower()
    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.lower().endswith(_IMAGE_EXT))
        if not files:
            raise media.MediaFileError(path, f"video folder holds no images ({', '.join(_IMAGE_EXT)})")
        paths = [os.path.join(path, f) for f in files[:max_frames]]
        frames = media.stack_frames([media.read_image(p) for p in paths], paths)
    elif low.endswith((".npy", ".npz")):
        frames = _read_array(path)
    elif low.endswith(_ANIMATED_EXT + _IMAGE_EXT):
        frames = media.read_animation(path, max_frames)
    else:
        frames = media.read_video(path, max_frames)
    frames = _as_rgb_uint8(frames, path)[:max_frames]
    if len(frames) == 0:
        raise media.MediaFileError(path, "holds no frames")
    return _resize(frames, size)


def load_videos(paths: Sequence[str | os.PathLike], size: tuple[int, int] = (84, 84),
                max_frames: int | None = None) -> np.ndarray:
    """Several videos as ``uint8 [V, F, h, w, 3]`` (cut to the shortest)."""
    videos = [load_video(p, size, max_frames) for p in paths]
    f = min(len(v) for v in videos)
    return np.stack([v[:f] for v in videos])


# ----------------------------------------------------------------------------------------
# dynamics
# ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DynamicsRandomization:
    """Multiplicative ranges (low, high), drawn uniformly per environment:

    mass: every body's mass (and inertia, so densities scale consistently);
    friction: every geom's sliding friction; damping: every dof's damping;
    actuator_gain: every actuator's gain (``gainprm[0]``, and ``biasprm[1]`` so that
    position servos keep ``kp`` consistent).
    """

    mass: PosRange = (0.8, 1.2)
    friction: PosRange = (0.5, 1.5)
    damping: PosRange = (0.8, 1.2)
    actuator_gain: PosRange = (0.8, 1.2)

    def validate(self):
        """Check every field (type, finiteness, range); returns ``self``."""
        check_fields(self)
        return self


DYNAMICS_FIELDS = ("body_mass", "body_inertia", "geom_friction", "dof_damping", "actuator_gainprm", "actuator_biasprm")


def randomize_dynamics(key: jax.Array, model, spec: DynamicsRandomization = DynamicsRandomization()) -> dict[str, jax.Array]:
    """Draw scaled physical parameters of an MJX ``model``; returns ``{field: array}`` for
    :data:`DYNAMICS_FIELDS`, ready for ``model.replace(**fields)`` (pure; vmap over key)."""
    k = jax.random.split(key, 4)
    u = lambda kk, shape, r: jax.random.uniform(kk, shape, minval=r[0], maxval=r[1])  # noqa: E731
    mass = u(k[0], model.body_mass.shape, spec.mass)
    fric = u(k[1], model.geom_friction.shape[:1], spec.friction)
    damp = u(k[2], model.dof_damping.shape, spec.damping)
    gain = u(k[3], model.actuator_gainprm.shape[:1], spec.actuator_gain)
    return {
        "body_mass": model.body_mass * mass,
        "body_inertia": model.body_inertia * mass[:, None],
        "geom_friction": model.geom_friction.at[:, 0].multiply(fric),
        "dof_damping": model.dof_damping * damp,
        "actuator_gainprm": model.actuator_gainprm.at[:, 0].multiply(gain),
        "actuator_biasprm": model.actuator_biasprm.at[:, 1].multiply(gain),
    }


def mjx_model_holder(env):
    """``(object, attribute)`` holding the MJX model an env steps with: Playground's
    ``_mjx_model`` or Brax's ``sys``. Raises ``ValueError`` for non-MJX envs."""
    inner = getattr(env, "unwrapped", env)
    inner = getattr(inner, "env", inner)
    for attr in ("_mjx_model", "sys"):
        if hasattr(inner, attr):
            return inner, attr
    raise ValueError(f"{type(inner).__name__} is not an MJX-backed environment: dynamics randomisation and pixels "
                     "need a brax/* or dmc/* env.")


class RandomizedDynamics(Wrapper):
    """Give each environment its own physical parameters (vmap-friendly).

    The draw is stored in ``info["dynamics"]`` and swapped into the simulator's model for the
    duration of each ``reset``/``step`` (a traced replacement, so under ``vmap`` every env
    steps with its own parameters). ``redraw="episode"`` draws new parameters at every reset;
    ``"never"`` uses one draw from ``seed`` for every environment.
    """

    def __init__(self, env, spec: DynamicsRandomization = DynamicsRandomization(), redraw: str = "episode", seed: int = 0):
        if redraw not in ("episode", "never"):
            raise ValueError(f"redraw={redraw!r} is not allowed: choose 'episode' or 'never'.")
        super().__init__(env)
        self.spec = spec.validate()
        self.redraw = redraw
        self.seed = int(seed)
        self._holder, self._attr = mjx_model_holder(env)
        self.base_model = getattr(self._holder, self._attr)

    def _run(self, fields, fn, *args):
        model = self.base_model.replace(**fields)
        setattr(self._holder, self._attr, model)
        try:
            return fn(*args)
        finally:
            setattr(self._holder, self._attr, self.base_model)

    def reset(self, key) -> EnvState:
        key, draw = jax.random.split(key)
        if self.redraw == "never":
            draw = jax.random.PRNGKey(self.seed)
        fields = randomize_dynamics(draw, self.base_model, self.spec)
        state = self._run(fields, self.env.reset, key)
        return state.replace(info={**state.info, "dynamics": fields})

    def step(self, state, action) -> EnvState:
        fields = state.info["dynamics"]
        inner = state.replace(info={k: v for k, v in state.info.items() if k != "dynamics"})
        nxt = self._run(fields, self.env.step, inner, action)
        return nxt.replace(info={**nxt.info, "dynamics": fields})
