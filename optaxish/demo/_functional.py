"""The functional-API half of the demo: a jit-compiled training step."""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import optaxish as ox
from optaxish.demo._progress import Progress


def init_mlp(key: jax.Array, sizes: tuple[int, ...]) -> list[dict[str, jax.Array]]:
    """Glorot-initialised dense layers."""
    params = []
    for k, (n_in, n_out) in zip(
        jax.random.split(key, len(sizes) - 1), zip(sizes, sizes[1:])
    ):
        scale = jnp.sqrt(2.0 / (n_in + n_out))
        params.append(
            {"w": scale * jax.random.normal(k, (n_in, n_out)), "b": jnp.zeros(n_out)}
        )
    return params


def mlp(params: list[dict[str, jax.Array]], x: jax.Array) -> jax.Array:
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def cross_entropy(params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
    logits = mlp(params, x)
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def accuracy(params: Any, x: jax.Array, y: jax.Array) -> float:
    return float(jnp.mean(jnp.argmax(mlp(params, x), axis=1) == y))


def train_functional(
    x: np.ndarray, y: np.ndarray, steps: int = 1500, batch: int = 128, seed: int = 0
) -> dict[str, float]:
    """Trains an MLP with ``chain(clip_by_global_norm, adamw)`` and a warm-up
    cosine schedule, in one ``jax.jit`` step with donated buffers."""
    schedule = ox.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=0.02,
        warmup_steps=min(100, steps // 5),
        decay_steps=steps,
    )
    tx = ox.chain(ox.clip_by_global_norm(1.0), ox.adamw(schedule, weight_decay=1e-4))
    params = init_mlp(jax.random.key(seed), (2, 64, 64, int(y.max()) + 1))
    opt_state = tx.init(params)

    def step(params, opt_state, xb, yb):
        loss, grads = jax.value_and_grad(cross_entropy)(params, xb, yb)
        updates, opt_state = tx.update(grads, opt_state, params)
        return ox.apply_updates(params, updates), opt_state, loss

    step = jax.jit(step, donate_argnums=(0, 1))
    rng = np.random.default_rng(seed)
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    idx = rng.integers(0, len(y), size=(steps, batch))
    params, opt_state, loss = step(params, opt_state, xj[idx[0]], yj[idx[0]])  # compile
    bar = Progress(steps, label="functional  ")
    start = time.perf_counter()
    for i in range(1, steps):
        params, opt_state, loss = step(params, opt_state, xj[idx[i]], yj[idx[i]])
        if i % 100 == 0 or i == steps - 1:
            bar.update(i + 1, loss=float(loss))
    jax.block_until_ready(params)
    elapsed = time.perf_counter() - start
    bar.close()
    return {
        "loss": float(cross_entropy(params, xj, yj)),
        "accuracy": accuracy(params, xj, yj),
        "steps_per_second": (steps - 1) / elapsed,
    }
