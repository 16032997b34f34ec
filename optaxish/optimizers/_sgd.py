"""``SGD``: tf-keras' legacy gradient descent, with momentum and Nesterov."""

from __future__ import annotations

from typing import Any

from optaxish._base import GradientTransformation
from optaxish.combinators import chain
from optaxish.optimizers._optimizer import Optimizer
from optaxish.transforms import scale, trace


class SGD(Optimizer):
    """Gradient descent with optional momentum (tf-keras legacy ``SGD``).

    Without momentum ``x <- x - lr * g``. With momentum the velocity, slot
    ``"momentum"``, holds the learning rate (tf-keras' kernel):
    ``a <- momentum * a - lr * g``, then ``x <- x + a`` or, with Nesterov,
    ``x <- x + momentum * a - lr * g``. Momentum is used when ``momentum > 0``
    at construction (or a callable is given, which is not supported here).

    Deviation: ``SGD(1)`` stores the learning rate as float32 (tf-keras keeps
    an int32 variable that later truncates ``opt.learning_rate = 0.5`` to 0).

    Args:
      learning_rate: a float, a zero-argument callable or a
        ``LearningRateSchedule`` (called with ``iterations``).
      momentum: the momentum coefficient, in ``[0, 1]``.
      nesterov: use Nesterov momentum.
      name: the optimizer name.
      **kwargs: ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``lr``,
        ``decay`` (see :class:`Optimizer`).

    Raises:
      ValueError: when ``momentum`` is outside ``[0, 1]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish import Variable
      >>> from optaxish.optimizers import SGD
      >>> opt = SGD(learning_rate=0.1)
      >>> var = Variable(1.0)
      >>> loss = lambda: (var**2) / 2.0
      >>> _ = opt.minimize(loss, [var])
      >>> var.numpy()
      array(0.9, dtype=float32)
    """

    def __init__(
        self,
        learning_rate: Any = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        name: str = "SGD",
        **kwargs: Any,
    ) -> None:
        super().__init__(name, **kwargs)
        self._set_hyper("learning_rate", kwargs.get("lr", learning_rate))
        self._set_hyper("decay", self._initial_decay)
        if isinstance(momentum, int | float) and not 0 <= momentum <= 1:
            raise ValueError(
                "`momentum` must be between [0, 1]. Received: "
                f"momentum={momentum} (of type {type(momentum)})."
            )
        self._momentum = callable(momentum) or momentum > 0
        self._set_hyper("momentum", momentum)
        self.nesterov = bool(nesterov)

    def _core(self, lr: Any, hyper: dict[str, Any]) -> GradientTransformation:
        if not self._momentum:
            return scale(-lr)
        return chain(scale(-lr), trace(hyper["momentum"], nesterov=self.nesterov))

    def _slot_fields(self) -> list[tuple[str, str]]:
        return [("momentum", "trace")] if self._momentum else []

    def _static_key(self) -> tuple:
        return (self._momentum, self.nesterov)

    def get_config(self) -> dict[str, Any]:
        """The config: ``name``, ``learning_rate``, ``decay``, ``momentum``,
        ``nesterov`` (and the clip kwargs that are set)."""
        config = super().get_config()
        config.update(
            learning_rate=self._serialize_hyperparameter("learning_rate"),
            decay=self._initial_decay,
            momentum=self._serialize_hyperparameter("momentum"),
            nesterov=self.nesterov,
        )
        return config
