"""Train RubiksNet (or its AQ variant) on video clips: SGD with momentum, weight decay on
convolution and dense kernels only, the shift parameters' own learning-rate multiplier and
scaled gradient normalisation (:func:`vasa.video.shift.shift_optimizer`), cosine or step
schedule, AQ temperature annealing with the shift-budget loss, optional bfloat16 compute,
full-state checkpoints with resume, metrics CSV and curves, top-1/top-5 evaluation.

Data (:func:`resolve_data`): the synthetic temporal-order dataset of :mod:`vasa.video.data`
(generated, kept on the device; a single frame cannot solve it), or with ``data_root`` a dataset
folder in one of the layouts of :mod:`vasa.video.data` (UCF-101, HMDB-51, Something-Something-V2,
class folders), decoded on the host batch by batch: TSN sampling and augmentation for training,
the views of ``eval_protocol`` for validation (logits averaged over the views), bad samples
raised or, with ``skip_bad_samples``, skipped and counted in metrics.csv. Clip shapes are
checked against the model before anything is compiled.

The ablations of the dissertation's Table 6.4 are config fields: ``temporal`` ("learned" |
"fixed" TSM pattern | "zero") and ``spatial`` ("learned" | "fixed" ShiftNet pattern); fixed
rows are set at initialisation and receive no update.
"""

from __future__ import annotations

import abc
import dataclasses
import os
import time
from dataclasses import dataclass
from typing import Annotated, Any, Iterable, Iterator, Literal

import jax
import jax.numpy as jnp
import optax
from flax import struct

from vasa.run import RunConfig, prepare_run, require
from vasa.run.fields import Length, NonNegFloat, NonNegInt, PosFloat, PosInt, Range, Seed, UnitFloat, check_fields
from vasa.video.data import (
    BadSampleError,
    EvalProtocol,
    Layout,
    VideoDataConfig,
    VideoDataset,
    average_views,
    batches,
    check_clip_shape,
)


@dataclass(frozen=True)
class VideoTrainConfig:
    """RubiksNet training options. Defaults: a reduced RubiksNet on the synthetic dataset at
    32x32, 8 frames, which trains on a 2-core CPU in minutes."""

    env: Annotated[str, Length(min=1)] = "synthetic"
    """run-directory label: 'synthetic' without data_root (the built-in dataset); with data_root any name
    ('synthetic' then stands for the layout's name)"""
    data_root: str | None = None
    """dataset folder (layouts in vasa.video.data); None: the built-in synthetic dataset"""
    layout: Layout = "ucf101"
    """layout of data_root: which split files list the samples, and where"""
    split: Annotated[int, Range(ge=1, le=3)] = 1
    """official split of UCF-101 and HMDB-51 (1-3; ignored by the other layouts)"""
    annotations_dir: str | None = None
    """split files' folder relative to data_root (None: data_root, then the official folder name)"""
    videos_dir: str | None = None
    """videos' folder relative to data_root (None: data_root)"""
    eval_protocol: EvalProtocol = "1clip-center"
    """validation views of data_root clips, logits averaged over them: 1 centre clip, or 2 clips x 3 crops"""
    skip_bad_samples: bool = False
    """skip missing, empty or unreadable data_root samples (counted in metrics.csv) instead of stopping"""
    flip: bool | None = None
    """random horizontal flip of data_root training clips (None: on, except for ssv2's direction labels)"""
    tier: Literal["tiny", "small", "medium", "large"] = "tiny"
    """RubiksNet tier (depths and widths of Table 6.1), unless width/blocks override it"""
    width: Annotated[int, Range(ge=8)] | None = 16
    """override the tier's base width (None: the tier's)"""
    blocks: tuple[PosInt, PosInt, PosInt, PosInt] | None = (1, 1, 1, 1)
    """override the tier's blocks per stage (None: the tier's)"""
    variant: Literal["rubiks3d", "rubiks3d-aq"] = "rubiks3d"
    """interpolated 3-D shift, or attention-quantized temporal shift"""
    temporal: Literal["learned", "fixed", "zero"] = "learned"
    """temporal shifts: learned, fixed at TSM's pattern (+1/-1 on 1/8 of channels each), or fixed at 0"""
    spatial: Literal["learned", "fixed"] = "learned"
    """spatial shifts: learned, or fixed at ShiftNet's 3x3 pattern"""
    num_frames: PosInt = 8
    """frames per clip"""
    image_size: Annotated[int, Range(ge=16)] = 32
    """frame height and width"""
    num_train: PosInt = 2048
    """training clips of the synthetic dataset (a data_root's split files say how many it has)"""
    num_val: PosInt = 512
    """validation clips of the synthetic dataset"""
    seed: Seed = 0
    """random seed (data, initialisation, shuffling)"""

    epochs: PosInt = 30
    """passes over the training clips"""
    batch_size: PosInt = 32
    """clips per training step and per validation batch (each validation clip with its eval_protocol views)"""
    learning_rate: PosFloat = 0.05
    """peak SGD learning rate"""
    momentum: Annotated[float, Range(ge=0, lt=1)] = 0.9
    """SGD momentum (Nesterov off)"""
    weight_decay: NonNegFloat = 5e-4
    """L2 on convolution and dense kernels (not BN, biases or shifts)"""
    schedule: Literal["cosine", "step"] = "cosine"
    """cosine decay to 0, or x0.1 at 50% and 75% of training"""
    warmup_epochs: NonNegInt = 1
    """linear learning-rate warm-up"""
    shift_lr_multiplier: NonNegFloat = 0.01
    """shift parameters' learning rate relative to the others (the original used 0.01)"""
    shift_grad_norm: Literal["equation", "released", "off"] = "equation"
    """scaled gradient normalisation of shifts (eqs. 6.9-6.10, or the released code's norm)"""
    temporal_lambda: NonNegFloat = 1.0
    """temporal factor lambda of the normalisation"""
    temperature_start: PosFloat = 2.0
    """AQ softmax temperature at the start (annealed exponentially)"""
    temperature_end: PosFloat = 1e-3
    """AQ softmax temperature at the end"""
    budget: UnitFloat = 0.125
    """AQ shift budget: target fraction of attention on non-zero temporal shifts"""
    budget_weight: NonNegFloat = 1.0
    """weight of the budget loss (eq. 6.8)"""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """compute dtype of the forward/backward pass (parameters stay float32)"""
    impl: Literal["auto", "xla", "pallas"] = "auto"
    """shift implementation: the Pallas kernels on a GPU and XLA elsewhere (auto), or forced"""
    integer_shift_grad: Literal["central", "one_sided"] = "central"
    """shift gradient at an exact integer shift: 0.5 * (x[s+1] - x[s-1]) (central), or x[s+1] - x[s]"""
    aq_init: Literal["released", "dissertation"] = "released"
    """AQ attention weights' initialisation: U[0, 1) as the released code, or U[1, 1.05] as the
    dissertation (its 400x faster-moving attention meets the budget in BENCHMARKS.md's AQ run)"""

    @property
    def steps_per_epoch(self) -> int:
        """Steps per epoch on the synthetic dataset (a data_root's: :attr:`DataSource.steps_per_epoch`)."""
        return self.num_train // self.batch_size

    @property
    def total_steps(self) -> int:
        """Steps of the whole run on the synthetic dataset."""
        return self.epochs * self.steps_per_epoch

    def validate(self) -> None:
        def need(ok, field, allowed):
            require(self, ok, field, allowed)

        check_fields(self)  # every field: type, finiteness, range, choice (its annotation)
        need(self.data_root is not None or self.env == "synthetic", "env",
             "without data_root only 'synthetic' is built in (set data_root to train on a dataset folder)")
        need(self.data_root is None or os.path.isdir(self.data_root), "data_root",
             "it must be an existing directory (or None for the synthetic dataset)")
        need(self.data_root is not None or self.batch_size <= self.num_train, "batch_size",
             f"it must not exceed num_train={self.num_train}")
        need(0 <= self.warmup_epochs < self.epochs, "warmup_epochs", f"it must be in [0, epochs={self.epochs})")
        need(self.temperature_end <= self.temperature_start, "temperature_end",
             f"it must be in (0, temperature_start={self.temperature_start}]")
        need(not (self.variant == "rubiks3d-aq" and self.temporal != "learned"), "temporal",
             "the AQ variant learns its temporal attention; use variant='rubiks3d' for fixed temporal shifts")


@struct.dataclass
class TrainState:
    """``params``, ``batch_stats``, ``opt_state``, ``key``, ``step`` (``[] int32``)."""

    params: Any
    batch_stats: Any
    opt_state: Any
    key: jax.Array
    step: jax.Array


def make_model(config: VideoTrainConfig, num_classes: int):
    """The RubiksNet of ``config`` (tier, optionally with a reduced width/depth)."""
    from vasa.video.rubiksnet import RubiksNet, tier_config

    tier = tier_config(config.tier)
    return RubiksNet(width=config.width or tier.width, repeats=tuple(config.blocks or tier.repeats),
                     num_classes=num_classes, num_frames=config.num_frames, variant=config.variant,
                     use_se=tier.use_se, se_reduction=tier.se_reduction, expansion=tier.expansion,
                     impl=config.impl, integer_shift_grad=config.integer_shift_grad, aq_init=config.aq_init)


def _leaf_name(path) -> str:
    last = path[-1]
    return str(getattr(last, "key", getattr(last, "name", last)))


def _shift_mask(config: VideoTrainConfig, leaf) -> jax.Array:
    """``[rows, 1]`` 1.0 for learned rows of a shift leaf, 0.0 for fixed ones."""
    rows = leaf.shape[0]
    learned = ([config.temporal == "learned"] if rows == 3 else []) + [config.spatial == "learned"] * 2
    return jnp.asarray(learned, jnp.float32)[:, None]


def set_fixed_shifts(config: VideoTrainConfig, params):
    """Overwrite the fixed rows of every ``"shift"`` leaf with their pattern (TSM temporal or
    zero; ShiftNet spatial)."""
    from vasa.video.shift import fixed_shift_table

    def fix(path, leaf):
        if _leaf_name(path) != "shift":
            return leaf
        c = leaf.shape[1]
        if leaf.shape[0] == 3 and config.temporal != "learned":
            fold = c // 8
            t = jnp.zeros((c,)) if config.temporal == "zero" else jnp.zeros((c,)).at[:fold].set(1.0).at[
                fold:2 * fold].set(-1.0)
            leaf = leaf.at[0].set(t)
        if config.spatial == "fixed":
            leaf = leaf.at[-2:].set(fixed_shift_table(c, 3).astype(leaf.dtype))
        return leaf

    return jax.tree_util.tree_map_with_path(fix, params)


def make_optimizer(config: VideoTrainConfig, steps_per_epoch: int | None = None
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """SGD-momentum with decoupled L2 on kernels, the shift optimizer, and the schedule over
    ``config.epochs`` epochs of ``steps_per_epoch`` steps (default: the synthetic dataset's,
    ``config.steps_per_epoch``; a data_root's is :attr:`DataSource.steps_per_epoch`)."""
    from vasa.video.shift import is_shift_param, shift_optimizer

    spe = steps_per_epoch or config.steps_per_epoch
    total = config.epochs * spe
    warm = config.warmup_epochs * spe
    if config.schedule == "cosine":
        schedule = (optax.warmup_cosine_decay_schedule(0.0, config.learning_rate, warm, total) if warm
                    else optax.cosine_decay_schedule(config.learning_rate, total))
    else:
        boundaries = {int(total * 0.5): 0.1, int(total * 0.75): 0.1}
        step_sched = optax.piecewise_constant_schedule(config.learning_rate, boundaries)
        schedule = optax.join_schedules([optax.linear_schedule(0.0, config.learning_rate, max(warm, 1)), step_sched],
                                        [warm]) if warm else step_sched

    decay_mask = lambda params: jax.tree_util.tree_map_with_path(
        lambda p, leaf: _leaf_name(p) == "kernel", params)
    base = optax.chain(optax.add_decayed_weights(config.weight_decay, decay_mask),
                       optax.sgd(schedule, momentum=config.momentum))
    if config.shift_grad_norm == "off":
        labels = lambda params: jax.tree_util.tree_map_with_path(
            lambda p, leaf: "shift" if is_shift_param(p, leaf) else "base", params)
        tx = optax.multi_transform({"shift": optax.chain(base, optax.scale(config.shift_lr_multiplier)),
                                    "base": base}, labels)
    else:
        tx = shift_optimizer(base, config.shift_lr_multiplier, temporal_lambda=config.temporal_lambda,
                             variant=config.shift_grad_norm)
    return tx, schedule


def temperature(config: VideoTrainConfig, step, steps_per_epoch: int | None = None) -> jax.Array:
    """AQ softmax temperature ``[] float32`` at ``step``, annealed over ``config.epochs`` epochs of
    ``steps_per_epoch`` steps (default: ``config.steps_per_epoch``, as :func:`make_optimizer`)."""
    from vasa.video.shift_aq import anneal_temperature

    total = config.epochs * (steps_per_epoch or config.steps_per_epoch)
    return anneal_temperature(step, total, config.temperature_start, config.temperature_end)


def attentions(params, temp) -> list:
    """AQ attention ``[K, C]`` of every block (empty for ``rubiks3d``)."""
    from vasa.video.shift_aq import aq_attention

    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return [aq_attention(leaf, temp) for path, leaf in leaves if _leaf_name(path) == "aq_weights"]


def _normalise(clips: jax.Array, dtype) -> jax.Array:
    """uint8 ``[N, T, H, W, 3]`` -> zero-mean unit-scale ``dtype`` (same shape)."""
    return ((clips.astype(jnp.float32) / 255.0 - 0.5) / 0.25).astype(dtype)


def make_steps(config: VideoTrainConfig, model, tx, steps_per_epoch: int | None = None):
    """Jitted ``train_step(state, clips, labels) -> (state, metrics)`` (state donated; clips
    uint8 ``[B, T, H, W, 3]``, labels int32 ``[B]``) and ``eval_step(state, clips, labels,
    hard=False) -> {"top1", "top5", "loss", "logits"}``: clips uint8 ``[B, V, T, H, W, 3]``
    (V views of each video; ``[B, T, H, W, 3]`` is one view) go through the model as
    ``[B * V, T, H, W, 3]``, the logits are averaged over the views (``"logits"``: float32
    ``[B, K]``), and top-1/top-5 hits and the cross-entropy are summed over the batch. With
    ``hard`` the AQ model runs with integer temporal shifts (its attention's argmax: ``quantize=True``).
    ``steps_per_epoch`` sets the AQ temperature schedule (see :func:`temperature`)."""
    dtype = jnp.bfloat16 if config.dtype == "bfloat16" else jnp.float32
    aq = config.variant == "rubiks3d-aq"

    def forward(params, batch_stats, clips, temp, train):
        cast = jax.tree.map(lambda p: p.astype(dtype), params)
        kwargs = {"temperature": temp} if aq else {}
        variables = {"params": cast, "batch_stats": batch_stats}
        if train:
            logits, updates = model.apply(variables, _normalise(clips, dtype), train=True, mutable=["batch_stats"],
                                          **kwargs)
            return logits.astype(jnp.float32), updates["batch_stats"]
        return model.apply(variables, _normalise(clips, dtype), train=False, **kwargs).astype(jnp.float32), batch_stats

    def train_step(state: TrainState, clips, labels):
        temp = temperature(config, state.step, steps_per_epoch)

        def loss_fn(params):
            logits, stats = forward(params, state.batch_stats, clips, temp, True)
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
            loss, extra = ce, {}
            if aq:
                from vasa.video.shift_aq import budget_loss, nonzero_fraction

                att = attentions(params, temp)
                loss = ce + config.budget_weight * budget_loss(att, config.budget)
                extra = {"nonzero_fraction": nonzero_fraction(att)}
            acc = jnp.mean(jnp.argmax(logits, -1) == labels)
            return loss, (stats, {"loss": loss, "cross_entropy": ce, "train_acc": acc, **extra})

        (_, (stats, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        grads = jax.tree_util.tree_map_with_path(
            lambda p, g: g * _shift_mask(config, g) if _leaf_name(p) == "shift" else g, grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics["temperature"] = temp
        return state.replace(params=params, batch_stats=stats, opt_state=opt_state, step=state.step + 1), metrics

    def eval_step(state: TrainState, clips, labels, hard: bool = False):
        if clips.ndim not in (5, 6):
            raise ValueError(f"eval_step takes clips [B, V, T, H, W, 3] or [B, T, H, W, 3], got shape {clips.shape}")
        views = clips if clips.ndim == 6 else clips[:, None]
        b, v = views.shape[:2]
        flat = views.reshape((b * v,) + views.shape[2:])
        if hard:
            logits = model.apply({"params": state.params, "batch_stats": state.batch_stats},
                                 _normalise(flat, jnp.float32), train=False, quantize=True)
        else:
            temp = temperature(config, state.step, steps_per_epoch)
            logits, _ = forward(state.params, state.batch_stats, flat, temp, False)
        logits = average_views(logits.reshape(b, v, -1))
        top5 = jax.lax.top_k(logits, min(5, logits.shape[-1]))[1]
        return {"top1": jnp.sum(top5[:, 0] == labels), "top5": jnp.sum(jnp.any(top5 == labels[:, None], -1)),
                "loss": jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits, labels)), "logits": logits}

    return jax.jit(train_step, donate_argnums=0), jax.jit(eval_step, static_argnums=3)


def init(config: VideoTrainConfig, model, tx, num_classes: int) -> TrainState:
    key = jax.random.PRNGKey(config.seed)
    k_init, k_run = jax.random.split(key)
    dummy = jnp.zeros((1, config.num_frames, config.image_size, config.image_size, 3))
    kwargs = {"temperature": config.temperature_start} if config.variant == "rubiks3d-aq" else {}
    variables = jax.jit(lambda k: model.init(k, dummy, train=False, **kwargs))(k_init)
    params = set_fixed_shifts(config, variables["params"])
    return TrainState(params=params, batch_stats=variables["batch_stats"], opt_state=tx.init(params), key=k_run,
                      step=jnp.zeros((), jnp.int32))


def evaluate(eval_step, state, batches: Iterable, with_hard: bool = False) -> dict:
    """Validation metrics over ``batches`` of ``(clips, labels int32 [B])``, clips uint8
    ``[B, V, T, H, W, 3]`` (logits averaged over the V views; ``[B, T, H, W, 3]`` is one view):
    ``val_top1`` / ``val_top5`` accuracy (%) and ``val_loss`` (mean cross-entropy); with
    ``with_hard`` also ``val_top1_hard``, the AQ model's top-1 with integer temporal shifts on the
    same clips (each batch is read once). Sums stay on the device until the end."""
    modes = (False, True) if with_hard else (False,)
    sums = {hard: {"top1": 0, "top5": 0, "loss": 0.0} for hard in modes}
    n = 0
    for clips, labels in batches:
        n += int(labels.shape[0])
        for hard in modes:
            out = eval_step(state, clips, labels, hard)
            sums[hard] = {k: total + out[k] for k, total in sums[hard].items()}
    sums = jax.device_get(sums)
    soft = sums[False]
    metrics = {"val_top1": 100 * float(soft["top1"]) / n, "val_top5": 100 * float(soft["top5"]) / n,
               "val_loss": float(soft["loss"]) / n}
    if with_hard:
        metrics["val_top1_hard"] = 100 * float(sums[True]["top1"]) / n
    return metrics


def load_synthetic(config: VideoTrainConfig):
    """``(train_clips, train_labels, val_clips, val_labels, class_names)`` on the device: clips
    uint8 ``[N, T, S, S, 3]`` (``N = num_train`` / ``num_val``), labels int32 ``[N]``."""
    from vasa.video.data import CLASS_NAMES, synthetic_temporal

    tr = synthetic_temporal(config.seed, config.num_train, num_frames=config.num_frames, size=config.image_size)
    va = synthetic_temporal(config.seed + 1, config.num_val, num_frames=config.num_frames, size=config.image_size)
    return (*map(jnp.asarray, tr), *map(jnp.asarray, va), list(CLASS_NAMES))


class DataSource(abc.ABC):
    """Training and validation clips for :func:`train` (see :func:`resolve_data`).

    ``class_names``; ``steps_per_epoch``: full training batches in an epoch (the learning-rate
    and AQ temperature schedules count with it); ``clip_shape()``: the shape of training clips
    ``(N, T, S, S, 3)``, checked against the model before anything compiles;
    ``train_batches(key)``: one epoch of ``(clips uint8 [B, T, S, S, 3], labels int32 [B])``
    shuffled with the JAX ``key``; ``val_batches()``: the validation clips in order,
    ``(clips uint8 [B, V, T, S, S, 3], labels int32 [B])`` with the V views of the evaluation
    protocol (the last batch may be shorter); ``skipped``: ``{"train": int, "val": int}``, the
    bad samples skipped by the latest training epoch and validation pass.
    """

    class_names: tuple[str, ...]
    steps_per_epoch: int

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def skipped(self) -> dict[str, int]:
        return {"train": 0, "val": 0}

    @abc.abstractmethod
    def clip_shape(self) -> tuple[int, ...]:
        """See the class docstring."""

    @abc.abstractmethod
    def train_batches(self, key: jax.Array) -> Iterator[tuple[Any, Any]]:
        """See the class docstring."""

    @abc.abstractmethod
    def val_batches(self) -> Iterator[tuple[Any, Any]]:
        """See the class docstring."""


class SyntheticData(DataSource):
    """The synthetic temporal-order dataset: ``num_train`` training and ``num_val`` validation
    clips generated once (:func:`load_synthetic`) and kept on the device; one view per clip;
    ``num_train // batch_size`` steps per epoch."""

    def __init__(self, config: VideoTrainConfig):
        self.batch_size = config.batch_size
        self.x_train, self.y_train, self.x_val, self.y_val, names = load_synthetic(config)
        self.class_names = tuple(names)
        self.steps_per_epoch = config.steps_per_epoch

    def clip_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape)

    def train_batches(self, key: jax.Array) -> Iterator[tuple[jax.Array, jax.Array]]:
        b = self.batch_size
        perm = jax.random.permutation(key, self.x_train.shape[0])
        for i in range(self.steps_per_epoch):
            idx = perm[i * b:(i + 1) * b]
            yield self.x_train[idx], self.y_train[idx]

    def val_batches(self) -> Iterator[tuple[jax.Array, jax.Array]]:
        b = self.batch_size
        for i in range(0, self.x_val.shape[0], b):
            yield self.x_val[i:i + b, None], self.y_val[i:i + b]


class _CountedDataset(VideoDataset):
    """A :class:`VideoDataset` that counts the bad samples it meets in ``bad`` (``batches``
    reports its running totals with each batch only, so skips after the last batch would go
    unseen)."""

    bad = 0

    def load(self, i, rng=None):
        try:
            return super().load(i, rng)
        except BadSampleError:
            self.bad += 1
            raise


class FileData(DataSource):
    """A dataset folder (``config.data_root`` in ``config.layout``, ``split``, ...), decoded on the
    host a batch at a time (:func:`vasa.video.data.batches`). Training: TSN sampling,
    multi-scale crop and flip, ``len(train) // batch_size`` steps per epoch (fewer when bad
    samples are skipped); validation: the views of ``config.eval_protocol``. Bad samples raise
    :class:`~vasa.video.data.BadSampleError`, or with ``config.skip_bad_samples`` are skipped
    and counted in ``skipped``."""

    def __init__(self, config: VideoTrainConfig):
        common = dict(root=config.data_root, layout=config.layout, split=config.split,
                      annotations_dir=config.annotations_dir, videos_dir=config.videos_dir,
                      num_frames=config.num_frames, image_size=config.image_size, flip=config.flip,
                      eval_protocol=config.eval_protocol, skip_bad_samples=config.skip_bad_samples)
        self.train = _CountedDataset(VideoDataConfig(subset="train", **common))
        self.val = _CountedDataset(VideoDataConfig(subset="val", **common))
        if self.val.class_names != self.train.class_names:
            raise ValueError(f"{config.layout} data under {config.data_root!r}: the validation classes "
                             f"{list(self.val.class_names)} differ from the training classes "
                             f"{list(self.train.class_names)}")
        require(config, config.batch_size <= len(self.train), "batch_size",
                f"it must not exceed the {len(self.train)} training samples under data_root={config.data_root!r}")
        self.batch_size, self.seed = config.batch_size, config.seed
        self.class_names = self.train.class_names
        self.steps_per_epoch = len(self.train) // config.batch_size

    @property
    def skipped(self) -> dict[str, int]:
        return {"train": self.train.bad, "val": self.val.bad}

    def clip_shape(self) -> tuple[int, ...]:
        """``(1, T, S, S, 3)``: one training clip decoded (the first good one in a shuffle by ``seed``)."""
        clips, _, _ = next(batches(self.train, 1, self.seed))
        return tuple(clips.shape)

    def train_batches(self, key: jax.Array) -> Iterator[tuple[Any, Any]]:
        self.train.bad = 0
        for clips, labels, _ in batches(self.train, self.batch_size, key, train=True):
            yield clips, labels

    def val_batches(self) -> Iterator[tuple[Any, Any]]:
        self.val.bad = 0
        for clips, labels, _ in batches(self.val, self.batch_size, 0, train=False):
            yield clips, labels


def resolve_data(config: VideoTrainConfig) -> DataSource:
    """The data of ``config``: :class:`SyntheticData` without ``data_root``, else :class:`FileData`
    (which reads the split files now, so its ``steps_per_epoch`` is known before the optimizer
    is built)."""
    return SyntheticData(config) if config.data_root is None else FileData(config)


LOGGED = ("loss", "cross_entropy", "train_acc", "val_top1", "val_top5", "val_loss", "learning_rate", "temperature",
          "nonzero_fraction", "val_top1_hard", "skipped_train", "skipped_val")


# epochs are long: evaluate after each, checkpoint every 5 (the run settings a bare --resume
# treats as not given)
DEFAULT_RUN = RunConfig(eval_every=1, checkpoint_every=5)


def train(config: VideoTrainConfig = VideoTrainConfig(), run: RunConfig = DEFAULT_RUN):
    """Train with logging (one row per epoch), evaluation every ``run.eval_every`` epochs
    (and for AQ also with hard integer shifts), checkpoints every ``run.checkpoint_every``
    epochs, and resume (``run.resume``, see :mod:`vasa.run.rundir`; explicit run settings are
    those that differ from :data:`DEFAULT_RUN`). The data comes from :func:`resolve_data`; its
    clip shape is checked against the model (``ValueError``) before anything compiles. Rows
    count the bad samples skipped (``skipped_train``, ``skipped_val``). Returns ``(state, rows)``."""
    run.validate()
    if config.data_root is not None and config.env == "synthetic":  # label a dataset run by its layout
        config = dataclasses.replace(config, env=config.layout)
    plan = prepare_run(config, run, "video", defaults=DEFAULT_RUN, prefix="rubiksnet-")
    config, run = plan.config, plan.run
    config.validate()
    data = resolve_data(config)
    check_clip_shape(data.clip_shape(), config.num_frames, 3, config.image_size)
    spe = data.steps_per_epoch
    model = make_model(config, data.num_classes)
    tx, schedule = make_optimizer(config, spe)
    with plan.open() as session:
        start, state = session.restore(init(config, model, tx, data.num_classes))
        train_step, eval_step = make_steps(config, model, tx, spe)
        curve = {"series": (("train_acc_pct", "training batches"), ("val_top1", "validation top-1")),
                 "xlabel": "training clips seen", "ylabel": "accuracy (%)"}
        session.begin(config.epochs, start, curve=curve)
        B = config.batch_size
        stop = config.epochs if run.max_iterations is None else min(config.epochs, start + run.max_iterations)
        for epoch in range(start + 1, stop + 1):
            t = time.perf_counter()
            sums: dict[str, Any] = {}
            steps = 0
            for clips, labels in data.train_batches(jax.random.fold_in(state.key, epoch)):
                state, metrics = train_step(state, clips, labels)
                if epoch == start + 1 and steps == 0:
                    jax.block_until_ready(metrics)
                    session.compile_s = time.perf_counter() - t
                steps += 1
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + v
            if not steps:
                raise ValueError(f"epoch {epoch} gave no full batch of batch_size={B} clips "
                                 f"({data.skipped['train']} bad samples skipped)")
            metrics = {k: float(v) / steps for k, v in jax.device_get(sums).items()}
            session.check_finite(metrics, epoch)
            session.wall += time.perf_counter() - t
            row = {"iteration": epoch, "env_steps": int(state.step) * B, "wall_time": session.wall,
                   "learning_rate": float(schedule(int(state.step))), "skipped_train": data.skipped["train"],
                   **metrics}
            if epoch == config.epochs or (run.eval_every and epoch % run.eval_every == 0):
                with_hard = config.variant == "rubiks3d-aq"
                row.update(evaluate(eval_step, state, data.val_batches(), with_hard=with_hard))
                row["skipped_val"] = data.skipped["val"]
            row = {k: row.get(k, float("nan")) for k in ("iteration", "env_steps", "wall_time") + LOGGED}
            row["train_acc_pct"] = 100 * row["train_acc"]
            session.log(row)
            if epoch == stop or (run.checkpoint_every and epoch % run.checkpoint_every == 0):
                session.save(epoch, state)
    return state, session.rows


__all__ = ["DEFAULT_RUN", "DataSource", "FileData", "SyntheticData", "TrainState", "VideoTrainConfig", "attentions",
           "evaluate", "init", "load_synthetic", "make_model", "make_optimizer", "make_steps", "resolve_data",
           "set_fixed_shifts", "temperature", "train"]
