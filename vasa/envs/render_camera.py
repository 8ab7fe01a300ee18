"""Cameras for the ray-cast camera (:mod:`vasa.envs.render`): a camera pose as data
(:class:`Camera`), free cameras (:func:`look_at`), the model's cameras resolved by name or
id and posed from a physics state (``cam_xpos``/``cam_xmat``, so fixed, tracking and
body-mounted cameras all follow the physics), and the rays through an image's pixels.

MuJoCo's conventions: a camera looks along its local ``-z`` with ``+y`` up and ``+x``
right; ``fovy`` is the vertical field of view in degrees.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct

from vasa.envs.render_geometry import _EPS, _get


@struct.dataclass
class Camera:
    """A camera pose: ``pos [3]`` (world), ``mat [3, 3]`` whose columns are the camera's
    x (right), y (up) and z (backwards) axes in world coordinates, and ``fovy []`` in
    degrees. All float32 leaves; batch them with ``vmap``."""

    pos: jax.Array
    mat: jax.Array
    fovy: jax.Array


def look_at(pos, target, up=(0.0, 0.0, 1.0), fovy: float = 45.0) -> Camera:
    """A free camera at ``pos [3]`` looking at ``target [3]`` with world ``up [3]``."""
    pos = jnp.asarray(pos, jnp.float32)
    back = pos - jnp.asarray(target, jnp.float32)
    back = back / jnp.linalg.norm(back)
    right = jnp.cross(jnp.asarray(up, jnp.float32), back)
    right = right / jnp.maximum(jnp.linalg.norm(right), _EPS)
    cam_up = jnp.cross(back, right)
    return Camera(pos=pos, mat=jnp.stack([right, cam_up, back], axis=1), fovy=jnp.asarray(fovy, jnp.float32))


def _rotation(rotvec):
    """Rodrigues: rotation vector ``[3]`` -> matrix ``[3, 3]`` (smooth at zero)."""
    theta2 = jnp.sum(rotvec * rotvec)
    theta = jnp.sqrt(theta2 + 1e-24)
    k = rotvec / theta
    kx = jnp.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return jnp.eye(3) + jnp.sin(theta) * kx + (1.0 - jnp.cos(theta)) * (kx @ kx)


def camera_id(m: mujoco.MjModel, camera: str | int) -> int:
    """Resolve a camera of model ``m`` by name or id; unknown ones list the model's cameras."""
    names = [m.camera(i).name or f"<unnamed {i}>" for i in range(m.ncam)]
    if isinstance(camera, (int, np.integer)):
        if 0 <= camera < m.ncam:
            return int(camera)
    elif isinstance(camera, str):
        cid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if cid >= 0:
            return int(cid)
    listing = ", ".join(f"{i}: {n!r}" for i, n in enumerate(names)) or "none"
    raise ValueError(f"camera={camera!r} is not allowed: this model's cameras are {listing} "
                     "(or pass a free Camera, e.g. vasa.envs.render.look_at(pos, target)).")


def model_camera(m: mujoco.MjModel, data, cid: int) -> Camera:
    """The pose of camera ``cid`` of model ``m`` in ``data`` (an ``mjx.Data``, ``MjData``
    or dict: its ``cam_xpos``/``cam_xmat``)."""
    pos = _get(data, "cam_xpos")[cid]
    mat = _get(data, "cam_xmat").reshape(-1, 3, 3)[cid]
    return Camera(pos=pos, mat=mat, fovy=jnp.asarray(m.cam_fovy[cid], jnp.float32))


def camera_rays(camera: Camera, appearance=None, *, width: int, height: int,
                supersample: int = 1) -> tuple[jax.Array, jax.Array, jax.Array]:
    """World ray origins ``[N, 3]``, unit directions ``[N, 3]`` and the camera's forward
    axis ``[3]`` for a ``width x height`` image, with the camera jitter of ``appearance``
    (a :class:`vasa.envs.render.Appearance`: its ``cam_pos_offset``, ``cam_rot_offset``
    and ``fovy_offset``) applied. ``supersample = 1``: one ray through each pixel centre,
    ``N = H*W`` row-major (row 0 at the top); ``s > 1``: an ``s x s`` grid of rays in each
    pixel, row-major over the ``sH x sW`` grid."""
    pos, mat, fovy = camera.pos, camera.mat, camera.fovy
    if appearance is not None:
        mat = mat @ _rotation(appearance.cam_rot_offset)
        pos = pos + mat @ appearance.cam_pos_offset
        fovy = fovy + appearance.fovy_offset
    half = jnp.tan(jnp.deg2rad(fovy) / 2)
    h, w = height * supersample, width * supersample
    y = (1.0 - 2.0 * (jnp.arange(h, dtype=jnp.float32) + 0.5) / h) * half
    x = (2.0 * (jnp.arange(w, dtype=jnp.float32) + 0.5) / w - 1.0) * half * (w / h)
    yy, xx = jnp.meshgrid(y, x, indexing="ij")
    local = jnp.stack([xx, yy, -jnp.ones_like(xx)], -1).reshape(-1, 3)
    dirs = local @ mat.T
    dirs = dirs / jnp.linalg.norm(dirs, axis=-1, keepdims=True)
    return jnp.broadcast_to(pos, dirs.shape), dirs, -mat[:, 2]
