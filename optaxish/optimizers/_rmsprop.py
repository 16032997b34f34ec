"""``RMSprop``: tf-keras' legacy RMSprop, plain or centered, with momentum."""

from __future__ import annotations

from typing import Any

import numpy as np

from optaxish._base import GradientTransformation
from optaxish.combinators import chain
from optaxish.optimizers._optimizer import Optimizer
from optaxish.transforms import scale, scale_by_rms, scale_by_stddev, trace


def prepend_iterations(opt: Optimizer, weights: list[Any]) -> list[Any]:
    """tf-keras' Keras-1 compatibility of ``set_weights`` (RMSprop, Adagrad,
    Adadelta): a list one shorter than the weights lacks ``iterations``, which
    is then set to 0."""
    weights = list(weights)
    if len(opt._weight_entries()) == len(weights) + 1:
        weights = [np.array(0, np.int64), *weights]
    return weights


class RMSprop(Optimizer):
    """RMSprop (tf-keras legacy ``RMSprop``), slots ``"rms"`` (``"momentum"``,
    ``"mg"``).

    ``rms <- rho rms + (1 - rho) g^2``; centered, ``mg <- rho mg + (1 - rho) g``
    and ``den = rms - mg^2``, else ``den = rms``. Without momentum
    ``x <- x - lr g / (sqrt(den) + epsilon)`` (epsilon outside the square
    root); with momentum ``mom <- momentum mom + lr g / sqrt(den + epsilon)``
    (epsilon inside) and ``x <- x - mom``. Momentum is used when
    ``momentum > 0`` at construction.

    Deviation: ``rho`` outside ``[0, 1]`` and a negative ``epsilon`` raise a
    ``ValueError`` (tf-keras accepts them).

    Args:
      learning_rate: a float, a zero-argument callable or a
        ``LearningRateSchedule`` (called with ``iterations``).
      rho: decay of the moving averages, in ``[0, 1]``.
      momentum: the momentum coefficient, in ``[0, 1]``.
      epsilon: added to the denominator; ``None`` or ``0`` means ``1e-7``.
      centered: divide by an estimate of the variance instead of the second
        moment (adds slot ``"mg"``).
      name: the optimizer name.
      **kwargs: ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``lr``,
        ``decay`` (see :class:`Optimizer`).

    Raises:
      ValueError: when ``momentum`` or ``rho`` is outside ``[0, 1]`` or
        ``epsilon`` is negative.

    Examples:
      >>> from optaxish import Variable
      >>> from optaxish.optimizers._rmsprop import RMSprop
      >>> opt = RMSprop(learning_rate=0.1)
      >>> var = Variable(10.0)
      >>> _ = opt.minimize(lambda: (var**2) / 2.0, [var])
      >>> var.numpy()
      array(9.683772, dtype=float32)
      >>> opt.get_slot_names()
      ['rms']
    """

    def __init__(
        self,
        learning_rate: Any = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float | None = 1e-7,
        centered: bool = False,
        name: str = "RMSprop",
        **kwargs: Any,
    ) -> None:
        super().__init__(name, **kwargs)
        if isinstance(rho, int | float) and not 0 <= rho <= 1:
            raise ValueError(f"`rho` must be in [0, 1]. Received: rho={rho!r}")
        if isinstance(epsilon, int | float) and epsilon < 0:
            raise ValueError(f"`epsilon` must be >= 0. Received: epsilon={epsilon!r}")
        self._set_hyper("learning_rate", kwargs.get("lr", learning_rate))
        self._set_hyper("decay", self._initial_decay)
        self._set_hyper("rho", rho)
        if isinstance(momentum, int | float) and not 0 <= momentum <= 1:
            raise ValueError(
                "`momentum` must be between [0, 1]. Received: "
                f"momentum={momentum} (of type {type(momentum)})."
            )
        self._momentum = callable(momentum) or momentum > 0
        self._set_hyper("momentum", momentum)
        self.epsilon = epsilon or 1e-7
        self.centered = bool(centered)

    def _core(self, lr: Any, hyper: dict[str, Any]) -> GradientTransformation:
        # tf-keras' momentum kernels put epsilon inside the square root, its
        # plain Python path outside.
        by = scale_by_stddev if self.centered else scale_by_rms
        scaler = by(hyper["rho"], self.epsilon, eps_in_sqrt=self._momentum)
        if not self._momentum:
            return chain(scaler, scale(-lr))
        # The velocity holds +lr (as tf-keras' slot), the step subtracts it.
        return chain(scaler, scale(lr), trace(hyper["momentum"]), scale(-1.0))

    def _slot_fields(self) -> list[tuple[str, str]]:
        fields = [("rms", "nu")]
        if self._momentum:
            fields.append(("momentum", "trace"))
        if self.centered:
            fields.append(("mg", "mu"))
        return fields

    def _static_key(self) -> tuple:
        return (self._momentum, self.centered, float(self.epsilon))

    def set_weights(self, weights: list[Any]) -> None:
        """As :meth:`Optimizer.set_weights`; a list without the leading
        ``iterations`` is also accepted (it sets ``iterations`` to 0)."""
        super().set_weights(prepend_iterations(self, weights))

    def get_config(self) -> dict[str, Any]:
        """The config: ``name``, ``learning_rate``, ``decay``, ``rho``,
        ``momentum``, ``epsilon``, ``centered`` (and the clip kwargs that are
        set)."""
        config = super().get_config()
        config.update(
            learning_rate=self._serialize_hyperparameter("learning_rate"),
            decay=self._initial_decay,
            rho=self._serialize_hyperparameter("rho"),
            momentum=self._serialize_hyperparameter("momentum"),
            epsilon=self.epsilon,
            centered=self.centered,
        )
        return config
