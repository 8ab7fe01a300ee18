"""Train RubiksNet on video clips (the synthetic temporal-order dataset by default).

    python examples/train_rubiksnet.py                              # reduced RubiksNet, 32x32, 8 frames
    python examples/train_rubiksnet.py --temporal zero              # ablation: temporal shifts frozen at 0
    python examples/train_rubiksnet.py --spatial fixed --temporal fixed   # ShiftNet/TSM fixed shifts
    python examples/train_rubiksnet.py --variant rubiks3d-aq --budget 0.125   # attention-quantized shifts
    python examples/train_rubiksnet.py --tier tiny --width None --blocks None  # the published tiny tier
    python examples/train_rubiksnet.py --dtype bfloat16             # bfloat16 compute
    python examples/train_rubiksnet.py --resume runs/<dir>          # continue from the last checkpoint

Writes a run directory with config.json, metrics.csv (per epoch: loss, train accuracy,
validation top-1/top-5, learning rate, AQ temperature and non-zero shift fraction, and for AQ
the top-1 after converting to integer shifts), checkpoints/ and learning_curve.png.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.expanduser("~/.cache/vasa/jax"))

import tyro

from vasa.run import RunConfig
from vasa.video import train as video_train


@dataclass(frozen=True)
class Args:
    video: video_train.VideoTrainConfig = field(default_factory=video_train.VideoTrainConfig)
    run: RunConfig = field(default_factory=lambda: RunConfig(eval_every=1, checkpoint_every=5))


def main(args: Args) -> None:
    video_train.train(args.video, args.run)


if __name__ == "__main__":
    main(tyro.cli(Args, config=(tyro.conf.OmitArgPrefixes,), description=__doc__))
