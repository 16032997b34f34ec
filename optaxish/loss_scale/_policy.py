"""Mixed-precision policies and floating-point tree casts.

A :class:`Policy` names three dtypes: the parameters' (kept in full precision
as "master" weights), the computation's (float16 or bfloat16 for speed) and the
model output's (usually float32 again, so the loss is reduced in float32).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

_ALIASES = {
    "float16": jnp.float16,
    "f16": jnp.float16,
    "half": jnp.float16,
    "bfloat16": jnp.bfloat16,
    "bf16": jnp.bfloat16,
    "float32": jnp.float32,
    "f32": jnp.float32,
    "full": jnp.float32,
    "single": jnp.float32,
    "float64": jnp.float64,
    "f64": jnp.float64,
    "double": jnp.float64,
}


def _dtype(value: Any, name: str) -> np.dtype:
    if isinstance(value, str) and value.lower() in _ALIASES:
        return np.dtype(_ALIASES[value.lower()])
    try:
        dtype = np.dtype(value)
    except TypeError:
        dtype = None
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(
            f"`{name}` must be a floating dtype such as 'float32', 'float16' or "
            f"'bfloat16'. Received: {name}={value!r}"
        )
    return dtype


def cast_floating(tree: Any, dtype: jax.typing.DTypeLike) -> Any:
    """Casts the floating-point leaves of ``tree`` to ``dtype``.

    Integer, bool and complex leaves and ``None`` are left alone, so a tree of
    parameters and integer step counters can be cast as a whole.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish import loss_scale
      >>> t = loss_scale.cast_floating({"w": jnp.ones(2), "step": jnp.int32(3)},
      ...                              jnp.float16)
      >>> t["w"].dtype, t["step"].dtype
      (dtype('float16'), dtype('int32'))
    """
    dtype = _dtype(dtype, "dtype")

    def cast(x):
        if isinstance(x, jax.Array | np.ndarray | np.generic | float) and (
            jnp.issubdtype(jnp.result_type(x), jnp.floating)
        ):
            return jnp.asarray(x).astype(dtype)
        return x

    return jax.tree.map(cast, tree)


def cast_to_full(tree: Any) -> Any:
    """Floating leaves to float32 (jmp's name).

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish import loss_scale
      >>> loss_scale.cast_to_full(jnp.ones(1, jnp.bfloat16)).dtype
      dtype('float32')
    """
    return cast_floating(tree, jnp.float32)


def cast_to_half(tree: Any) -> Any:
    """Floating leaves to float16 (jmp's name).

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish import loss_scale
      >>> loss_scale.cast_to_half(jnp.ones(1)).dtype
      dtype('float16')
    """
    return cast_floating(tree, jnp.float16)


def cast_to_bfloat16(tree: Any) -> Any:
    """Floating leaves to bfloat16 (jmp's name).

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish import loss_scale
      >>> loss_scale.cast_to_bfloat16(jnp.ones(1)).dtype
      dtype(bfloat16)
    """
    return cast_floating(tree, jnp.bfloat16)


_PRESETS = {
    "float32": ("float32", "float32", "float32"),
    "float16": ("float16", "float16", "float16"),
    "bfloat16": ("bfloat16", "bfloat16", "bfloat16"),
    "float64": ("float64", "float64", "float64"),
    "mixed_float16": ("float32", "float16", "float32"),
    "mixed_bfloat16": ("float32", "bfloat16", "float32"),
}
_KEYS = {
    "p": "param_dtype",
    "params": "param_dtype",
    "param": "param_dtype",
    "c": "compute_dtype",
    "compute": "compute_dtype",
    "o": "output_dtype",
    "output": "output_dtype",
}


@dataclasses.dataclass(frozen=True)
class Policy:
    """Which dtype parameters, computation and outputs use.

    A policy is hashable (usable as a static argument of ``jax.jit``).

    Attributes:
      param_dtype: dtype of the stored parameters (Keras ``variable_dtype``).
      compute_dtype: dtype the model computes in (Keras ``compute_dtype``).
      output_dtype: dtype of the model's output, in which the loss is reduced.

    The presets of :meth:`from_name` follow Keras: ``"float32"``,
    ``"mixed_float16"`` (float32 parameters, float16 computation) and
    ``"mixed_bfloat16"``. Their output dtype is float32: Keras layers return
    the compute dtype, and Keras' mixed-precision guide asks for a float32
    last layer so that the loss is computed in float32; the preset builds that
    in.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish import loss_scale
      >>> policy = loss_scale.Policy.from_name("mixed_float16")
      >>> policy
      Policy(param_dtype=float32, compute_dtype=float16, output_dtype=float32)
      >>> params = {"w": jnp.ones((2, 2))}
      >>> policy.cast_to_compute(params)["w"].dtype
      dtype('float16')
    """

    param_dtype: np.dtype
    compute_dtype: np.dtype
    output_dtype: np.dtype

    def __init__(
        self,
        param_dtype: jax.typing.DTypeLike = jnp.float32,
        compute_dtype: jax.typing.DTypeLike | None = None,
        output_dtype: jax.typing.DTypeLike | None = None,
    ):
        param = _dtype(param_dtype, "param_dtype")
        compute = (
            param if compute_dtype is None else _dtype(compute_dtype, "compute_dtype")
        )
        output = param if output_dtype is None else _dtype(output_dtype, "output_dtype")
        object.__setattr__(self, "param_dtype", param)
        object.__setattr__(self, "compute_dtype", compute)
        object.__setattr__(self, "output_dtype", output)

    @classmethod
    def from_name(cls, name: str) -> Policy:
        """A policy from a preset or a jmp-style string.

        Args:
          name: ``"float32"``, ``"float16"``, ``"bfloat16"``, ``"float64"``,
            ``"mixed_float16"``, ``"mixed_bfloat16"``, or
            ``"params=float32,compute=float16,output=float32"`` (jmp's form;
            ``p``/``c``/``o`` and ``f32``/``f16``/``bf16`` also work; missing
            entries default to the parameter dtype).

        Raises:
          ValueError: for an unknown preset, key or dtype.

        Examples:
          >>> from optaxish import loss_scale
          >>> loss_scale.Policy.from_name("p=f32,c=bf16").compute_dtype
          dtype(bfloat16)
        """
        if not isinstance(name, str):
            raise TypeError(f"`name` must be a string. Received: name={name!r}")
        if name in _PRESETS:
            return cls(*_PRESETS[name])
        if "=" not in name:
            raise ValueError(
                f"Unknown policy {name!r}: use one of {sorted(_PRESETS)} or a string "
                "like 'params=float32,compute=float16,output=float32'."
            )
        kwargs: dict[str, str] = {}
        for part in name.split(","):
            key, _, value = part.partition("=")
            key = key.strip().lower()
            if key not in _KEYS or not value.strip():
                raise ValueError(
                    f"Cannot parse {part!r} in policy {name!r}: expected "
                    "'params=<dtype>', 'compute=<dtype>' or 'output=<dtype>'."
                )
            kwargs[_KEYS[key]] = value.strip()
        return cls(**kwargs)

    @property
    def variable_dtype(self) -> np.dtype:
        """Keras' name for :attr:`param_dtype`."""
        return self.param_dtype

    @property
    def name(self) -> str:
        """The preset name if the policy is one, else the jmp-style string."""
        triple = (
            str(self.param_dtype),
            str(self.compute_dtype),
            str(self.output_dtype),
        )
        for preset, dtypes in _PRESETS.items():
            if dtypes == triple:
                return preset
        return "params={},compute={},output={}".format(*triple)

    def cast_to_param(self, tree: Any) -> Any:
        """Casts the floating leaves of ``tree`` to :attr:`param_dtype`."""
        return cast_floating(tree, self.param_dtype)

    def cast_to_compute(self, tree: Any) -> Any:
        """Casts the floating leaves of ``tree`` to :attr:`compute_dtype`."""
        return cast_floating(tree, self.compute_dtype)

    def cast_to_output(self, tree: Any) -> Any:
        """Casts the floating leaves of ``tree`` to :attr:`output_dtype`."""
        return cast_floating(tree, self.output_dtype)

    def with_output_dtype(self, output_dtype: jax.typing.DTypeLike) -> Policy:
        """A copy with another output dtype."""
        return Policy(self.param_dtype, self.compute_dtype, output_dtype)

    def __repr__(self) -> str:
        return (
            f"Policy(param_dtype={self.param_dtype}, compute_dtype="
            f"{self.compute_dtype}, output_dtype={self.output_dtype})"
        )


def get_policy(name: str | Policy) -> Policy:
    """:meth:`Policy.from_name`, passing a :class:`Policy` through (jmp's name).

    Examples:
      >>> from optaxish import loss_scale
      >>> loss_scale.get_policy("mixed_bfloat16").name
      'mixed_bfloat16'
    """
    if isinstance(name, Policy):
        return name
    return Policy.from_name(name)
