"""Different transformations for different parameters: ``partition``."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, NamedTuple

import jax

from optaxish._base import (
    GradientTransformationExtraArgs,
    OptState,
    set_to_zero,
    with_extra_args_support,
)
from optaxish._errors import check_prefix
from optaxish.combinators._masking import MaskedState, masked
from optaxish.tree._state import is_params_placeholder


class PartitionState(NamedTuple):
    """State of :func:`partition`.

    Attributes:
      inner_states: ``{label: MaskedState}``, one entry per transformation; each
        inner state has the parameter tree's structure with
        :class:`~optaxish.MaskedNode` where another label applies.
    """

    inner_states: Mapping[Hashable, OptState]


MultiTransformState = PartitionState


def _label_masks(labels: Any, keys: Any) -> dict[Hashable, Any]:
    return {k: jax.tree.map(lambda label, k=k: label == k, labels) for k in keys}


def partition(
    transforms: Mapping[Hashable, Any],
    param_labels: Any | Callable[[Any], Any],
    *,
    mask_compatible_extra_args: bool = False,
) -> GradientTransformationExtraArgs:
    """Applies a different transformation to each labelled group of parameters.

    Each parameter carries a label; the transformation under that label in
    ``transforms`` handles it (through :func:`~optaxish.masked`). The state is
    keyed by label, so ``state.inner_states["adam"]`` is that group's state;
    :mod:`optaxish.slots` reads it by name (``label="adam"``).

    Args:
      transforms: ``{label: transformation}``.
      param_labels: a tree of labels with the structure of the params (or a
        prefix of it), or a function of the params returning one. Every label
        must be a key of ``transforms``.
      mask_compatible_extra_args: also mask the keyword extras that have the
        structure of the updates.

    Returns:
      A :class:`~optaxish.GradientTransformationExtraArgs`; its state is a
      :class:`PartitionState`.

    Raises:
      ValueError: from ``init``, when a label has no transformation or the
        labels do not fit the params (the message names the first differing
        key path); from ``update``, when the updates do not have the structure
        the labels fitted at ``init``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> params = {"w": jnp.ones(2), "b": jnp.ones(1)}
      >>> tx = optaxish.partition(
      ...     {"fast": optaxish.scale(-1.0), "slow": optaxish.scale(-0.1)},
      ...     {"w": "fast", "b": "slow"})
      >>> updates, state = tx.update(params, tx.init(params))
      >>> updates["w"], updates["b"]
      (Array([-1., -1.], dtype=float32), Array([-0.1], dtype=float32))
    """
    transforms = {k: with_extra_args_support(t) for k, t in transforms.items()}

    def labels_for(tree):
        return param_labels(tree) if callable(param_labels) else param_labels

    def group_transforms(labels):
        masks = _label_masks(labels, transforms)
        return {
            k: masked(
                t, masks[k], mask_compatible_extra_args=mask_compatible_extra_args
            )
            for k, t in transforms.items()
        }

    def init_fn(params):
        # `tree.map_params` (ours or optax's) initializes on a placeholder
        # with no leaves to label: every group's state is built on it whole,
        # as `masked` does (optax's `partition` does the same).
        if is_params_placeholder(params):
            return PartitionState(
                inner_states={
                    k: MaskedState(inner_state=t.init(params))
                    for k, t in transforms.items()
                }
            )
        labels = labels_for(params)
        check_prefix(labels, params, "param_labels", "params", what="labels")
        unknown = {x for x in jax.tree.leaves(labels) if x not in transforms}
        if unknown:
            raise ValueError(
                "Some parameters have labels with no transformation in "
                f"`transforms`. Unknown labels: {sorted(map(repr, unknown))}; "
                f"`transforms` keys: {sorted(map(repr, transforms))}."
            )
        return PartitionState(
            inner_states={
                k: t.init(params) for k, t in group_transforms(labels).items()
            }
        )

    def update_fn(updates, state, params=None, **extra_args):
        if not hasattr(state, "inner_states"):
            raise ValueError(
                "`state` does not belong to `partition`: expected a "
                f"PartitionState, received {type(state).__name__}."
            )
        missing = [k for k in transforms if k not in state.inner_states]
        if missing:
            raise ValueError(
                f"`state.inner_states` lacks the labels {missing}; make sure the "
                "state came from this partition's `init`."
            )
        labels = labels_for(updates)
        # Fixed labels fitted the params at `init`: a misfit is the updates'.
        check_prefix(
            labels,
            updates,
            "param_labels(updates)" if callable(param_labels) else "param_labels",
            "updates",
            blame_tree=not callable(param_labels),
            what="labels",
        )
        new_states = {}
        for k, t in group_transforms(labels).items():
            updates, new_states[k] = t.update(
                updates, state.inner_states[k], params, **extra_args
            )
        return updates, PartitionState(inner_states=new_states)

    return GradientTransformationExtraArgs(init_fn, update_fn)


multi_transform = partition


def selective_transform(
    optimizer: Any, *, freeze_mask: Any
) -> GradientTransformationExtraArgs:
    """Runs ``optimizer`` on the unfrozen parameters only; frozen ones get zeros.

    Unlike ``chain(optimizer, freeze(mask))``, the optimizer keeps no state for
    frozen parameters. The state is a :class:`PartitionState` with the labels
    ``"train"`` and ``"freeze"``.

    Args:
      optimizer: the transformation for the trainable parameters.
      freeze_mask: a static boolean, or a tree of booleans with the structure of
        the params (or a prefix of it); ``True`` freezes.

    Returns:
      A :class:`~optaxish.GradientTransformationExtraArgs`.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> params = {"a": jnp.ones(1), "b": jnp.ones(2)}
      >>> tx = optaxish.selective_transform(
      ...     optaxish.scale(-0.5), freeze_mask={"a": True, "b": False})
      >>> updates, _ = tx.update(params, tx.init(params))
      >>> updates["a"], updates["b"]
      (Array([0.], dtype=float32), Array([-0.5, -0.5], dtype=float32))
    """

    def labels(params):
        del params
        return jax.tree.map(lambda m: "freeze" if m else "train", freeze_mask)

    return partition({"train": optimizer, "freeze": set_to_zero()}, labels)
