"""vasa's ray-cast camera next to MuJoCo's OpenGL renderer (``mujoco.Renderer``) on DM Control
models: a side-by-side picture (MuJoCo | vasa | 4x difference) and the mean absolute RGB
difference per channel, for each quality setting asked for.

Needs an OpenGL backend for ``mujoco.Renderer``; headless, run with ``MUJOCO_GL=egl`` (or
``osmesa``)::

    MUJOCO_GL=egl python examples/render_vs_mujoco.py --tasks cartpole cheetah finger --size 128 \\
        --out docs/render_vs_mujoco.png
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import jax
import mujoco
import numpy as np
import tyro

from vasa.envs import render as R

QUALITIES = {
    "fast": dict(shading="fast"),
    "mujoco": dict(shading="mujoco"),
    "mujoco_full": dict(shading="mujoco", shadows=True, reflections=True, supersample=2),
}


@dataclass(frozen=True)
class Args:
    """Side-by-side comparison settings."""

    tasks: tuple[str, ...] = ("cartpole", "cheetah", "finger")
    """DM Control model names (files of MuJoCo Playground's dm_control_suite/xmls)"""
    size: int = 128
    """image side in pixels"""
    camera: int = 0
    """model camera of the picture"""
    picture_quality: str = "mujoco_full"
    """quality drawn in the picture: fast, mujoco or mujoco_full"""
    qualities: tuple[str, ...] = ("fast", "mujoco", "mujoco_full")
    """qualities whose differences are printed"""
    out: Path = Path("render_vs_mujoco.png")
    """where to write the picture"""


def geoms_only() -> mujoco.MjvOption:
    opt = mujoco.MjvOption()
    opt.sitegroup[:] = 0
    opt.flags[mujoco.mjtVisFlag.mjVIS_TENDON] = 0
    return opt


def main(args: Args) -> None:
    from PIL import Image

    for q in (args.picture_quality, *args.qualities):
        if q not in QUALITIES:
            raise ValueError(f"quality {q!r} is not allowed: choose from {sorted(QUALITIES)}.")
    xmls = os.path.join(os.path.dirname(importlib.util.find_spec("mujoco_playground").origin),
                        "_src", "dm_control_suite", "xmls")
    rows, report = [], []
    for task in args.tasks:
        m = mujoco.MjModel.from_xml_path(os.path.join(xmls, task + ".xml"))
        d = mujoco.MjData(m)
        mujoco.mj_forward(m, d)
        gl = mujoco.Renderer(m, args.size, args.size)
        gl.update_scene(d, args.camera, geoms_only())
        ref = gl.render().copy()
        gl.close()
        data = R.data_dict(d)
        for q in dict.fromkeys((*args.qualities, args.picture_quality)):
            r = R.Renderer(m, args.size, args.size, **QUALITIES[q])
            img = np.asarray(jax.jit(lambda data, r=r: r.render(data, args.camera)["rgb"])(data))
            diff = np.abs(img.astype(int) - ref.astype(int))
            if q in args.qualities:
                report.append((task, q, diff.mean((0, 1))))
            if q == args.picture_quality:
                rows.append(np.concatenate([ref, img, np.clip(diff * 4, 0, 255).astype(np.uint8)], 1))
    Image.fromarray(np.concatenate(rows, 0)).save(args.out)
    print(f"wrote {args.out} (rows: {', '.join(args.tasks)}; columns: MuJoCo | vasa {args.picture_quality} | 4x |difference|)")
    print(f"mean |vasa - MuJoCo| per channel (0-255), {args.size}x{args.size}, camera {args.camera}:")
    for task, q, diff in report:
        print(f"  {task:12s} {q:12s} R {diff[0]:5.2f}  G {diff[1]:5.2f}  B {diff[2]:5.2f}")


if __name__ == "__main__":
    main(tyro.cli(Args))
