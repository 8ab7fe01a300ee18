"""Networks (flax.linen), action distributions and observation normalisation."""

from vasa.nn.distributions import ActionDistribution
from vasa.nn.mlp import MLP, GaussianPolicyHead
from vasa.nn.normalize import RunningStats

__all__ = ["ActionDistribution", "GaussianPolicyHead", "MLP", "RunningStats"]
