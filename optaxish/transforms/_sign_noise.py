"""Sign of the updates, and annealed Gaussian gradient noise."""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp

from optaxish import _numerics
from optaxish._base import GradientTransformationExtraArgs, init_empty_state
from optaxish._elementwise import mark_elementwise


def scale_by_sign() -> GradientTransformationExtraArgs:
    """Replaces every update entry by its sign (-1, 0 or 1).

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.scale_by_sign()
      >>> tx.update(jnp.array([-3.0, 0.0, 0.2]), tx.init(None))[0]
      Array([-1.,  0.,  1.], dtype=float32)
    """

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        return jax.tree.map(jnp.sign, updates), state

    return mark_elementwise(
        GradientTransformationExtraArgs(init_empty_state, update_fn)
    )


class AddNoiseState(NamedTuple):
    """State of :func:`add_noise`.

    Attributes:
      count: number of updates so far (int32 scalar); anneals the variance.
      rng_key: the typed PRNG key the next noise is drawn from.
    """

    count: jax.Array
    rng_key: jax.Array


def _as_typed_key(key) -> jax.Array:
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if isinstance(key, int):
        return jax.random.key(key)
    dtype, shape = getattr(key, "dtype", None), getattr(key, "shape", None)
    if dtype == jnp.uint32 and shape == (2,):  # a raw jax.random.PRNGKey
        return jax.random.wrap_key_data(key)
    if shape == () and dtype is not None and jnp.issubdtype(dtype, jnp.integer):
        return jax.random.key(key)
    raise TypeError(
        "`key` must be a jax.random.key, a raw jax.random.PRNGKey or an int seed. "
        f"Received: key={key!r}"
    )


def _check_non_negative(name: str, value) -> None:
    if isinstance(value, int | float) and value < 0:
        raise ValueError(f"`{name}` must be >= 0. Received: {name}={value!r}")


def add_noise(
    eta: jax.typing.ArrayLike,
    gamma: jax.typing.ArrayLike,
    key: jax.Array | int | None = None,
    *,
    seed: int | None = None,
) -> GradientTransformationExtraArgs:
    """Adds Gaussian noise of variance ``eta / t**gamma`` at step ``t`` (from 1).

    Each step splits the stored key, then draws one normal sample per leaf (in
    the leaf's dtype) from one half. Same keys give optax's numbers. Each
    ``init`` stores a copy of the key (optax stores the key given), so a
    state donated to a jitted step leaves the key of the next ``init`` intact.

    Args:
      eta: the variance at the first step.
      gamma: the annealing exponent.
      key: a ``jax.random.key``, a raw ``jax.random.PRNGKey`` or an int seed.
        ``None`` uses seed 0 (optax warns there; we do not).
      seed: deprecated spelling of an int ``key`` (warns).

    Returns:
      A :class:`~optaxish.GradientTransformationExtraArgs`.

    Raises:
      ValueError: for negative ``eta``/``gamma``, or both ``key`` and ``seed``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.add_noise(eta=0.01, gamma=0.55, key=jax.random.key(0))
      >>> u, state = tx.update(jnp.zeros(3), tx.init(jnp.zeros(3)))
      >>> u.shape, int(state.count)
      ((3,), 1)

    References:
      Neelakantan et al, `Adding Gradient Noise Improves Learning for Very Deep
      Networks <https://arxiv.org/abs/1511.06807>`_, 2015
    """
    _check_non_negative("eta", eta)
    _check_non_negative("gamma", gamma)
    if seed is not None:
        warnings.warn(
            "`seed` is deprecated; pass the seed or a key as `key`.",
            DeprecationWarning,
            stacklevel=2,
        )
        if key is not None:
            raise ValueError(
                f"Pass only one of `key` and `seed`. Received: key={key!r}, seed={seed!r}"
            )
        key = seed
    typed_key = _as_typed_key(0 if key is None else key)

    def init_fn(params):
        del params
        # A copy: a state donated to a jitted step must not take the key this
        # transformation keeps for the next `init` (or the caller's key).
        return AddNoiseState(
            count=jnp.zeros([], jnp.int32), rng_key=jnp.copy(typed_key)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        count = _numerics.safe_increment(state.count)
        std = jnp.sqrt(eta / count**gamma)
        rng_key, sample_key = jax.random.split(state.rng_key)
        leaves, treedef = jax.tree.flatten(updates)
        keys = jax.random.split(sample_key, len(leaves))
        noisy = [
            (g + std * jax.random.normal(k, g.shape, g.dtype)).astype(g.dtype)
            for g, k in zip(leaves, keys)
        ]
        return treedef.unflatten(noisy), AddNoiseState(count=count, rng_key=rng_key)

    return GradientTransformationExtraArgs(init_fn, update_fn)
