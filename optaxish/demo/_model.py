"""The demo's classifier: a tanh MLP, its loss and its accuracy.

Both halves of the demo train this model: the functional half on a pytree of
arrays, the facade half on the values of :class:`optaxish.Variable`\\ s.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

Params = list[dict[str, Any]]

SIZES = (2, 64, 64, 3)


def init_mlp(key: jax.Array, sizes: tuple[int, ...] = SIZES) -> Params:
    """Glorot-initialised dense layers ``[{"w": (n_in, n_out), "b": (n_out,)}]``.

    Examples:
      >>> params = init_mlp(jax.random.key(0), (2, 4, 3))
      >>> [p["w"].shape for p in params], params[0]["b"].dtype
      ([(2, 4), (4, 3)], dtype('float32'))
    """
    params = []
    for k, (n_in, n_out) in zip(
        jax.random.split(key, len(sizes) - 1), zip(sizes, sizes[1:])
    ):
        scale = jnp.sqrt(2.0 / (n_in + n_out))
        params.append(
            {"w": scale * jax.random.normal(k, (n_in, n_out)), "b": jnp.zeros(n_out)}
        )
    return params


def mlp(params: Params, x: jax.Array, compute_dtype: Any = None) -> jax.Array:
    """The logits, in float32; the layers run in ``compute_dtype`` when given
    (Keras' mixed precision: float32 weights cast to float16 for the matmuls,
    the logits cast back to float32 before the softmax).

    Examples:
      >>> params = init_mlp(jax.random.key(0), (2, 4, 3))
      >>> mlp(params, jnp.ones((5, 2)), compute_dtype=jnp.float16).dtype
      dtype('float32')
    """
    if compute_dtype is not None:
        params = jax.tree.map(lambda p: p.astype(compute_dtype), params)
        x = x.astype(compute_dtype)
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return (x @ params[-1]["w"] + params[-1]["b"]).astype(jnp.float32)


def cross_entropy(
    params: Params, x: jax.Array, y: jax.Array, compute_dtype: Any = None
) -> jax.Array:
    """Mean softmax cross-entropy (float32).

    Examples:
      >>> params = init_mlp(jax.random.key(0), (2, 4, 3))
      >>> cross_entropy(params, jnp.zeros((5, 2)), jnp.zeros(5, jnp.int32))
      Array(1.0986123, dtype=float32)
    """
    logp = jax.nn.log_softmax(mlp(params, x, compute_dtype))
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def accuracy(params: Params, x: jax.Array, y: jax.Array) -> float:
    """The fraction of points classified correctly (float32 compute).

    Examples:
      >>> params = init_mlp(jax.random.key(0), (2, 4, 3))
      >>> 0.0 <= accuracy(params, jnp.ones((5, 2)), jnp.zeros(5, jnp.int32)) <= 1.0
      True
    """
    return float(jnp.mean(jnp.argmax(mlp(params, x), axis=1) == y))
