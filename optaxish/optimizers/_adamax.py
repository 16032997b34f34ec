"""``Adamax``: tf-keras' legacy Adamax (epsilon added after the max norm)."""

from __future__ import annotations

from typing import Any

from optaxish._base import GradientTransformation
from optaxish.combinators import chain
from optaxish.optimizers._optimizer import Optimizer
from optaxish.transforms import scale, scale_by_adamax


class Adamax(Optimizer):
    """Adamax (tf-keras legacy ``Adamax``), slots ``"m"`` and ``"v"``.

    With ``t = iterations + 1``: ``m <- beta_1 m + (1 - beta_1) g``,
    ``v <- max(beta_2 v, |g|)`` (the exponentially weighted infinity norm) and
    ``x <- x - lr / (1 - beta_1^t) * m / (v + epsilon)``. This is
    ``scale_by_adamax(eps_in_max=False)`` followed by ``scale(-lr)``.

    Args:
      learning_rate: a float, a zero-argument callable or a
        ``LearningRateSchedule`` (called with ``iterations``).
      beta_1: decay of the first moment, in ``[0, 1)``.
      beta_2: decay of the infinity norm, in ``[0, 1]``.
      epsilon: added to ``v``; ``None`` or ``0`` means ``1e-7``.
      name: the optimizer name.
      **kwargs: ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``lr``,
        ``decay`` (see :class:`Optimizer`).

    Raises:
      ValueError: for ``beta_1``/``beta_2`` out of range or a negative
        ``epsilon`` (plain numbers only).

    Examples:
      >>> from optaxish import Variable
      >>> from optaxish.optimizers._adamax import Adamax
      >>> opt = Adamax(learning_rate=0.1)
      >>> var = Variable([1.0, -2.0])
      >>> _ = opt.apply_gradients([([0.5, -1.0], var)])
      >>> var.numpy().round(4)
      array([ 0.9, -1.9], dtype=float32)
      >>> opt.get_slot_names(), opt.get_slot(var, "v")
      (['m', 'v'], Array([0.5, 1. ], dtype=float32))
    """

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float | None = 1e-7,
        name: str = "Adamax",
        **kwargs: Any,
    ) -> None:
        super().__init__(name, **kwargs)
        if isinstance(beta_1, int | float) and not 0 <= beta_1 < 1:
            raise ValueError(f"`beta_1` must be in [0, 1). Received: beta_1={beta_1!r}")
        if isinstance(beta_2, int | float) and not 0 <= beta_2 <= 1:
            raise ValueError(f"`beta_2` must be in [0, 1]. Received: beta_2={beta_2!r}")
        if isinstance(epsilon, int | float) and epsilon < 0:
            raise ValueError(f"`epsilon` must be >= 0. Received: epsilon={epsilon!r}")
        self._set_hyper("learning_rate", kwargs.get("lr", learning_rate))
        self._set_hyper("decay", self._initial_decay)
        self._set_hyper("beta_1", beta_1)
        self._set_hyper("beta_2", beta_2)
        self.epsilon = epsilon or 1e-7

    def _core(self, lr: Any, hyper: dict[str, Any]) -> GradientTransformation:
        return chain(
            scale_by_adamax(
                hyper["beta_1"], hyper["beta_2"], self.epsilon, eps_in_max=False
            ),
            scale(-lr),
        )

    def _slot_fields(self) -> list[tuple[str, str]]:
        return [("m", "mu"), ("v", "nu")]

    def _static_key(self) -> tuple:
        return (float(self.epsilon),)

    def get_config(self) -> dict[str, Any]:
        """The config: ``name``, ``learning_rate``, ``decay``, ``beta_1``,
        ``beta_2``, ``epsilon`` (and the clip kwargs that are set)."""
        config = super().get_config()
        config.update(
            learning_rate=self._serialize_hyperparameter("learning_rate"),
            decay=self._initial_decay,
            beta_1=self._serialize_hyperparameter("beta_1"),
            beta_2=self._serialize_hyperparameter("beta_2"),
            epsilon=self.epsilon,
        )
        return config
