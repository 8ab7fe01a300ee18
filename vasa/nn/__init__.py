"""Networks (flax.linen), action distributions and observation normalisation."""

from vasa.nn.conv import Conv2D, conv2d
from vasa.nn.distributions import ActionDistribution
from vasa.nn.encoders import ConvEncoder, DoubleQ, Projection, conv_output_size
from vasa.nn.mlp import MLP, GaussianPolicyHead
from vasa.nn.normalize import RunningStats

__all__ = [
    "ActionDistribution",
    "Conv2D",
    "ConvEncoder",
    "DoubleQ",
    "GaussianPolicyHead",
    "MLP",
    "Projection",
    "RunningStats",
    "conv2d",
    "conv_output_size",
]
