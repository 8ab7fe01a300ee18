"""A picture of the table-top appearance levels: ``robo/lift`` seen by ``agentview`` at
``train``, ``easy``, ``hard`` and ``extreme`` (columns), for a few appearance keys (rows),
saved as ``docs/robo_appearance_levels.png`` (see :mod:`vasa.envs.randomize_scene`).

The scene is posed by MuJoCo C (``mj_forward`` at the task's rest posture) and drawn by
vasa's ray-cast renderer, as :class:`~vasa.envs.wrappers.PixelObservation` draws it. One key
per row, shared by the levels (so ``extreme`` is ``hard``'s look with the camera moved and
distractors added)::

    python benchmarks/robo_appearance_grid.py [--task robo/lift] [--size 160] [--rows 2] [--held-out]
"""

from __future__ import annotations

import argparse
import os

import jax
import mujoco
import numpy as np
from PIL import Image

import vasa.envs.tasks.manipulation  # noqa: F401  (requests XLA:CPU's legacy fusion before JAX starts)
from vasa.envs import make_raw
from vasa.envs.randomize import AppearanceSampler
from vasa.envs.render import Renderer, data_dict
from vasa.envs.scenes import robots

LEVELS = ("train", "easy", "hard", "extreme")


def rest_pose(task) -> dict:
    """The pose fields of ``task``'s scene at the arm's home posture (MuJoCo C)."""
    m = task.mj_model
    d = mujoco.MjData(m)
    d.qpos[task.arm.qpos] = robots.HOME_QPOS
    d.qpos[task.arm.finger_qpos] = robots.FINGER_TRAVEL
    mujoco.mj_forward(m, d)
    return data_dict(d)


def render_levels(task, size: int, keys: jax.Array, levels=LEVELS, camera: str = "agentview",
                  outputs=("rgb",)) -> dict[str, dict[str, np.ndarray]]:
    """``{level: {output: [len(keys), size, size, ...]}}`` of ``task`` at its rest pose."""
    renderer = Renderer(task.mj_model, size, size, shading="mujoco", optional_geoms=task.optional_geoms)
    data = rest_pose(task)
    out = {}
    for level in levels:
        sampler = AppearanceSampler(renderer, level)
        draw = jax.jit(jax.vmap(lambda k: renderer.render(data, camera, sampler(k), outputs=outputs)))  # noqa: B023
        out[level] = {k: np.asarray(v) for k, v in draw(keys).items()}
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="robo/lift")
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--rows", type=int, default=2)
    p.add_argument("--held-out", action="store_true", help="draw the _heldout variants of easy/hard/extreme")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "docs", "robo_appearance_levels.png"))
    a = p.parse_args()
    task = make_raw(a.task)
    levels = tuple(lv if lv == "train" or not a.held_out else f"{lv}_heldout" for lv in LEVELS)
    keys = jax.random.split(jax.random.PRNGKey(3), a.rows)
    images = render_levels(task, a.size, keys, levels)
    pad = 4
    grid = np.full((a.rows * (a.size + pad) + pad, len(levels) * (a.size + pad) + pad, 3), 255, np.uint8)
    for j, level in enumerate(levels):
        for i in range(a.rows):
            y, x = pad + i * (a.size + pad), pad + j * (a.size + pad)
            grid[y:y + a.size, x:x + a.size] = images[level]["rgb"][i]
    Image.fromarray(grid).save(a.out)
    print(f"saved {os.path.normpath(a.out)}: columns {', '.join(levels)}; {a.rows} appearance keys")


if __name__ == "__main__":
    main()
