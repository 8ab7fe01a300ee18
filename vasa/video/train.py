"""Train RubiksNet (or its AQ variant) on video clips: SGD with momentum, weight decay on
convolution and dense kernels only, the shift parameters' own learning-rate multiplier and
scaled gradient normalisation (:func:`vasa.video.shift.shift_optimizer`), cosine or step
schedule, AQ temperature annealing with the shift-budget loss, optional bfloat16 compute,
full-state checkpoints with resume, metrics CSV and curves, top-1/top-5 evaluation.

Data: the synthetic temporal-order dataset of :mod:`vasa.video.data` (generated, kept on the
device; a single frame cannot solve it). The ablations of the dissertation's Table 6.4 are
config fields: ``temporal`` ("learned" | "fixed" TSM pattern | "zero") and ``spatial``
("learned" | "fixed" ShiftNet pattern); fixed rows are set at initialisation and receive no
update.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
import optax
from flax import struct

from vasa.run import Checkpointer, RunConfig, RunLogger, check_finite, finish_run, require, resolve_run
from vasa.run.logger import config_to_dict


@dataclass(frozen=True)
class VideoTrainConfig:
    """RubiksNet training options. Defaults: a reduced RubiksNet on the synthetic dataset at
    32x32, 8 frames, which trains on a 2-core CPU in minutes."""

    env: str = "synthetic"
    """dataset (only 'synthetic' is built in today; the name labels the run directory)"""
    tier: Literal["tiny", "small", "medium", "large"] = "tiny"
    """RubiksNet tier (depths and widths of Table 6.1), unless width/blocks override it"""
    width: int | None = 16
    """override the tier's base width (None: the tier's)"""
    blocks: tuple[int, int, int, int] | None = (1, 1, 1, 1)
    """override the tier's blocks per stage (None: the tier's)"""
    variant: Literal["rubiks3d", "rubiks3d-aq"] = "rubiks3d"
    """interpolated 3-D shift, or attention-quantized temporal shift"""
    temporal: Literal["learned", "fixed", "zero"] = "learned"
    """temporal shifts: learned, fixed at TSM's pattern (+1/-1 on 1/8 of channels each), or fixed at 0"""
    spatial: Literal["learned", "fixed"] = "learned"
    """spatial shifts: learned, or fixed at ShiftNet's 3x3 pattern"""
    num_frames: int = 8
    """frames per clip"""
    image_size: int = 32
    """frame height and width"""
    num_train: int = 2048
    """training clips"""
    num_val: int = 512
    """validation clips"""
    seed: int = 0
    """random seed (data, initialisation, shuffling)"""

    epochs: int = 30
    """passes over the training clips"""
    batch_size: int = 32
    """clips per step"""
    learning_rate: float = 0.05
    """peak SGD learning rate"""
    momentum: float = 0.9
    """SGD momentum (Nesterov off)"""
    weight_decay: float = 5e-4
    """L2 on convolution and dense kernels (not BN, biases or shifts)"""
    schedule: Literal["cosine", "step"] = "cosine"
    """cosine decay to 0, or x0.1 at 50% and 75% of training"""
    warmup_epochs: int = 1
    """linear learning-rate warm-up"""
    shift_lr_multiplier: float = 0.01
    """shift parameters' learning rate relative to the others (the original used 0.01)"""
    shift_grad_norm: Literal["equation", "released", "off"] = "equation"
    """scaled gradient normalisation of shifts (eqs. 6.9-6.10, or the released code's norm)"""
    temporal_lambda: float = 1.0
    """temporal factor lambda of the normalisation"""
    temperature_start: float = 2.0
    """AQ softmax temperature at the start (annealed exponentially)"""
    temperature_end: float = 1e-3
    """AQ softmax temperature at the end"""
    budget: float = 0.125
    """AQ shift budget: target fraction of attention on non-zero temporal shifts"""
    budget_weight: float = 1.0
    """weight of the budget loss (eq. 6.8)"""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """compute dtype of the forward/backward pass (parameters stay float32)"""

    @property
    def steps_per_epoch(self) -> int:
        return self.num_train // self.batch_size

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def validate(self) -> None:
        def need(ok, field, allowed):
            require(self, ok, field, allowed)

        need(self.env == "synthetic", "env", "only 'synthetic' is built in")
        for f in ("num_frames", "image_size", "num_train", "num_val", "epochs", "batch_size"):
            need(getattr(self, f) >= 1, f, "it must be >= 1")
        need(self.width is None or self.width >= 8, "width", "it must be >= 8 (or None)")
        need(self.blocks is None or all(b >= 1 for b in self.blocks), "blocks", "each stage needs >= 1 block")
        need(self.batch_size <= self.num_train, "batch_size", f"it must not exceed num_train={self.num_train}")
        need(self.image_size >= 16, "image_size", "it must be >= 16 (four stride-2 stages after the stem)")
        need(self.learning_rate > 0, "learning_rate", "it must be > 0")
        need(0 <= self.momentum < 1, "momentum", "it must be in [0, 1)")
        need(self.weight_decay >= 0, "weight_decay", "it must be >= 0")
        need(self.shift_lr_multiplier >= 0, "shift_lr_multiplier", "it must be >= 0")
        need(0 <= self.warmup_epochs < self.epochs, "warmup_epochs", f"it must be in [0, epochs={self.epochs})")
        need(0 < self.temperature_end <= self.temperature_start, "temperature_end",
             f"it must be in (0, temperature_start={self.temperature_start}]")
        need(0 <= self.budget <= 1, "budget", "it must be in [0, 1]")
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
                     use_se=tier.use_se, se_reduction=tier.se_reduction, expansion=tier.expansion)


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


def make_optimizer(config: VideoTrainConfig) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """SGD-momentum with decoupled L2 on kernels, the shift optimizer, and the schedule."""
    from vasa.video.shift import is_shift_param, shift_optimizer

    total = config.total_steps
    warm = config.warmup_epochs * config.steps_per_epoch
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


def temperature(config: VideoTrainConfig, step) -> jax.Array:
    from vasa.video.shift import anneal_temperature

    return anneal_temperature(step, config.total_steps, config.temperature_start, config.temperature_end)


def attentions(params, temp) -> list:
    """AQ attention ``[K, C]`` of every block (empty for ``rubiks3d``)."""
    from vasa.video.shift import aq_attention

    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return [aq_attention(leaf, temp) for path, leaf in leaves if _leaf_name(path) == "aq_weights"]


def _normalise(clips: jax.Array, dtype) -> jax.Array:
    """uint8 ``[N, T, H, W, 3]`` -> zero-mean unit-scale ``dtype``."""
    return ((clips.astype(jnp.float32) / 255.0 - 0.5) / 0.25).astype(dtype)


def make_steps(config: VideoTrainConfig, model, tx):
    """Jitted ``train_step(state, clips, labels) -> (state, metrics)`` (state donated) and
    ``eval_step(state, clips, labels) -> {"top1", "top5", "loss"}`` sums over the batch."""
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
        temp = temperature(config, state.step)

        def loss_fn(params):
            logits, stats = forward(params, state.batch_stats, clips, temp, True)
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
            loss, extra = ce, {}
            if aq:
                from vasa.video.shift import budget_loss, nonzero_fraction

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
        params = to_hard_shifts(state.params) if hard else state.params
        if hard:
            from vasa.video.rubiksnet import RubiksNet

            hard_model = RubiksNet(**{**{f.name: getattr(model, f.name) for f in dataclasses.fields(RubiksNet)
                                         if f.name not in ("parent", "name")}, "variant": "rubiks3d"})
            logits = hard_model.apply({"params": params, "batch_stats": state.batch_stats},
                                      _normalise(clips, jnp.float32), train=False)
        else:
            logits, _ = forward(params, state.batch_stats, clips, temperature(config, state.step), False)
        top5 = jax.lax.top_k(logits, min(5, logits.shape[-1]))[1]
        return {"top1": jnp.sum(top5[:, 0] == labels), "top5": jnp.sum(jnp.any(top5 == labels[:, None], -1)),
                "loss": jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits, labels))}

    return jax.jit(train_step, donate_argnums=0), jax.jit(eval_step, static_argnums=3)


def to_hard_shifts(params):
    """AQ parameters -> ``rubiks3d`` parameters with integer temporal shifts (the attention's
    argmax), for inference with ``quantize=True``; other trees are returned unchanged."""
    from vasa.video.shift import aq_to_hard_shift

    def convert(tree):
        if isinstance(tree, dict):
            if "aq_weights" in tree:
                rest = {k: convert(v) for k, v in tree.items() if k not in ("aq_weights", "shift")}
                return {**rest, "shift": aq_to_hard_shift(tree["aq_weights"], tree["shift"])}
            return {k: convert(v) for k, v in tree.items()}
        return tree

    return convert(params)


def init(config: VideoTrainConfig, model, tx, num_classes: int) -> TrainState:
    key = jax.random.PRNGKey(config.seed)
    k_init, k_run = jax.random.split(key)
    dummy = jnp.zeros((1, config.num_frames, config.image_size, config.image_size, 3))
    kwargs = {"temperature": config.temperature_start} if config.variant == "rubiks3d-aq" else {}
    variables = jax.jit(lambda k: model.init(k, dummy, train=False, **kwargs))(k_init)
    params = set_fixed_shifts(config, variables["params"])
    return TrainState(params=params, batch_stats=variables["batch_stats"], opt_state=tx.init(params), key=k_run,
                      step=jnp.zeros((), jnp.int32))


def evaluate(eval_step, state, clips, labels, batch_size: int, hard: bool = False) -> dict:
    """Top-1/top-5 accuracy (%) and mean loss over ``clips`` (uint8 ``[N, T, H, W, 3]``)."""
    sums = {"top1": 0.0, "top5": 0.0, "loss": 0.0}
    n = clips.shape[0]
    for i in range(0, n, batch_size):
        out = jax.device_get(eval_step(state, clips[i:i + batch_size], labels[i:i + batch_size], hard))
        for k in sums:
            sums[k] += float(out[k])
    return {"val_top1": 100 * sums["top1"] / n, "val_top5": 100 * sums["top5"] / n, "val_loss": sums["loss"] / n}


def load_synthetic(config: VideoTrainConfig):
    """``(train_clips, train_labels, val_clips, val_labels, class_names)`` on the device."""
    from vasa.video.data import CLASS_NAMES, synthetic_temporal

    tr = synthetic_temporal(config.seed, config.num_train, num_frames=config.num_frames, size=config.image_size)
    va = synthetic_temporal(config.seed + 1, config.num_val, num_frames=config.num_frames, size=config.image_size)
    return (*map(jnp.asarray, tr), *map(jnp.asarray, va), list(CLASS_NAMES))


LOGGED = ("loss", "cross_entropy", "train_acc", "val_top1", "val_top5", "val_loss", "learning_rate", "temperature",
          "nonzero_fraction", "val_top1_hard")


def train(config: VideoTrainConfig = VideoTrainConfig(), run: RunConfig = RunConfig(eval_every=1, checkpoint_every=5)):
    """Train with logging (one row per epoch), evaluation every ``run.eval_every`` epochs
    (and for AQ also with hard integer shifts), checkpoints every ``run.checkpoint_every``
    epochs, and resume (``run.resume``). Returns ``(state, rows)``."""
    run.validate()
    config, run_dir = resolve_run(config, run, "video", prefix="rubiksnet-")
    config.validate()
    x_train, y_train, x_val, y_val, names = load_synthetic(config)
    model = make_model(config, len(names))
    tx, schedule = make_optimizer(config)
    state = init(config, model, tx, len(names))
    checkpointer = Checkpointer(run_dir, keep=run.keep_checkpoints)
    start = 0
    if run.resume:
        start, state = checkpointer.restore(state)
    train_step, eval_step = make_steps(config, model, tx)
    saved = {"video": config_to_dict(config), "run": config_to_dict(run)}
    curve = {"series": (("train_acc_pct", "training batches"), ("val_top1", "validation top-1")),
             "xlabel": "training clips seen", "ylabel": "accuracy (%)"}
    logger = RunLogger(run_dir, saved, config.epochs, start, run.progress, curve=curve)
    wall = logger.last_value("wall_time") if start else 0.0
    rows, compile_s = [], 0.0
    spe, B = config.steps_per_epoch, config.batch_size
    try:
        stop = config.epochs if run.max_iterations is None else min(config.epochs, start + run.max_iterations)
        for epoch in range(start + 1, stop + 1):
            t = time.perf_counter()
            perm = jax.random.permutation(jax.random.fold_in(state.key, epoch), x_train.shape[0])
            sums: dict[str, float] = {}
            for i in range(spe):
                idx = perm[i * B:(i + 1) * B]
                state, metrics = train_step(state, x_train[idx], y_train[idx])
                if epoch == start + 1 and i == 0:
                    jax.block_until_ready(metrics)
                    compile_s = time.perf_counter() - t
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + v
            metrics = {k: float(v) / spe for k, v in jax.device_get(sums).items()}
            check_finite(metrics, epoch)
            wall += time.perf_counter() - t
            row = {"iteration": epoch, "env_steps": int(state.step) * B, "wall_time": wall,
                   "learning_rate": float(schedule(int(state.step))), **metrics}
            if epoch == config.epochs or (run.eval_every and epoch % run.eval_every == 0):
                row.update(evaluate(eval_step, state, x_val, y_val, B))
                if config.variant == "rubiks3d-aq":
                    row["val_top1_hard"] = evaluate(eval_step, state, x_val, y_val, B, hard=True)["val_top1"]
            row = {k: row.get(k, float("nan")) for k in ("iteration", "env_steps", "wall_time") + LOGGED}
            row["train_acc_pct"] = 100 * row["train_acc"]
            logger.log(row)
            rows.append(row)
            if epoch == stop or (run.checkpoint_every and epoch % run.checkpoint_every == 0):
                checkpointer.save(epoch, state, saved)
    finally:
        finish_run(logger, checkpointer, rows, run_dir, compile_s, wall)
    return state, rows


__all__ = ["TrainState", "VideoTrainConfig", "attentions", "evaluate", "init", "make_model", "make_optimizer",
           "make_steps", "set_fixed_shifts", "temperature", "to_hard_shifts", "train"]
