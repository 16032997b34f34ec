"""Random trees shaped like a given tree, and PRNG-key unwrapping.

These mirror ``optax.tree.random_like``, ``split_key_like`` and
``unwrap_random_key_data``, with the same key splitting, hence the same
numbers for the same key.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def split_key_like(rng_key: jax.Array, target_tree: Any) -> Any:
    """One independent key per leaf of ``target_tree``, in a tree of its structure.

    The key is split into as many keys as the tree has leaves
    (``jax.random.split(rng_key, num_leaves)``), in leaf order.

    Args:
      rng_key: the key to split.
      target_tree: the tree whose structure the keys take.

    Returns:
      A tree of keys with the structure of ``target_tree``.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> keys = optaxish.tree.split_key_like(
      ...     jax.random.key(0), {"a": jnp.ones(2), "b": jnp.ones(3)})
      >>> sorted(keys), keys["a"].shape
      (['a', 'b'], ())
    """
    treedef = jax.tree.structure(target_tree)
    keys = jax.random.split(rng_key, treedef.num_leaves)
    return jax.tree.unflatten(treedef, list(keys))


def _takes_out_sharding(sampler: Callable[..., Any]) -> bool:
    try:
        return "out_sharding" in inspect.signature(sampler).parameters
    except (TypeError, ValueError):  # a callable without a signature
        return False


def random_like(
    rng_key: jax.Array,
    target_tree: Any,
    sampler: Callable[..., jax.typing.ArrayLike] = jax.random.normal,
    dtype: jax.typing.DTypeLike | None = None,
) -> Any:
    """A tree of random arrays with the structure and shapes of ``target_tree``.

    Each leaf is ``sampler(key, leaf.shape, dtype or leaf.dtype)`` with its own
    key from :func:`split_key_like`; a sampler that takes ``out_sharding``
    also gets the leaf's sharding.

    Args:
      rng_key: the key.
      target_tree: the tree to imitate (array leaves).
      sampler: ``sampler(key, shape, dtype)``, ``jax.random.normal`` by
        default; the dtype must suit it (e.g. an integer one for
        ``jax.random.rademacher``).
      dtype: the dtype of the draws; ``None`` takes each leaf's dtype.

    Returns:
      A tree with the structure of ``target_tree`` whose leaves are draws of
      ``sampler``.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> noise = optaxish.tree.random_like(
      ...     jax.random.key(0), {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)})
      >>> noise["w"].shape, noise["b"].dtype
      ((2, 3), dtype('float32'))
    """
    keys = split_key_like(rng_key, target_tree)
    with_sharding = _takes_out_sharding(sampler)

    def draw(leaf, key):
        kwargs = {"out_sharding": jax.typeof(leaf).sharding} if with_sharding else {}
        return sampler(key, jnp.shape(leaf), dtype or leaf.dtype, **kwargs)

    return jax.tree.map(draw, target_tree, keys)


def unwrap_random_key_data(input_tree: Any) -> Any:
    """Replaces typed PRNG keys (``jax.random.key``) by their raw key data.

    Typed keys cannot be compared numerically (``jnp.allclose`` rejects them);
    their ``jax.random.key_data`` (uint32 arrays) can. Other leaves are kept.

    It also lets a checkpointer that cannot store typed keys save a state
    holding them (:func:`~optaxish.noisy_sgd`'s): orbax before 0.11.27
    could not restore one into an abstract target. Save the unwrapped tree
    and, after restoring it, rewrap each key with
    ``jax.random.wrap_key_data(data, impl=jax.random.key_impl(key))``, where
    ``key`` is the matching key of ``tx.init(params)``. (orbax 0.11.27 and
    later need neither step; for ``flax.serialization`` call
    :func:`optaxish.register_flax_serialization`, which does both.)

    Args:
      input_tree: a tree of arrays and typed keys.

    Returns:
      The tree with every typed key replaced by its key data.

    Examples:
      >>> import jax
      >>> import optaxish
      >>> out = optaxish.tree.unwrap_random_key_data({"k": jax.random.key(0)})
      >>> out["k"].dtype
      dtype('uint32')
    """

    def unwrap(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(
            x.dtype, jax.dtypes.prng_key
        ):
            return jax.random.key_data(x)
        return x

    return jax.tree.map(unwrap, input_tree)
