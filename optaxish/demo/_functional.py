"""The functional-API half of the demo: a jit-compiled training step."""

from __future__ import annotations

import time
from typing import TextIO

import jax
import jax.numpy as jnp
import numpy as np

import optaxish as ox
from optaxish.demo._model import SIZES, accuracy, cross_entropy, init_mlp
from optaxish.demo._progress import Progress

PEAK_LR = 0.02
WARMUP = 100
REPORT_EVERY = 100


def batch_indices(n: int, steps: int, batch: int, seed: int) -> np.ndarray:
    """The ``(steps, batch)`` sample indices both halves train on."""
    return np.random.default_rng(seed).integers(0, n, size=(steps, batch))


def train_functional(
    x: np.ndarray,
    y: np.ndarray,
    steps: int = 1500,
    batch: int = 128,
    seed: int = 0,
    stream: TextIO | None = None,
) -> dict[str, float]:
    """Trains the MLP with ``chain(clip_by_global_norm, adamw)`` and a warm-up
    cosine schedule, in one ``jax.jit`` step with donated buffers.

    Returns:
      ``loss`` and ``accuracy`` on the whole dataset, ``steps_per_second``
      (the first, compiling step excluded) and ``traces`` (how many times the
      step was traced: 1).
    """
    schedule = ox.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=PEAK_LR,
        warmup_steps=min(WARMUP, steps // 5),
        decay_steps=steps,
    )
    tx = ox.chain(ox.clip_by_global_norm(1.0), ox.adamw(schedule, weight_decay=1e-4))
    params = init_mlp(jax.random.key(seed), (*SIZES[:-1], int(y.max()) + 1))
    opt_state = tx.init(params)
    traces = 0

    def step(params, opt_state, xb, yb):
        nonlocal traces
        traces += 1
        loss, grads = jax.value_and_grad(cross_entropy)(params, xb, yb)
        updates, opt_state = tx.update(grads, opt_state, params)
        return ox.apply_updates(params, updates), opt_state, loss

    step = jax.jit(step, donate_argnums=(0, 1))
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    idx = batch_indices(len(y), steps, batch, seed)
    xs, ys = x[idx], y[idx]  # (steps, batch, ...) host arrays: no device gathers
    bar = Progress(steps, label="functional ", stream=stream)
    params, opt_state, loss = step(params, opt_state, xs[0], ys[0])  # compile
    jax.block_until_ready(loss)
    start = time.perf_counter()
    for i in range(1, steps):
        params, opt_state, loss = step(params, opt_state, xs[i], ys[i])
        if (i + 1) % REPORT_EVERY == 0 or i == steps - 1:
            bar.update(i + 1, loss=float(loss))
    jax.block_until_ready(params)
    elapsed = time.perf_counter() - start
    bar.close()
    return {
        "loss": float(cross_entropy(params, xj, yj)),
        "accuracy": accuracy(params, xj, yj),
        "steps_per_second": (steps - 1) / max(elapsed, 1e-9),
        "traces": traces,
    }
