"""A square room with random obstacles and a LiDAR-carrying robot (iGibson-style)."""

from __future__ import annotations

import numpy as np


def room_xml(seed: int = 0, size: float = 4.0, num_obstacles: int = 6, wall_height: float = 1.0,
             robot_radius: float = 0.18) -> str:
    """MJCF of a ``size x size`` m room (walls are boxes) holding ``num_obstacles`` random
    boxes, cylinders and spheres, and a cylindrical robot at the origin on a free joint,
    with a site ``"lidar"`` 0.3 m up facing +x. Obstacles keep 0.6 m clear of the robot.
    """
    rng = np.random.default_rng(seed)
    h, t = size / 2, 0.05
    geoms = []
    for i, (x, y, sx, sy) in enumerate([(h, 0, t, h), (-h, 0, t, h), (0, h, h, t), (0, -h, h, t)]):
        geoms.append(f'<geom name="wall{i}" type="box" pos="{x} {y} {wall_height / 2}" size="{sx} {sy} {wall_height / 2}" rgba=".75 .72 .68 1"/>')
    kinds = ["box", "cylinder", "sphere"]
    for i in range(num_obstacles):
        while True:
            x, y = rng.uniform(-h + 0.4, h - 0.4, 2)
            if np.hypot(x, y) > 0.6 + robot_radius:
                break
        kind = kinds[i % 3]
        r = rng.uniform(0.12, 0.3)
        color = " ".join(f"{c:.2f}" for c in rng.uniform(0.2, 0.9, 3))
        if kind == "box":
            yaw = rng.uniform(0, 180)
            geoms.append(f'<geom name="obstacle{i}" type="box" pos="{x:.3f} {y:.3f} {r:.3f}" size="{r:.3f} {r * 0.7:.3f} {r:.3f}" euler="0 0 {yaw:.1f}" rgba="{color} 1"/>')
        elif kind == "cylinder":
            geoms.append(f'<geom name="obstacle{i}" type="cylinder" pos="{x:.3f} {y:.3f} 0.4" size="{r:.3f} 0.4" rgba="{color} 1"/>')
        else:
            geoms.append(f'<geom name="obstacle{i}" type="sphere" pos="{x:.3f} {y:.3f} {r:.3f}" size="{r:.3f}" rgba="{color} 1"/>')
    body = "\n    ".join(geoms)
    return f"""<mujoco model="room">
  <asset>
    <texture name="floor" type="2d" builtin="checker" rgb1=".3 .32 .35" rgb2=".4 .42 .45" width="64" height="64"/>
    <material name="floor" texture="floor" texrepeat="2 2" texuniform="true"/>
  </asset>
  <worldbody>
    <light dir="0.3 0.2 -1"/>
    <geom name="floor" type="plane" size="{h} {h} 0.1" material="floor"/>
    <camera name="top" pos="0 0 {size * 1.25:.2f}" xyaxes="1 0 0 0 1 0" fovy="60"/>
    <camera name="overview" pos="0 {-size * 0.9:.2f} {size * 0.8:.2f}" xyaxes="1 0 0 0 0.7 0.7" fovy="60"/>
    {body}
    <body name="robot" pos="0 0 0.15">
      <freejoint/>
      <geom name="robot" type="cylinder" size="{robot_radius} 0.15" rgba=".2 .3 .8 1"/>
      <site name="lidar" pos="0 0 0.15"/>
    </body>
  </worldbody>
</mujoco>"""
