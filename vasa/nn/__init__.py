"""Networks (flax.linen), action distributions and observation normalisation."""

from vasa.nn.distributions import ActionDistribution
from vasa.nn.encoders import ConvEncoder, DoubleQ, Projection, conv_output_size
from vasa.nn.mlp import MLP, GaussianPolicyHead
from vasa.nn.normalize import RunningStats

__all__ = [
    "ActionDistribution",
    "ConvEncoder",
    "DoubleQ",
    "GaussianPolicyHead",
    "MLP",
    "Projection",
    "RunningStats",
    "conv_output_size",
]
