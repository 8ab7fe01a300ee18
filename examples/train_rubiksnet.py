"""Train RubiksNet on video clips (the synthetic temporal-order dataset by default, or a
dataset folder: UCF-101, HMDB-51, Something-Something-V2 or class folders).

    python examples/train_rubiksnet.py                              # reduced RubiksNet, 32x32, 8 frames
    python examples/train_rubiksnet.py --temporal zero              # ablation: temporal shifts frozen at 0
    python examples/train_rubiksnet.py --spatial fixed --temporal fixed   # ShiftNet/TSM fixed shifts
    python examples/train_rubiksnet.py --variant rubiks3d-aq --budget 0.125   # attention-quantized shifts
    python examples/train_rubiksnet.py --tier tiny --width None --blocks None  # the published tiny tier
    python examples/train_rubiksnet.py --dtype bfloat16             # bfloat16 compute
    python examples/train_rubiksnet.py --resume runs/<dir>          # continue from the newest intact checkpoint
    python examples/train_rubiksnet.py --data-root /data/ucf101 --layout ucf101 --eval-protocol 2clip-3crop
        # UCF-101 split 1 (ucfTrainTestlist/ under the root; add --videos-dir UCF-101 if the videos are there,
        # --skip-bad-samples to skip and count unreadable videos), validated with 2 clips x 3 crops

Writes a run directory with config.json, metrics.csv (per epoch: loss, train accuracy,
validation top-1/top-5, learning rate, AQ temperature and non-zero shift fraction, for AQ the
top-1 after converting to integer shifts, and the bad samples skipped), checkpoints/ and
learning_curve.png.
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
    run: RunConfig = field(default_factory=lambda: video_train.DEFAULT_RUN)


def main(args: Args) -> None:
    video_train.train(args.video, args.run)


def parse(argv: list[str] | None = None) -> Args:
    """The command line (default: ``sys.argv``) as ``Args``; booleans are ``--flag`` / ``--no-flag``."""
    return tyro.cli(Args, args=argv, config=(tyro.conf.OmitArgPrefixes,), description=__doc__)


if __name__ == "__main__":
    main(parse())
