"""The Keras-style half of the demo: ``minimize`` under ``LossScaleOptimizer``.

The weights are float32 :class:`optaxish.Variable`\\ s (the master copies of
Keras' ``"mixed_float16"`` policy) and the model computes in float16, so the
gradients pass through float16 and need loss scaling: the scale starts at
``2**15``, is halved (and the step skipped) whenever the float16 backward pass
overflows, and doubles after ``growth_steps`` finite steps in a row. The
batch reaches the loss through two variables, assigned before each step:
``minimize`` traces the loss once and reads changing data only through
variables.
"""

from __future__ import annotations

import time
from typing import TextIO

import jax
import jax.numpy as jnp
import numpy as np

import optaxish
from optaxish.demo._functional import PEAK_LR, REPORT_EVERY, WARMUP, batch_indices
from optaxish.demo._model import SIZES, accuracy, cross_entropy, init_mlp
from optaxish.demo._progress import Progress
from optaxish.mixed_precision import LossScaleOptimizer, Policy
from optaxish.optimizers import Adam, schedules

GROWTH_STEPS = 100


def train_facade(
    x: np.ndarray,
    y: np.ndarray,
    steps: int = 1500,
    batch: int = 128,
    seed: int = 0,
    growth_steps: int = GROWTH_STEPS,
    stream: TextIO | None = None,
) -> dict[str, float]:
    """Trains the MLP with ``LossScaleOptimizer(Adam(...)).minimize`` in
    float16 compute (``"mixed_float16"``), one call per step.

    Returns:
      ``loss`` and ``accuracy`` on the whole dataset (float32 compute),
      ``steps_per_second`` (the first, compiling step excluded),
      ``loss_scale`` (the final scale), ``skipped`` (steps skipped for
      non-finite float16 gradients, seen as halvings of the scale) and ``traces`` (how many times the
      optimizer traced a step: 1).
    """
    policy = Policy("mixed_float16")
    params = init_mlp(jax.random.key(seed), (*SIZES[:-1], int(y.max()) + 1))
    layers = [
        {
            k: optaxish.Variable(v, name=f"dense_{i}/{k}", dtype=policy.variable_dtype)
            for k, v in layer.items()
        }
        for i, layer in enumerate(params)
    ]
    var_list = [v for layer in layers for v in layer.values()]
    idx = batch_indices(len(y), steps, batch, seed)
    xs, ys = x[idx], y[idx]  # (steps, batch, ...) host arrays: no device gathers
    x_batch = optaxish.Variable(xs[0], trainable=False, name="x_batch")
    y_batch = optaxish.Variable(ys[0], trainable=False, name="y_batch")

    def values() -> list[dict[str, jax.Array]]:
        return [{k: v.value for k, v in layer.items()} for layer in layers]

    def loss() -> jax.Array:
        return cross_entropy(
            values(), x_batch.value, y_batch.value, policy.compute_dtype
        )

    lr = schedules.CosineDecay(
        0.0,
        decay_steps=max(steps - WARMUP, 1),
        warmup_target=PEAK_LR,
        warmup_steps=min(WARMUP, steps // 5),
    )
    opt = LossScaleOptimizer(
        Adam(learning_rate=lr, global_clipnorm=1.0),
        dynamic_growth_steps=growth_steps,
    )
    bar = Progress(steps, label="facade     ", stream=stream)
    # The scale after each step, as device scalars: reading one as a number
    # would wait for its step, and the host would no longer run ahead.
    scales: list[jax.Array] = []

    def step(i: int) -> None:
        x_batch.assign(xs[i])
        y_batch.assign(ys[i])
        opt.minimize(loss, var_list)
        scales.append(opt.loss_scale)

    step(0)  # compiles the step
    float(loss())  # and the eager ops of the progress bar's loss
    start = time.perf_counter()
    for i in range(1, steps):
        step(i)
        if (i + 1) % REPORT_EVERY == 0 or i == steps - 1:
            bar.update(i + 1, loss=float(loss()), scale=int(scales[-1]))
    jax.block_until_ready(var_list[0].value)
    elapsed = time.perf_counter() - start
    bar.close()
    history = np.asarray(jax.device_get(scales))
    # A skipped step halves the scale; nothing else lowers it.
    skipped = int(np.sum(np.diff(history, prepend=opt.initial_scale) < 0))
    final = values()
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    return {
        "loss": float(cross_entropy(final, xj, yj)),
        "accuracy": accuracy(final, xj, yj),
        "steps_per_second": (steps - 1) / max(elapsed, 1e-9),
        "loss_scale": float(history[-1]),
        "skipped": skipped,
        "traces": opt._traces,
    }
