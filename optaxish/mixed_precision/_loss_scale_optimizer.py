"""``LossScaleOptimizer``: tf-keras' (TF 2.4+) loss-scaling wrapper."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from optaxish.loss_scale import DynamicLossScale, StaticLossScale
from optaxish.loss_scale._values import _check_scale
from optaxish.mixed_precision._lso_base import LossScaleOptimizerBase
from optaxish.optimizers import Optimizer

DEFAULT_INITIAL_SCALE = 2.0**15
DEFAULT_GROWTH_STEPS = 2000
_PERIOD_MAX = 2**31 - 1
# Keras 3's base-optimizer keys, which older Keras 3 versions wrote into a
# LossScaleOptimizer's config; Keras 3 reads them only at these defaults.
_KERAS3_BASE_DEFAULTS = {
    "weight_decay": None,
    "clipnorm": None,
    "global_clipnorm": None,
    "clipvalue": None,
    "use_ema": False,
    "ema_momentum": 0.99,
    "ema_overwrite_frequency": None,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
}


def serialize_optimizer(optimizer: Optimizer) -> dict[str, Any]:
    """tf-keras' ``{"module", "class_name", "config", "registered_name"}`` of
    a Keras-style optimizer (:func:`optaxish.optimizers.serialize`)."""
    from optaxish import optimizers

    return optimizers.serialize(optimizer)


def deserialize_optimizer(config: Any, custom_objects: Any = None) -> Optimizer:
    """An optimizer from :func:`serialize_optimizer`'s output (or an instance).

    Read by :func:`optaxish.optimizers.deserialize`: the class is looked up in
    ``custom_objects`` first, then among the registered and built-in classes
    (ignoring case); tf-keras' extra keys (``module``, ``registered_name``)
    and the new-style keys of tf-keras' and Keras 3's configs are handled
    there.
    """
    if isinstance(config, Optimizer | LossScaleOptimizerBase):
        return config
    from optaxish import optimizers

    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            "`inner_optimizer` must be an optimizer or a dict with 'class_name' "
            f"and 'config'. Received: {config!r}"
        )
    return optimizers.deserialize(config, custom_objects=custom_objects)


def _initial_scale(value: Any) -> float:
    """``initial_scale`` as a float, checked (a positive float32 number)."""
    if isinstance(value, str | bytes) or value is None:
        raise TypeError(
            f"`initial_scale` must be a number. Received: initial_scale={value!r}"
        )
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"`initial_scale` must be a number. Received: initial_scale={value!r}"
        ) from None
    _check_scale("initial_scale", number)
    return number


def _growth_steps(value: Any) -> int:
    """``dynamic_growth_steps`` as an int, checked (an integer >= 1)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, str | bytes | bool):
        raise TypeError(
            "`dynamic_growth_steps` must be an integer. Received: "
            f"dynamic_growth_steps={value!r}"
        )
    if not (number >= 1 and number.is_integer()):
        raise ValueError(
            "`dynamic_growth_steps` must be an integer >= 1. Received: "
            f"dynamic_growth_steps={value!r}"
        )
    return int(value)


def check_inner(inner: Any, owner: type) -> None:
    if isinstance(inner, LossScaleOptimizerBase):
        raise TypeError(
            f"{owner.__name__} cannot wrap another LossScaleOptimizer, but got: "
            f"{inner!r}"
        )
    if getattr(inner, "_is_wrapped_by_loss_scale_optimizer", False):
        raise ValueError(
            '"inner_optimizer" is already wrapped by a LossScaleOptimizer. An '
            "optimizer can only be wrapped by a single LossScaleOptimizer"
        )


class LossScaleOptimizer(LossScaleOptimizerBase):
    """An optimizer that applies loss scaling (tf-keras ``LossScaleOptimizer``).

    ``minimize`` differentiates ``loss() * loss_scale`` and divides the
    gradients by the scale; with ``apply_gradients`` scale the loss with
    :meth:`get_scaled_loss` and unscale the gradients with
    :meth:`get_unscaled_gradients` yourself. Each step updates the scale:

    * dynamic (default): a step whose gradients hold a NaN or an infinity is
      skipped (variables and slots bit-identical, ``iterations`` still
      incremented, as tf-keras) and the scale is halved (floor 1); after
      ``dynamic_growth_steps`` finite steps in a row it is doubled (unless
      that overflows). The rule is the core's
      :class:`~optaxish.loss_scale.DynamicLossScale` with factor 2.
    * ``dynamic=False``: a fixed scale; every step is applied.

    Hyperparameters (``learning_rate``, ``beta_1``...), ``iterations``,
    ``get_slot``, ``weights``, ``get_weights``/``set_weights`` are the inner
    optimizer's; the loss scale is not an optimizer weight. The check, the
    inner step and the scale update run as one compiled function, with
    buffers donated, compiled once per variable structure (per loss
    function and variable list for ``minimize``).

    Keras 3's ``keras.optimizers.LossScaleOptimizer`` differs, and this
    class keeps tf-keras' behaviour: Keras 3 halves without a floor of 1,
    lets a doubling reach ``inf``, does not count a skipped step in
    ``iterations`` and lists its scale and counter among its ``variables``.
    Keras 3's methods are here with Keras 3's gradients: :meth:`scale_loss`
    (the same as :meth:`get_scaled_loss`), and :meth:`apply` and
    :meth:`stateless_apply`, which take the gradients of the scaled loss
    and unscale them (:meth:`apply_gradients`, tf-keras', takes unscaled
    ones). :attr:`state` and :meth:`transformation` serve a ``jax.jit`` step
    of your own. Keras 3's configs (with ``name``, without ``dynamic``) load
    with :meth:`from_config`.

    Args:
      inner_optimizer: the optaxish Keras-style optimizer to wrap.
      dynamic: dynamic (``True``) or fixed (``False``) loss scale.
      initial_scale: the first scale (default ``2**15`` when dynamic; required
        when not), a positive number that is finite in float32.
      dynamic_growth_steps: finite steps between growths, an integer >= 1
        (default 2000; the core's int32 counter caps it at ``2**31 - 1``,
        while :attr:`dynamic_growth_steps` and the config keep the value
        given); must be ``None`` when ``dynamic=False``.

    Raises:
      TypeError: for an inner optimizer that is not an optaxish optimizer, a
        ``LossScaleOptimizer``, a non-bool ``dynamic``, a non-number
        ``initial_scale`` or a non-integer ``dynamic_growth_steps``.
      ValueError: for an inner optimizer already wrapped, ``dynamic=False``
        without ``initial_scale`` or with ``dynamic_growth_steps``, an
        ``initial_scale`` that is not positive and finite in float32 (tf-keras
        accepts ``0``, negative and infinite scales, which break training), or
        ``dynamic_growth_steps < 1`` or fractional (tf-keras truncates). The
        inner optimizer is left unwrapped then.

    Examples:
      >>> from optaxish import Variable
      >>> from optaxish.mixed_precision import LossScaleOptimizer
      >>> from optaxish.optimizers import SGD
      >>> opt = LossScaleOptimizer(SGD(0.25))
      >>> var = Variable(1.0)
      >>> _ = opt.minimize(lambda: var**2, var_list=var)
      >>> var.numpy()
      array(0.5, dtype=float32)
      >>> float(opt.loss_scale), int(opt.dynamic_counter)
      (32768.0, 1)
    """

    def __init__(
        self,
        inner_optimizer: Optimizer,
        dynamic: bool = True,
        initial_scale: float | None = None,
        dynamic_growth_steps: int | None = None,
    ) -> None:
        if not isinstance(inner_optimizer, Optimizer | LossScaleOptimizerBase):
            raise TypeError(
                '"inner_optimizer" must be an instance of '
                f"`optaxish.optimizers.Optimizer`, but got: {inner_optimizer!r}."
            )
        if not isinstance(dynamic, bool):
            raise TypeError(
                '"dynamic" argument to LossScaleOptimizer.__init__ must be a bool, '
                f"but got: {dynamic!r}"
            )
        check_inner(inner_optimizer, LossScaleOptimizer)
        if dynamic:
            initial = (
                DEFAULT_INITIAL_SCALE
                if initial_scale is None
                else _initial_scale(initial_scale)
            )
            growth = (
                DEFAULT_GROWTH_STEPS
                if dynamic_growth_steps is None
                else _growth_steps(dynamic_growth_steps)
            )
            # The core counts in int32; a longer period than it holds never
            # ends in practice (2**31 - 1 steps), so it is capped there.
            loss_scale: Any = DynamicLossScale(
                initial, period=min(growth, _PERIOD_MAX), factor=2.0
            )
        else:
            if initial_scale is None:
                raise ValueError(
                    '"initial_scale" must be specified if "dynamic" is False'
                )
            if dynamic_growth_steps is not None:
                raise ValueError(
                    '"dynamic_growth_steps" must be None if "dynamic" is False, '
                    f"but got: {dynamic_growth_steps}"
                )
            initial, growth = _initial_scale(initial_scale), None
            loss_scale = StaticLossScale(initial)
        self._initial = initial
        self._growth_steps = growth
        self._setup(inner_optimizer, loss_scale)

    @property
    def dynamic(self) -> bool:
        """Whether the loss scale is dynamic."""
        return isinstance(self._loss_scale, DynamicLossScale)

    @property
    def loss_scale(self) -> jax.Array:
        """The current loss scale (a float32 scalar, a copy)."""
        return jnp.array(self._loss_scale.loss_scale, jnp.float32, copy=True)

    @property
    def dynamic_counter(self) -> jax.Array | None:
        """Finite steps since the last change of a dynamic scale (int32), or
        ``None`` for a fixed scale."""
        if not self.dynamic:
            return None
        return jnp.array(self._loss_scale.counter, copy=True)

    @property
    def initial_scale(self) -> float:
        """The scale the optimizer started with."""
        return self._initial

    @property
    def dynamic_growth_steps(self) -> int | None:
        """Finite steps between growths, or ``None`` for a fixed scale."""
        return self._growth_steps

    def get_slot(self, var: Any, slot_name: str) -> jax.Array:
        """The inner optimizer's ``get_slot(var, slot_name)``."""
        return self._optimizer.get_slot(var, slot_name)

    def scale_loss(self, loss: Any) -> Any:
        """Keras 3's name for :meth:`get_scaled_loss`: ``loss * loss_scale``.

        Examples:
          >>> import jax.numpy as jnp
          >>> from optaxish.mixed_precision import LossScaleOptimizer
          >>> from optaxish.optimizers import SGD
          >>> LossScaleOptimizer(SGD(), initial_scale=4.0).scale_loss(jnp.float32(3))
          Array(12., dtype=float32)
        """
        return self.get_scaled_loss(loss)

    def get_config(self) -> dict[str, Any]:
        """tf-keras' keys: ``inner_optimizer`` (``{"class_name", "config"}``),
        ``dynamic``, ``initial_scale``, ``dynamic_growth_steps``."""
        return {
            "inner_optimizer": serialize_optimizer(self._optimizer),
            "dynamic": self.dynamic,
            "initial_scale": self.initial_scale,
            "dynamic_growth_steps": self.dynamic_growth_steps,
        }

    @classmethod
    def from_config(
        cls, config: dict[str, Any], custom_objects: Any = None
    ) -> LossScaleOptimizer:
        """A new optimizer from :meth:`get_config`'s output.

        tf-keras' configs work (TF 2.4+, ``LossScaleOptimizerV3``'s and TF
        2.3's ``optimizer``/``loss_scale`` form), and Keras 3's: its ``name``
        is dropped (this class has none) and, without ``dynamic``, the scale
        is dynamic; the base-optimizer keys older Keras 3 versions wrote
        (``clipnorm``, ``use_ema``...) are read at their defaults, as Keras 3
        does. The inner optimizer is read by
        :func:`optaxish.optimizers.deserialize` (with ``custom_objects``).

        Raises:
          ValueError: for a config without ``inner_optimizer``, a Keras 3 base
            key away from its default (Keras 3's message), a TF 2.3
            ``DynamicLossScale`` whose multiplier is not 2, or a loss scale of
            another kind.
        """
        config = dict(config)
        config.pop("name", None)  # Keras 3's key
        for key, default in _KERAS3_BASE_DEFAULTS.items():
            if key in config and config[key] != default:
                raise ValueError(
                    f"LossScaleOptimizer does not support `{key}`. Instead, set "
                    f"`{key}` on the `inner_optimizer`. Received: "
                    f"{key}={config[key]!r}"
                )
            config.pop(key, None)
        if "loss_scale" in config:
            ls = config.pop("loss_scale")
            kind, sub = ls.get("class_name"), ls.get("config", {})
            if kind == "FixedLossScale":
                config.update(dynamic=False, initial_scale=sub["loss_scale_value"])
            elif kind == "DynamicLossScale":
                if float(sub.get("multiplier", 2.0)) != 2.0:
                    raise ValueError(
                        "Cannot deserialize LossScaleOptimizer with a "
                        "DynamicLossScale whose multiplier is not 2. Got "
                        f"DynamicLossScale: {ls}"
                    )
                config.update(
                    dynamic=True,
                    initial_scale=sub.get("initial_loss_scale", DEFAULT_INITIAL_SCALE),
                    dynamic_growth_steps=sub.get(
                        "increment_period", DEFAULT_GROWTH_STEPS
                    ),
                )
            else:
                raise ValueError(
                    "Serialized LossScaleOptimizers with a LossScale that is "
                    "neither a FixedLossScale nor a DynamicLossScale can no "
                    "longer be deserialized"
                )
            config["inner_optimizer"] = config.pop("optimizer")
        if "inner_optimizer" not in config:
            raise ValueError(
                "A LossScaleOptimizer config needs an `inner_optimizer` entry. "
                f"Received: config={config!r}"
            )
        inner = deserialize_optimizer(config.pop("inner_optimizer"), custom_objects)
        return cls(inner, **config)
