"""TF 2.2's ``tf.keras.mixed_precision.experimental`` API.

:class:`LossScaleOptimizer` ``(optimizer, loss_scale)`` over the same
implementation as :class:`optaxish.mixed_precision.LossScaleOptimizer`.
"""

from __future__ import annotations

from typing import Any

from optaxish.loss_scale import DynamicLossScale, LossScale, StaticLossScale
from optaxish.mixed_precision._loss_scale_optimizer import (
    DEFAULT_GROWTH_STEPS,
    DEFAULT_INITIAL_SCALE,
    check_inner,
    deserialize_optimizer,
    serialize_optimizer,
)
from optaxish.mixed_precision._lso_base import LossScaleOptimizerBase
from optaxish.optimizers import Optimizer
from optaxish.optimizers._functional import copy_arrays


def _resolve(loss_scale: Any) -> LossScale:
    """TF 2.2's ``loss_scale_module.get``."""
    if loss_scale is None:
        raise ValueError("loss_scale cannot be None.")
    if isinstance(loss_scale, DynamicLossScale | StaticLossScale):
        return loss_scale
    if isinstance(loss_scale, str) and loss_scale == "dynamic":
        return DynamicLossScale(DEFAULT_INITIAL_SCALE, period=DEFAULT_GROWTH_STEPS)
    if isinstance(loss_scale, int | float) and not isinstance(loss_scale, bool):
        if loss_scale < 1:
            raise ValueError("loss_scale_value must be at least 1.")
        return StaticLossScale(float(loss_scale))
    raise ValueError(f"Could not interpret loss scale identifier: {loss_scale!r}")


class LossScaleOptimizer(LossScaleOptimizerBase):
    """An optimizer that applies loss scaling (TF 2.2 experimental signature).

    As :class:`optaxish.mixed_precision.LossScaleOptimizer`, with TF 2.2's
    differences: the loss scale is given as ``"dynamic"`` (``2**15``, growth
    every 2000 finite steps, factor 2), a number (a fixed scale, at least 1)
    or a core loss-scale value (:class:`~optaxish.loss_scale.DynamicLossScale`
    or :class:`~optaxish.loss_scale.StaticLossScale`, used with its own
    period, factor and bounds); a skipped step does **not** increment
    ``iterations``; ``loss_scale`` is the loss-scale value (read its
    ``.loss_scale``; TF's object is called instead); ``get_slot`` raises
    ``AttributeError``; the config keys are ``optimizer`` and ``loss_scale``;
    ``apply_gradients`` gives no warning when the scaling methods were not
    called. Unlike TF 2.2, every hyperparameter of the inner optimizer is
    delegated (TF 2.2 delegated only ``learning_rate`` and ``lr``, and
    ``opt.beta_1 = 0.5`` set an attribute of the wrapper that did nothing).

    Args:
      optimizer: the optaxish Keras-style optimizer to wrap (without
        ``clipnorm``/``clipvalue``).
      loss_scale: ``"dynamic"``, a number, or a core loss-scale value.

    Raises:
      ValueError: for a non-optimizer, an optimizer with ``clipnorm`` or
        ``clipvalue``, or a loss scale that is ``None``, unknown or below 1.

    Examples:
      >>> from optaxish import Variable
      >>> from optaxish.mixed_precision import experimental
      >>> from optaxish.optimizers import SGD
      >>> opt = experimental.LossScaleOptimizer(SGD(0.25), "dynamic")
      >>> var = Variable(1.0)
      >>> _ = opt.minimize(lambda: var**2, var_list=var)
      >>> var.numpy()
      array(0.5, dtype=float32)
      >>> float(opt.loss_scale.loss_scale)
      32768.0
    """

    _skip_counts_iterations = False
    _warns_without_scaling = False

    def __init__(self, optimizer: Optimizer, loss_scale: Any) -> None:
        if not isinstance(optimizer, Optimizer | LossScaleOptimizerBase):
            raise ValueError(
                '"optimizer" must be an instance of OptimizerV2, but got: '
                f"{optimizer!r}"
            )
        check_inner(optimizer, LossScaleOptimizer)
        for key in ("clipnorm", "clipvalue"):
            if optimizer._clip.get(key) is not None:
                raise ValueError(
                    "LossScaleOptimizer does not support wrapping optimizers with "
                    f"a {key}. Optimizer {optimizer!r} has {key} "
                    f"{optimizer._clip[key]}"
                )
        resolved = _resolve(loss_scale)
        self._config_scale = _serialize_scale(resolved)
        self._setup(optimizer, resolved)

    @property
    def loss_scale(self) -> LossScale:
        """The current loss-scale value (a copy); ``.loss_scale`` is the scale."""
        return copy_arrays(self._loss_scale)

    def get_slot(self, var: Any, slot_name: str) -> Any:
        """Raises ``AttributeError``, as TF 2.2."""
        raise AttributeError(
            "You cannot call get_slot on a LossScaleOptimizer. This limitation "
            "will be removed in the future."
        )

    def add_slot(self, var: Any, slot_name: str, initializer: Any = "zeros") -> Any:
        """Raises ``AttributeError``, as TF 2.2."""
        raise AttributeError(
            "You cannot call add_slot on a LossScaleOptimizer. This limitation "
            "will be removed in the future."
        )

    def get_config(self) -> dict[str, Any]:
        """``{"optimizer": {"class_name", "config"}, "loss_scale": ...}``, the
        loss scale as TF's ``FixedLossScale``/``DynamicLossScale`` config
        (with its initial value)."""
        return {
            "optimizer": serialize_optimizer(self._optimizer),
            "loss_scale": dict(self._config_scale),
        }

    @classmethod
    def from_config(
        cls, config: dict[str, Any], custom_objects: Any = None
    ) -> LossScaleOptimizer:
        """A new optimizer from :meth:`get_config`'s output."""
        config = dict(config)
        inner = deserialize_optimizer(config.pop("optimizer"), custom_objects)
        ls = config.pop("loss_scale")
        if isinstance(ls, dict):
            ls = _deserialize_scale(ls)
        return cls(inner, ls, **config)


def _serialize_scale(ls: LossScale) -> dict[str, Any]:
    if isinstance(ls, StaticLossScale):
        return {
            "class_name": "FixedLossScale",
            "config": {"loss_scale_value": float(ls.loss_scale)},
        }
    return {
        "class_name": "DynamicLossScale",
        "config": {
            "initial_loss_scale": float(ls.loss_scale),
            "increment_period": int(ls.period),
            "multiplier": float(ls.factor),
        },
    }


def _deserialize_scale(config: dict[str, Any]) -> LossScale:
    kind, sub = config.get("class_name"), config.get("config", {})
    if kind == "FixedLossScale":
        return StaticLossScale(float(sub["loss_scale_value"]))
    if kind == "DynamicLossScale":
        return DynamicLossScale(
            float(sub.get("initial_loss_scale", DEFAULT_INITIAL_SCALE)),
            period=int(sub.get("increment_period", DEFAULT_GROWTH_STEPS)),
            factor=float(sub.get("multiplier", 2.0)),
        )
    raise ValueError(f"Could not interpret loss scale identifier: {config!r}")


__all__ = ["LossScaleOptimizer"]
