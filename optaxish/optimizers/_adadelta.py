"""``Adadelta``: tf-keras' legacy Adadelta."""

from __future__ import annotations

from typing import Any

from optaxish._base import GradientTransformation
from optaxish.combinators import chain
from optaxish.optimizers._optimizer import Optimizer
from optaxish.optimizers._rmsprop import prepend_iterations
from optaxish.transforms import scale, scale_by_adadelta


class Adadelta(Optimizer):
    """Adadelta (tf-keras legacy ``Adadelta``), slots ``"accum_grad"``,
    ``"accum_var"``.

    ``Eg <- rho Eg + (1 - rho) g^2``,
    ``d = sqrt(Edx + epsilon) / sqrt(Eg + epsilon) * g``,
    ``Edx <- rho Edx + (1 - rho) d^2`` and ``x <- x - lr d``.

    Deviation: ``rho`` outside ``[0, 1]`` and a negative ``epsilon`` raise a
    ``ValueError`` (tf-keras accepts them).

    Args:
      learning_rate: a float, a zero-argument callable or a
        ``LearningRateSchedule`` (called with ``iterations``). tf-keras'
        default is 0.001; the original paper's method uses 1.0.
      rho: decay of both moving averages, in ``[0, 1]``.
      epsilon: added inside both square roots; ``None`` or ``0`` means
        ``1e-7``.
      name: the optimizer name.
      **kwargs: ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``lr``,
        ``decay`` (see :class:`Optimizer`).

    Raises:
      ValueError: when ``rho`` is outside ``[0, 1]`` or ``epsilon`` is
        negative.

    Examples:
      >>> from optaxish import Variable
      >>> from optaxish.optimizers._adadelta import Adadelta
      >>> opt = Adadelta(learning_rate=1.0, rho=0.0, epsilon=1.0)
      >>> var = Variable([1.0, -2.0])
      >>> _ = opt.apply_gradients([([0.0, 3.0], var)])
      >>> var.numpy()
      array([ 1.       , -2.9486833], dtype=float32)
      >>> opt.get_slot_names()
      ['accum_grad', 'accum_var']
    """

    def __init__(
        self,
        learning_rate: Any = 0.001,
        rho: float = 0.95,
        epsilon: float | None = 1e-7,
        name: str = "Adadelta",
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
        self.epsilon = epsilon or 1e-7

    def _core(self, lr: Any, hyper: dict[str, Any]) -> GradientTransformation:
        return chain(scale_by_adadelta(hyper["rho"], self.epsilon), scale(-lr))

    def _slot_fields(self) -> list[tuple[str, str]]:
        return [("accum_grad", "e_g"), ("accum_var", "e_x")]

    def _static_key(self) -> tuple:
        return (float(self.epsilon),)

    def set_weights(self, weights: list[Any]) -> None:
        """As :meth:`Optimizer.set_weights`; a list without the leading
        ``iterations`` is also accepted (it sets ``iterations`` to 0)."""
        super().set_weights(prepend_iterations(self, weights))

    def get_config(self) -> dict[str, Any]:
        """The config: ``name``, ``learning_rate``, ``decay``, ``rho``,
        ``epsilon`` (and the clip kwargs that are set)."""
        config = super().get_config()
        config.update(
            learning_rate=self._serialize_hyperparameter("learning_rate"),
            decay=self._initial_decay,
            rho=self._serialize_hyperparameter("rho"),
            epsilon=self.epsilon,
        )
        return config
