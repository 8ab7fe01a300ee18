"""Appearance levels of the table-top scenes (``robo/*``), after SECANT's robosuite protocol.

SECANT (Fan et al., ICML 2021; thesis ch. 5.5.3, table 5.5) trains manipulation agents on
the clean scene and evaluates them on three progressively harder sets, ``easy``, ``hard``
and ``extreme``, "with more distracting textures of the table, floor, and objects". Here
(:data:`SCENE_LEVELS`):

* ``train``: the scene's own look (:data:`vasa.envs.randomize.SUITES`, as for DM Control).
* ``easy``: new plain, muted colours of about the scene's brightness (HSV saturation
  0.1-0.35, value 0.4-0.7) for the table top, the floor (its checker kept, recoloured) and
  the walls; light direction turned by up to 10 degrees, diffuse intensity x U[0.9, 1.1].
* ``hard``: saturated colours (saturation 0.5-1, value 0.15-1), and with probability 0.8
  per surface a procedural texture (checker, grid or noise; cells 3-30 cm, a second random
  colour); light turned by up to 30 degrees, diffuse and ambient x U[0.5, 1.5].
* ``extreme``: ``hard`` with every surface textured, the robot and the task's objects
  recoloured (one colour per colour group, as the surfaces'), small camera pose jitter (+-2 cm
  per axis, +-2 degrees per axis, field of view +-2 degrees) and the five distractor objects of
  :func:`vasa.envs.scenes.table.add_backdrop` shown in vivid random colours at random
  positions on the table top (0.12-0.32 m from its centre).

Every level draws from one key layout (surfaces, then lights and camera, then distractors),
so one key gives nested looks: ``extreme`` is ``hard``'s look with the remaining surfaces
textured, the robot and objects recoloured, the camera moved and distractors added. Draws
are per environment and per episode through :class:`~vasa.envs.wrappers.PixelObservation`
(``redraw="episode"``).

Held-out variants (``easy_heldout``, ``hard_heldout``, ``extreme_heldout``): the same levels
drawn from a disjoint part of the colour and texture space, for evaluation after training
with a level (domain randomisation; SECANT's "unseen" test scenes). Every colour (surfaces,
second texture colours, robot and objects, distractors) is drawn in HSV with its hue in one
of :data:`NUM_HUE_SECTORS` sectors of the hue circle: even sectors for the plain levels, odd
ones for the held-out variants, and only the inner :data:`SECTOR_FILL` of a sector is used
(a gap between the two sets). Saturation and value are > 0, where HSV -> RGB is one-to-one,
so no held-out colour can ever be drawn by a plain level. Texture cell sizes alternate the
same way over :data:`NUM_CELL_BANDS` log-spaced bands of 3-30 cm. Lights, camera jitter,
texture kinds and distractor positions are shared (SECANT holds out looks, not poses).

Appearance never changes physics: only the :class:`~vasa.envs.render.Appearance` changes;
the walls and distractors are visual-only geoms (``contype = conaffinity = 0``), and the
distractors' positions live in ``Appearance.geom_offset``, not in the simulator state.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from vasa.envs.randomize import SCENE_LEVEL_NAMES, SceneGroups, move_camera, turn_lights
from vasa.envs.render import TEX_CHECKER, TEX_GRID, TEX_NOISE, Appearance
from vasa.envs.render_textures import TEX_NONE
from vasa.envs.scenes import table
from vasa.run.fields import NonNegFloat, UnitFloat, check_fields, ordered_pair

NUM_HUE_SECTORS = 12  # 30 degrees each; even: plain levels, odd: held-out variants
SECTOR_FILL = (0.02, 0.98)  # the part of a sector (or cell band) draws use
NUM_CELL_BANDS = 8
CELL_RANGE = (0.03, 0.3)  # metres, procedural texture cells
DISTRACTOR_RADIUS = (0.12, 0.32)  # metres from the table's centre
SURFACES = ("table", "floor", "walls")
UnitRange = ordered_pair(UnitFloat)
NonNegRange = ordered_pair(NonNegFloat)


@dataclasses.dataclass(frozen=True)
class SceneLevel:
    """One appearance level of the table-top scenes (see the module docstring).

    saturation, value: HSV ranges of the table, floor and wall colours (> 0).
    texture_prob: probability that a surface gets a procedural texture.
    light_dir_jitter_deg, light_intensity, ambient, camera_pos_jitter (metres),
    camera_rot_jitter_deg, fovy_jitter_deg: as in
    :class:`~vasa.envs.randomize.AppearanceRandomization`.
    object_colors: recolour the robot and the task's objects (one colour per colour group).
    distractors: show the distractor objects. held_out: draw from the held-out colour and
    texture space (odd hue sectors and cell bands).
    """

    name: str = "custom"
    saturation: UnitRange = (0.15, 0.45)
    value: UnitRange = (0.45, 0.85)
    texture_prob: UnitFloat = 0.0
    light_dir_jitter_deg: NonNegFloat = 0.0
    light_intensity: NonNegRange = (1.0, 1.0)
    ambient: NonNegRange = (1.0, 1.0)
    camera_pos_jitter: NonNegFloat = 0.0
    camera_rot_jitter_deg: NonNegFloat = 0.0
    fovy_jitter_deg: NonNegFloat = 0.0
    object_colors: bool = False
    distractors: bool = False
    held_out: bool = False

    def validate(self) -> SceneLevel:
        """Check every field (type, range, choice); saturation and value must be > 0."""
        check_fields(self)
        for field in ("saturation", "value"):
            if getattr(self, field)[0] <= 0:
                raise ValueError(f"SceneLevel.{field}={getattr(self, field)!r} is not allowed: its low end must be "
                                 "> 0 (held-out colours are disjoint only where hue is defined).")
        return self



_EASY = SceneLevel("easy", saturation=(0.1, 0.35), value=(0.4, 0.7), light_dir_jitter_deg=10.0,
                   light_intensity=(0.9, 1.1))
_HARD = SceneLevel("hard", saturation=(0.5, 1.0), value=(0.15, 1.0), texture_prob=0.8, light_dir_jitter_deg=30.0,
                   light_intensity=(0.5, 1.5), ambient=(0.5, 1.5))
_EXTREME = dataclasses.replace(_HARD, name="extreme", texture_prob=1.0, camera_pos_jitter=0.02,
                               camera_rot_jitter_deg=2.0, fovy_jitter_deg=2.0, object_colors=True, distractors=True)
SCENE_LEVELS: dict[str, SceneLevel] = {
    **{lv.name: lv for lv in (_EASY, _HARD, _EXTREME)},
    **{f"{lv.name}_heldout": dataclasses.replace(lv, name=f"{lv.name}_heldout", held_out=True)
       for lv in (_EASY, _HARD, _EXTREME)},
}
assert tuple(SCENE_LEVELS) == SCENE_LEVEL_NAMES, "randomize.SCENE_LEVEL_NAMES must list SCENE_LEVELS"


@dataclasses.dataclass(frozen=True)
class TableScene:
    """Static geom ids of a table-top model for appearance draws (numpy).

    surface_geoms ``[n]``: geoms recoloured; surface_of ``[n]``: their surface (index into
    :data:`SURFACES`); distractors ``[D]``: the hidden distractor geoms.
    """

    surface_geoms: np.ndarray
    surface_of: np.ndarray
    distractors: np.ndarray

    @classmethod
    def from_model(cls, mj_model, level: str = "easy") -> TableScene:
        """Look the scene's geoms up by name; a model without them (not a ``robo/*`` scene)
        raises ``ValueError`` naming the level and what is missing."""
        import mujoco

        names = {"table": ("table_visual",), "floor": ("floor",), "walls": table.WALLS}
        ids = {k: [mujoco.mj_name2id(mj_model, mujoco.mjtObj.mjOBJ_GEOM, n) for n in v] for k, v in names.items()}
        dist = [mujoco.mj_name2id(mj_model, mujoco.mjtObj.mjOBJ_GEOM, n) for n in table.DISTRACTORS]
        missing = [n for k, v in names.items() for n, i in zip(v, ids[k]) if i < 0]
        missing += [n for n, i in zip(table.DISTRACTORS, dist) if i < 0]
        if missing:
            from vasa.envs.randomize import SUITES

            raise ValueError(f"appearance={level!r} is not allowed for this scene: the levels {SCENE_LEVEL_NAMES} "
                             f"apply to robo/* table-top scenes (geoms {', '.join(missing)} are missing); "
                             f"choose from {tuple(SUITES)}.")
        geoms = [i for k in SURFACES for i in ids[k]]
        which = [s for s, k in enumerate(SURFACES) for _ in ids[k]]
        return cls(np.asarray(geoms, np.int32), np.asarray(which, np.int32), np.asarray(dist, np.int32))


def hsv_to_rgb(hsv: jax.Array) -> jax.Array:
    """``[..., 3]`` HSV (each in [0, 1]) -> ``[..., 3]`` RGB in [0, 1] (the standard hexcone map)."""
    h, s, v = hsv[..., 0:1], hsv[..., 1:2], hsv[..., 2:3]
    k = jnp.mod(jnp.array([5.0, 3.0, 1.0]) + 6.0 * h, 6.0)
    return v - v * s * jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)


def _in_bands(u: jax.Array, held_out: bool, bands: int) -> jax.Array:
    """Uniform numbers ``u [..., 2]`` -> a value in [0, 1) in one of the even (held out: odd)
    of ``bands`` equal bands (``u[..., 0]`` picks the band), in its inner :data:`SECTOR_FILL`."""
    band = 2 * jnp.minimum(jnp.floor(u[..., 0] * (bands // 2)), bands // 2 - 1) + int(held_out)
    return (band + SECTOR_FILL[0] + (SECTOR_FILL[1] - SECTOR_FILL[0]) * u[..., 1]) / bands


def colors_from(u: jax.Array, saturation, value, held_out: bool) -> jax.Array:
    """Uniform numbers ``u [..., 4]`` -> ``[..., 3]`` RGB colours: hue in the even (held
    out: odd) sectors of :data:`NUM_HUE_SECTORS`, saturation and value uniform in their ranges."""
    hue = _in_bands(u[..., :2], held_out, NUM_HUE_SECTORS)
    sat = saturation[0] + (saturation[1] - saturation[0]) * u[..., 2]
    val = value[0] + (value[1] - value[0]) * u[..., 3]
    return hsv_to_rgb(jnp.stack([hue, sat, val], -1))


def cells_from(u: jax.Array, held_out: bool) -> jax.Array:
    """Uniform numbers ``u [..., 2]`` -> texture cell sizes (metres), log-uniform over the
    even (held out: odd) of :data:`NUM_CELL_BANDS` log-spaced bands of :data:`CELL_RANGE`."""
    lo, hi = np.log(CELL_RANGE[0]), np.log(CELL_RANGE[1])
    return jnp.exp(lo + _in_bands(u, held_out, NUM_CELL_BANDS) * (hi - lo))


def randomize_scene(key: jax.Array, base: Appearance, level: SceneLevel, scene: TableScene,
                    groups: SceneGroups) -> Appearance:
    """Draw one look of a table-top scene at ``level`` around ``base`` (pure; vmap over ``key``).

    Args:
      key: PRNG key; the same key gives the same look (and nested looks across levels).
      base: the scene's own look, ``renderer.default_appearance()`` of a renderer built with
        ``optional_geoms`` = the scene's distractors (see ``ArmTask.optional_geoms``).
      level: a :class:`SceneLevel` (:data:`SCENE_LEVELS`).
      scene: :meth:`TableScene.from_model` of the same model; groups:
        :meth:`~vasa.envs.randomize.SceneGroups.from_model` of it (the robot's and objects'
        colour groups).

    Returns the :class:`~vasa.envs.render.Appearance`: surface colours and textures, lights,
    camera jitter, (``level.object_colors``) robot and object colours, and
    (``level.distractors``) ``geom_shown``/``geom_offset``/colours of the distractors.
    Geometry, depth and segmentation change only by the distractors. Every number comes
    from one uniform block per part (few PRNG calls: they dominate the compile time on CPU).
    """
    k_surf, k_lc, k_obj = jax.random.split(key, 3)
    n, held = len(SURFACES), level.held_out
    u = jax.random.uniform(k_surf, (n, 13))
    c1 = colors_from(u[:, 0:4], level.saturation, level.value, held)
    c2 = colors_from(u[:, 4:8], level.saturation, level.value, held)
    textured = u[:, 8] < level.texture_prob
    kind = jnp.array([TEX_CHECKER, TEX_GRID, TEX_NOISE])[jnp.minimum(jnp.floor(u[:, 9] * 3), 2).astype(jnp.int32)]
    cell = cells_from(u[:, 10:12], held)
    plain = jnp.array([TEX_NONE, TEX_CHECKER, TEX_NONE])  # the floor keeps a (recoloured) checker
    second = jnp.where(textured[:, None], c2, 0.8 * c1)
    g, s = jnp.asarray(scene.surface_geoms), jnp.asarray(scene.surface_of)
    app = base.replace(
        geom_rgb=base.geom_rgb.at[g].set(c1[s]),
        geom_rgb2=base.geom_rgb2.at[g].set(second[s]),
        geom_texture=base.geom_texture.at[g].set(jnp.where(textured, kind, plain)[s].astype(jnp.int32)),
        geom_texture_scale=base.geom_texture_scale.at[g].set(jnp.where(textured[s], cell[s],
                                                                       base.geom_texture_scale[g])),
        geom_texture_seed=base.geom_texture_seed.at[g].set(100.0 * u[s, 12]),
    )
    w = 2.0 * jax.random.uniform(k_lc, (13,)) - 1.0  # lights and camera, in [-1, 1)
    lv = level
    app = turn_lights(app, w[0:3], jnp.deg2rad(lv.light_dir_jitter_deg) * (w[3] + 1) / 2,
                      lv.light_intensity[0] + (lv.light_intensity[1] - lv.light_intensity[0]) * (w[4] + 1) / 2,
                      lv.ambient[0] + (lv.ambient[1] - lv.ambient[0]) * (w[5] + 1) / 2)
    app = move_camera(app, lv.camera_pos_jitter * w[6:9], np.deg2rad(lv.camera_rot_jitter_deg) * w[9:12],
                      lv.fovy_jitter_deg * w[12])
    k_dist, k_agent = jax.random.split(k_obj)
    if level.object_colors:  # one colour per colour group of the robot and the objects
        agent = jnp.asarray(groups.agent_group >= 0)
        gidx = jnp.asarray(np.maximum(groups.agent_group, 0))
        drawn = colors_from(jax.random.uniform(k_agent, (groups.num_agent_groups, 4)), level.saturation,
                            level.value, held)
        app = app.replace(geom_rgb=jnp.where(agent[:, None], drawn[gidx], app.geom_rgb),
                          geom_rgb2=jnp.where(agent[:, None], 0.6 * drawn[gidx], app.geom_rgb2))
    if level.distractors:
        d = jnp.asarray(scene.distractors)
        v = jax.random.uniform(k_dist, (len(scene.distractors), 6))
        r = DISTRACTOR_RADIUS[0] + (DISTRACTOR_RADIUS[1] - DISTRACTOR_RADIUS[0]) * v[:, 0]
        a = 2 * jnp.pi * v[:, 1]
        offset = jnp.stack([r * jnp.cos(a), r * jnp.sin(a), jnp.zeros_like(r)], -1)
        app = app.replace(geom_shown=app.geom_shown.at[d].set(True),
                          geom_offset=app.geom_offset.at[d].set(offset),
                          geom_rgb=app.geom_rgb.at[d].set(colors_from(v[:, 2:6], (0.5, 1.0), (0.5, 1.0), held)),
                          geom_texture=app.geom_texture.at[d].set(TEX_NONE))
    return app
