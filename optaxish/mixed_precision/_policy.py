"""Keras' ``Policy``, ``global_policy`` and ``set_global_policy``.

A thin layer over the core's :class:`optaxish.loss_scale.Policy`: Keras'
names and string dtypes on top, the core policy (with its cast helpers)
underneath.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from optaxish.loss_scale import Policy as CorePolicy

_MIXED = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}
_REMOVED = {
    "infer_float32_vars": " Please use the 'mixed_float16' or 'mixed_bfloat16' "
    "policy instead.",
    "infer_with_float32_vars": " Please use the 'mixed_float16' or "
    "'mixed_bfloat16' policy instead.",
    "float16_with_float32_vars": " Please use the 'mixed_float16' policy instead.",
    "bfloat16_with_float32_vars": " Please use the 'mixed_bfloat16' policy instead.",
}


# TensorFlow's own spellings (``tf.as_dtype``), which NumPy reads otherwise
# (``np.dtype("float")`` is float64).
_TF_ALIASES = {"half": "float16", "float": "float32", "double": "float64"}
_INFER = "_infer"


def _parse(name: str) -> tuple[str | None, str | None]:
    """``(compute dtype, variable dtype)`` of a Keras policy name."""
    if name.endswith("_float32_vars"):
        raise ValueError(
            "Policies ending in '_float32_vars' have been removed from "
            f"TensorFlow.{_REMOVED.get(name, '')} Got policy name: '{name}'"
        )
    if name in _MIXED:
        return _MIXED[name], "float32"
    if name == _INFER:
        return None, None
    if name in _TF_ALIASES:
        return _TF_ALIASES[name], _TF_ALIASES[name]
    try:
        dtype = jnp.dtype(name)
    except (TypeError, ValueError):
        dtype = None
    # Only a dtype's own name ("float32", not "f4" or "single", which
    # tf-keras rejects too), and only dtypes JAX computes in.
    if (
        dtype is None
        or dtype.name != name
        or not (jnp.issubdtype(dtype, jnp.number) or dtype == jnp.bool_)
    ):
        raise ValueError(
            f"Cannot convert value {name} to a mixed precision Policy. Valid "
            "policies include 'mixed_float16', 'mixed_bfloat16', and the name of "
            "any dtype such as 'float32'."
        )
    return name, name


class Policy:
    """A Keras dtype policy: the dtypes of computations and of variables.

    ``"mixed_float16"`` and ``"mixed_bfloat16"`` compute in 16 bits with
    float32 variables; any dtype name (``"float32"``, ``"bfloat16"``,
    ``"int32"``..., and TensorFlow's ``"half"``, ``"float"`` (float32) and
    ``"double"``) uses that dtype for both; ``"_infer"`` (tf-keras' policy
    of layers that take the dtype of their first input) has neither. The
    dtypes are strings, as in Keras. :attr:`core` is the equivalent core
    :class:`optaxish.loss_scale.Policy` (with cast helpers for pytrees).

    Two policies of the same name are equal (and hash alike), as Keras 3's
    ``DTypePolicy``; tf-keras compares them by identity.

    Args:
      name: the policy name.

    Raises:
      TypeError: if ``name`` is not a string (a dtype object included: pass
        its name).
      ValueError: for a name that is neither a preset nor the name of a dtype
        JAX computes in (TensorFlow's ``"string"``, ``"qint8"``... are not).

    Examples:
      >>> from optaxish.mixed_precision import Policy
      >>> policy = Policy("mixed_float16")
      >>> policy, policy.compute_dtype, policy.variable_dtype
      (<Policy "mixed_float16">, 'float16', 'float32')
      >>> policy.core.cast_to_compute({"w": 1.0})["w"].dtype
      dtype('float16')
    """

    def __init__(self, name: str) -> None:
        if not isinstance(name, str):
            try:
                dtype_name = None if name is None else jnp.dtype(name).name
            except (TypeError, ValueError):
                dtype_name = None
            if dtype_name is not None and not isinstance(name, int | float):
                raise TypeError(
                    "'name' must be a string, not a dtype. Instead, pass its name, "
                    f"'{dtype_name}'. Received: name={name!r}"
                )
            raise TypeError(f"'name' must be a string, but got: {name}")
        self._name = name
        self._compute_dtype, self._variable_dtype = _parse(name)

    @property
    def name(self) -> str:
        """The policy name."""
        return self._name

    @property
    def compute_dtype(self) -> str | None:
        """The dtype layers compute in (a string; ``None`` for ``"_infer"``)."""
        return self._compute_dtype

    @property
    def variable_dtype(self) -> str | None:
        """The dtype variables are stored in (a string; ``None`` for
        ``"_infer"``)."""
        return self._variable_dtype

    @property
    def core(self) -> CorePolicy:
        """The core policy (parameters, compute and output dtypes).

        Raises:
          ValueError: for a non-floating policy or ``"_infer"``, which the
            core does not model.
        """
        if self._name in _MIXED:
            return CorePolicy.from_name(self._name)
        if self._variable_dtype is None:
            raise ValueError(
                "The '_infer' policy has no dtypes, so it has no core policy. "
                f"Received: policy={self!r}"
            )
        return CorePolicy(self._variable_dtype)

    def __repr__(self) -> str:
        return f'<Policy "{self._name}">'

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Policy):
            return NotImplemented
        return self._name == other._name

    def __hash__(self) -> int:
        return hash((Policy, self._name))

    def get_config(self) -> dict[str, Any]:
        """``{"name": name}``."""
        return {"name": self._name}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> Policy:
        """A policy from :meth:`get_config`'s output (TF 2.3's ``loss_scale``
        key is dropped)."""
        del custom_objects
        config = {k: v for k, v in config.items() if k != "loss_scale"}
        return cls(**config)


_global_policy: Policy | None = None


def global_policy() -> Policy:
    """The global policy (``"float32"`` until :func:`set_global_policy`).

    Examples:
      >>> from optaxish import mixed_precision
      >>> mixed_precision.global_policy()
      <Policy "float32">
    """
    return _global_policy if _global_policy is not None else Policy("float32")


def set_global_policy(policy: Policy | str | None) -> None:
    """Sets the global policy; ``None`` restores the default (``"float32"``).

    Raises:
      ValueError: for a non-floating policy such as ``"int32"`` (``"_infer"``
        is accepted, as tf-keras).

    Examples:
      >>> from optaxish import mixed_precision
      >>> mixed_precision.set_global_policy("mixed_bfloat16")
      >>> mixed_precision.global_policy().compute_dtype
      'bfloat16'
      >>> mixed_precision.set_global_policy(None)
    """
    global _global_policy
    if policy is not None and not isinstance(policy, Policy):
        policy = Policy(policy)
    if (
        policy is not None
        and policy.compute_dtype is not None
        and not jnp.issubdtype(jnp.dtype(policy.compute_dtype), jnp.floating)
    ):
        raise ValueError(
            "set_global_policy can only be used to set the global policy to "
            'floating-point policies, such as "float32" and "mixed_float16", but '
            f"got policy: {policy.name}"
        )
    _global_policy = policy
