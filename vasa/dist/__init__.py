"""Device meshes and ``shard_map`` helpers (one ``"data"`` axis)."""

from vasa.dist.mesh import DATA_AXIS, global_row_ids, jit_sharded_step, make_mesh, pmean, psum

__all__ = ["DATA_AXIS", "global_row_ids", "jit_sharded_step", "make_mesh", "pmean", "psum"]
