"""Write a PNG grid of what a visual agent sees: one row per appearance suite (several
environments each), then depth, segmentation and normals, then a LiDAR scan and its
occupancy grid in a random room.

    python examples/show_observations.py                                # dmc/walker_walk
    python examples/show_observations.py --env dmc/cheetah_run --num-envs 6 --image-size 96
    python examples/show_observations.py --video my_clip.gif           # video suites use your frames
"""

from __future__ import annotations

import dataclasses
import os
import time

import tyro


@dataclasses.dataclass(frozen=True)
class Args:
    env: str = "dmc/walker_walk"
    """Environment id (any dmc/* or brax/* id)."""
    suites: tuple[str, ...] = ("train", "color_easy", "color_hard", "video_easy", "video_hard")
    """Appearance suites, one row each."""
    num_envs: int = 4
    """Environments per row (each draws its own look)."""
    image_size: int = 84
    """Rendered image side in pixels."""
    camera: str = "0"
    """Model camera name or id."""
    steps: int = 20
    """Random-action steps before the snapshot."""
    video: str | None = None
    """Background video/array file for the video suites (default: procedural)."""
    shadows: bool = True
    """Cast shadow rays."""
    seed: int = 0
    out: str = "docs/observations.png"
    """Where the PNG goes."""


def main(args: Args) -> str:
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".jax_cache"))
    import jax
    import jax.numpy as jnp
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mujoco
    import numpy as np

    import vasa.envs as E
    from vasa.envs import render as R
    from vasa.envs.randomize import AppearanceSampler
    from vasa.envs.scenes import room_xml

    if args.num_envs < 1 or args.image_size < 1 or args.steps < 0:
        raise ValueError(f"num_envs={args.num_envs}, image_size={args.image_size}, steps={args.steps}: "
                         "num_envs and image_size must be >= 1 and steps >= 0.")
    camera = int(args.camera) if args.camera.lstrip("-").isdigit() else args.camera
    n = args.num_envs
    start = time.time()
    # one physics rollout (appearance "train"); every suite then re-renders the same states,
    # so the only difference between rows is the look
    env = E.make(args.env, pixels=True, camera=camera, image_size=args.image_size, frame_stack=1,
                 video=args.video, shadows=args.shadows, auto_reset=False)
    spec = env.action_spec

    @jax.jit
    def rollout(key):
        k_reset, k_act = jax.random.split(key)
        state = jax.vmap(env.reset)(jax.random.split(k_reset, n))

        def body(s, k):
            a = jax.random.uniform(k, (n,) + spec.shape, minval=-1.0, maxval=1.0)
            return jax.vmap(env.step)(s, a), None

        state, _ = jax.lax.scan(body, state, jax.random.split(k_act, args.steps))
        return state

    state = rollout(jax.random.PRNGKey(args.seed))
    print(f"rollout of {n} envs x {args.steps} steps: {time.time() - start:.0f} s")
    frame = jax.jit(jax.vmap(env.render_frame, in_axes=(0, 0, None)))
    rows, titles = [], []
    for name in args.suites:
        sampler = AppearanceSampler(env.renderer, name)
        looks = jax.jit(jax.vmap(sampler))(jax.random.split(jax.random.PRNGKey(args.seed + 1), n))
        rows.append(np.asarray(frame(state.physics, looks, args.steps)))
        titles.append(name)
        print(f"{name}: rendered ({time.time() - start:.0f} s so far)")

    # geometry channels of the first env (they do not depend on the appearance)
    physics = jax.tree.map(lambda x: x[0], state.physics)
    data = R.refresh_kinematics(env.mjx_model, physics)
    geo = jax.jit(lambda d: env.renderer.render(d, camera, outputs=("depth", "geom_id", "normals")))(data)
    depth = np.asarray(geo["depth"])
    seg = np.asarray(geo["geom_id"])
    normals = np.asarray(geo["normals"])

    # LiDAR in a random room
    room = mujoco.MjModel.from_xml_string(room_xml(seed=args.seed))
    rd = mujoco.MjData(room)
    mujoco.mj_forward(room, rd)
    rdx = R.data_dict(rd)  # MJX's jax impl lacks cylinder-box contacts; the sensors need only poses
    scan_cfg = R.LidarConfig(num_rays=228, fov_deg=240.0, max_range=5.6)
    lidar = R.Lidar(room, scan_cfg, site="lidar")
    fan = R.Lidar(room, dataclasses.replace(scan_cfg, beams=16, num_rays=180, fov_deg=360.0), site="lidar")
    ranges = np.asarray(jax.jit(lidar.scan)(rdx))
    noisy = np.asarray(R.lidar_dropout(jax.random.PRNGKey(1), jnp.asarray(ranges), 0.1, scan_cfg.max_range))
    grid = np.asarray(R.occupancy_grid(jnp.asarray(noisy), jnp.asarray(scan_cfg.angles()), scan_cfg.max_range))
    fan_ranges = np.asarray(jax.jit(fan.scan)(rdx))
    top = np.asarray(jax.jit(lambda d: R.Renderer(room, 160, 160, shadows=True).render(d, "top")["rgb"])(rdx))

    cols = max(n, 4)
    fig = plt.figure(figsize=(1.9 * cols, 1.9 * (len(rows) + 2)))
    for r, (imgs, title) in enumerate(zip(rows, titles)):
        for c in range(n):
            ax = fig.add_subplot(len(rows) + 2, cols, r * cols + c + 1)
            ax.imshow(imgs[c, ..., -3:] if imgs.shape[-1] >= 3 else imgs[c, ..., -1], cmap="gray")
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(title, fontsize=9)
    base = len(rows) * cols
    panels = [
        ("depth (m)", lambda ax: ax.imshow(np.where(np.isfinite(depth), depth, np.nan), cmap="viridis")),
        ("segmentation", lambda ax: ax.imshow(np.where(seg >= 0, seg, np.nan), cmap="tab20")),
        ("normals", lambda ax: ax.imshow(0.5 + 0.5 * normals)),
        ("room (top camera)", lambda ax: ax.imshow(top)),
    ]
    for i, (title, draw) in enumerate(panels):
        ax = fig.add_subplot(len(rows) + 2, cols, base + i + 1)
        draw(ax)
        ax.set_title(title, fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
    ax = fig.add_subplot(len(rows) + 2, cols, base + cols + 1, projection="polar")
    ax.plot(scan_cfg.angles(), noisy, ".", ms=2)
    ax.set_title("1-beam scan, 10% dropout", fontsize=8)
    ax.set_yticks([])
    ax = fig.add_subplot(len(rows) + 2, cols, base + cols + 2)
    occ_cmap = matplotlib.colors.ListedColormap([(0.6, 0.6, 0.6), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)])
    ax.imshow(grid, cmap=occ_cmap, vmin=0, vmax=2, interpolation="nearest")
    ax.set_title("occupancy (white free)", fontsize=8)
    ax.set_xticks([]), ax.set_yticks([])
    ax = fig.add_subplot(len(rows) + 2, cols, base + cols + 3)
    ax.imshow(fan_ranges, aspect="auto", cmap="magma")
    ax.set_title("16 beams, -15..+15 deg", fontsize=8)
    ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(f"{args.env}: {n} environments per appearance suite ({args.image_size}x{args.image_size})", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out} in {time.time() - start:.0f} s")
    return args.out


if __name__ == "__main__":
    main(tyro.cli(Args))
