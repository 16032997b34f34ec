"""``Adam``: tf-keras' legacy Adam (epsilon-hat form), with AMSGrad."""

from __future__ import annotations

from typing import Any

from optaxish._base import GradientTransformation
from optaxish.combinators import chain
from optaxish.optimizers._optimizer import Optimizer
from optaxish.transforms import scale, scale_by_adam


class Adam(Optimizer):
    """Adam (tf-keras legacy ``Adam``), slots ``"m"``, ``"v"`` (and ``"vhat"``).

    With ``t = iterations + 1``: ``m <- beta_1 m + (1 - beta_1) g``,
    ``v <- beta_2 v + (1 - beta_2) g^2`` and
    ``x <- x - lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)``
    (epsilon outside the square root of the raw ``v``: "epsilon hat"). With
    ``amsgrad`` ``vhat <- max(vhat, v)`` replaces ``v`` in the update.

    Args:
      learning_rate: a float, a zero-argument callable or a
        ``LearningRateSchedule`` (called with ``iterations``).
      beta_1: decay of the first moment, in ``[0, 1)``.
      beta_2: decay of the second moment, in ``[0, 1)``.
      epsilon: added to ``sqrt(v)``; ``None`` or ``0`` means ``1e-7``.
      amsgrad: use AMSGrad.
      name: the optimizer name.
      **kwargs: ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``lr``,
        ``decay`` (see :class:`Optimizer`).

    Examples:
      >>> from optaxish import Variable
      >>> from optaxish.optimizers import Adam
      >>> opt = Adam(learning_rate=0.1)
      >>> var = Variable(10.0)
      >>> _ = opt.minimize(lambda: (var**2) / 2.0, [var])
      >>> var.numpy()
      array(9.9, dtype=float32)
      >>> opt.get_slot_names()
      ['m', 'v']
    """

    _native_kernel = "adam"  # packed float32 groups step in one pass on CPU

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float | None = 1e-7,
        amsgrad: bool = False,
        name: str = "Adam",
        **kwargs: Any,
    ) -> None:
        super().__init__(name, **kwargs)
        for arg, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            if isinstance(value, int | float) and not 0 <= value < 1:
                raise ValueError(
                    f"`{arg}` must be in [0, 1). Received: {arg}={value!r}"
                )
        if isinstance(epsilon, int | float) and epsilon < 0:
            raise ValueError(f"`epsilon` must be >= 0. Received: epsilon={epsilon!r}")
        self._set_hyper("learning_rate", kwargs.get("lr", learning_rate))
        self._set_hyper("decay", self._initial_decay)
        self._set_hyper("beta_1", beta_1)
        self._set_hyper("beta_2", beta_2)
        self.epsilon = epsilon or 1e-7
        self.amsgrad = bool(amsgrad)

    def _core(self, lr: Any, hyper: dict[str, Any]) -> GradientTransformation:
        return chain(
            scale_by_adam(
                hyper["beta_1"],
                hyper["beta_2"],
                self.epsilon,
                epsilon_hat=True,
                amsgrad=self.amsgrad,
            ),
            scale(-lr),
        )

    def _slot_fields(self) -> list[tuple[str, str]]:
        fields = [("m", "mu"), ("v", "nu")]
        return fields + [("vhat", "nu_max")] if self.amsgrad else fields

    def _static_key(self) -> tuple:
        return (float(self.epsilon), self.amsgrad)

    def set_weights(self, weights: list[Any]) -> None:
        """As :meth:`Optimizer.set_weights`; as tf-keras' legacy ``Adam``, a
        Keras 1 list (``3 n + 1`` weights for ``n`` variables: iterations,
        every ``m``, every ``v``, then every ``vhat`` kept even without
        AMSGrad) is cut to its first ``2 n + 1`` weights.

        Deviation: tf-keras applies the same arithmetic with ``amsgrad``
        (``3 n + 1`` weights already), which cuts a list of ``3 * (3n // 2) +
        1`` weights when ``n`` is even, and a list of one weight before the
        first step; those lists raise here as any wrong length does.
        """
        weights = list(weights)
        count = len(self._weight_entries())
        n = (count - 1) // 2
        if not self.amsgrad and n > 0 and len(weights) == 3 * n + 1:
            weights = weights[:count]
        super().set_weights(weights)

    def get_config(self) -> dict[str, Any]:
        """The config: ``name``, ``learning_rate``, ``decay``, ``beta_1``,
        ``beta_2``, ``epsilon``, ``amsgrad`` (and the clip kwargs that are set)."""
        config = super().get_config()
        config.update(
            learning_rate=self._serialize_hyperparameter("learning_rate"),
            decay=self._initial_decay,
            beta_1=self._serialize_hyperparameter("beta_1"),
            beta_2=self._serialize_hyperparameter("beta_2"),
            epsilon=self.epsilon,
            amsgrad=self.amsgrad,
        )
        return config
