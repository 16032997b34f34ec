"""``Ftrl``: tf-keras' legacy FTRL-Proximal (with ``FtrlV2`` shrinkage)."""

from __future__ import annotations

from typing import Any

from optaxish._base import GradientTransformation
from optaxish.optimizers._optimizer import Optimizer
from optaxish.transforms import scale_by_ftrl


class Ftrl(Optimizer):
    """FTRL-Proximal (tf-keras legacy ``Ftrl``), slots ``"accumulator"``,
    ``"linear"``.

    With ``p = -learning_rate_power``, ``l2' = l2 + beta / (2 lr)`` and
    ``g_s = g + 2 l2_shrinkage x``: ``n' = n + g^2``,
    ``z <- z + g_s - (n'^p - n^p) / lr * x``, then
    ``x <- (sign(z) l1 - z) / (n'^p / lr + 2 l2')`` where ``|z| > l1`` and
    ``0`` elsewhere, and ``n <- n'`` (``n`` is the ``"accumulator"`` slot,
    ``z`` the ``"linear"`` one). This is :func:`~optaxish.scale_by_ftrl`
    with the (decayed) learning rate of the step. Unlike the other
    optimizers, the slots are created variable-major: :meth:`get_weights` is
    ``[iterations, accumulator(x1), linear(x1), accumulator(x2), ...]``.

    Deviation: tf-keras' ``Ftrl`` ignores the deprecated ``lr`` keyword (it
    warns, then keeps ``learning_rate``); here ``lr`` wins over
    ``learning_rate``, as in every other optimizer.

    Args:
      learning_rate: a float, a zero-argument callable or a
        ``LearningRateSchedule`` (called with ``iterations``).
      learning_rate_power: ``<= 0``; ``-0.5`` is AdaGrad-like.
      initial_accumulator_value: ``>= 0``; the accumulator's starting value.
      l1_regularization_strength: ``>= 0``.
      l2_regularization_strength: ``>= 0``.
      name: the optimizer name.
      l2_shrinkage_regularization_strength: ``>= 0``; an L2 penalty applied
        through the gradient (TensorFlow's ``FtrlV2``).
      beta: adds ``beta / (2 lr)`` to the L2 strength.
      **kwargs: ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``lr``,
        ``decay`` (see :class:`Optimizer`).

    Raises:
      ValueError: for an out-of-range argument (tf-keras' messages).

    Examples:
      >>> from optaxish import Variable
      >>> from optaxish.optimizers._ftrl import Ftrl
      >>> opt = Ftrl(learning_rate=0.1)
      >>> var = Variable([1.0, -2.0, 0.5])
      >>> for g in ([0.5, -1.0, 2.0], [-0.3, 0.2, 1.5], [1.0, 0.0, -2.0]):
      ...     _ = opt.apply_gradients([(g, var)])
      >>> var.numpy().round(5)  # tf-keras: 0.3428555, -1.3203628, 0.3257815
      array([ 0.34286, -1.32036,  0.32578], dtype=float32)
      >>> opt.get_slot_names()
      ['accumulator', 'linear']
    """

    _slots_variable_major = True  # tf-keras' Ftrl: both slots per variable

    def __init__(
        self,
        learning_rate: Any = 0.001,
        learning_rate_power: float = -0.5,
        initial_accumulator_value: float = 0.1,
        l1_regularization_strength: float = 0.0,
        l2_regularization_strength: float = 0.0,
        name: str = "Ftrl",
        l2_shrinkage_regularization_strength: float = 0.0,
        beta: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, **kwargs)
        checks = (
            ("initial_accumulator_value", initial_accumulator_value, "positive"),
            ("learning_rate_power", learning_rate_power, "negative"),
            ("l1_regularization_strength", l1_regularization_strength, "positive"),
            ("l2_regularization_strength", l2_regularization_strength, "positive"),
            (
                "l2_shrinkage_regularization_strength",
                l2_shrinkage_regularization_strength,
                "positive",
            ),
        )
        for arg, value, sign in checks:
            if isinstance(value, int | float) and (
                value < 0 if sign == "positive" else value > 0
            ):
                raise ValueError(
                    f"`{arg}` needs to be {sign} or zero. Received: {arg}={value}."
                )
        self._set_hyper("learning_rate", kwargs.get("lr", learning_rate))
        self._set_hyper("decay", self._initial_decay)
        self._set_hyper("learning_rate_power", learning_rate_power)
        self._set_hyper("l1_regularization_strength", l1_regularization_strength)
        self._set_hyper("l2_regularization_strength", l2_regularization_strength)
        self._set_hyper("beta", beta)
        self._initial_accumulator_value = float(initial_accumulator_value)
        self._l2_shrinkage_regularization_strength = float(
            l2_shrinkage_regularization_strength
        )

    def _core(self, lr: Any, hyper: dict[str, Any]) -> GradientTransformation:
        return scale_by_ftrl(
            learning_rate=lr,
            learning_rate_power=hyper["learning_rate_power"],
            initial_accumulator_value=self._initial_accumulator_value,
            l1_regularization_strength=hyper["l1_regularization_strength"],
            l2_regularization_strength=hyper["l2_regularization_strength"],
            l2_shrinkage_regularization_strength=(
                self._l2_shrinkage_regularization_strength
            ),
            beta=hyper["beta"],
        )

    def _slot_fields(self) -> list[tuple[str, str]]:
        return [("accumulator", "accumulator"), ("linear", "linear")]

    def _static_key(self) -> tuple:
        return (
            self._initial_accumulator_value,
            self._l2_shrinkage_regularization_strength,
        )

    def get_config(self) -> dict[str, Any]:
        """The config: ``name``, ``learning_rate``, ``decay``,
        ``initial_accumulator_value``, ``learning_rate_power``,
        ``l1_regularization_strength``, ``l2_regularization_strength``,
        ``beta``, ``l2_shrinkage_regularization_strength`` (and the clip
        kwargs that are set)."""
        config = super().get_config()
        config.update(
            learning_rate=self._serialize_hyperparameter("learning_rate"),
            decay=self._initial_decay,
            initial_accumulator_value=self._initial_accumulator_value,
            learning_rate_power=self._serialize_hyperparameter("learning_rate_power"),
            l1_regularization_strength=self._serialize_hyperparameter(
                "l1_regularization_strength"
            ),
            l2_regularization_strength=self._serialize_hyperparameter(
                "l2_regularization_strength"
            ),
            beta=self._serialize_hyperparameter("beta"),
            l2_shrinkage_regularization_strength=(
                self._l2_shrinkage_regularization_strength
            ),
        )
        return config
