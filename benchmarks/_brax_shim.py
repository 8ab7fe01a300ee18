"""The one JAX API that Brax 0.14's training code needs and JAX 0.10 removed, for the peer
benchmarks (``ppo_vs_brax.py``, ``sac_pixels.py``); vasa itself does not use it."""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Brax's pmap axis name in ``brax.training.agents.{ppo,sac}.train`` (``_PMAP_AXIS_NAME``).
BRAX_PMAP_AXIS_NAME = "i"


def shim_removed_jax_apis(axis_name: str = BRAX_PMAP_AXIS_NAME) -> None:
    """Restore ``jax.device_put_replicated`` when this JAX lacks it (no-op otherwise).

    ``brax.training.agents.ppo.train`` and ``brax.training.agents.sac.train`` replicate their
    training state with ``jax.device_put_replicated``, which JAX 0.10 removed. The replacement
    stacks one copy per device and places it with an identity ``jax.pmap`` over Brax's own
    axis name, so the state has exactly the type (sharding included) of the pmapped training
    functions' outputs; with any other sharding, Brax's pmapped training epoch compiles a
    second time on its second call. Nothing else Brax's PPO or SAC uses is missing from
    JAX 0.10.
    """
    if hasattr(jax, "device_put_replicated"):
        return

    def device_put_replicated(x, devices):
        stacked = jax.tree.map(lambda a: jnp.stack([jnp.asarray(a)] * len(devices)), x)
        return jax.pmap(lambda t: t, axis_name=axis_name, devices=devices)(stacked)

    jax.device_put_replicated = device_put_replicated
