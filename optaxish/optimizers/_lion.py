"""``Lion`` (Keras 3): the sign of an interpolated momentum."""

from __future__ import annotations

from typing import Any

from optaxish._base import GradientTransformation
from optaxish.combinators import chain
from optaxish.optimizers._adamw import Keras3Optimizer
from optaxish.transforms import scale, scale_by_lion


class Lion(Keras3Optimizer):
    """Lion (Keras 3 ``Lion``), slot ``"m"`` (tf-keras' new-style name).

    ``x <- x - lr * sign(beta_1 m + (1 - beta_1) g)``, then
    ``m <- beta_2 m + (1 - beta_2) g``. With ``weight_decay`` the variable is
    first decayed, ``x <- x - lr * weight_decay * x`` (Keras 3's base).

    Args:
      learning_rate: a float, a zero-argument callable or a
        ``LearningRateSchedule`` (called with ``iterations``). Keras 3's
        default (``1e-3``; tf-keras' is ``1e-4``).
      beta_1: interpolation weight of the momentum, in ``(0, 1]``.
      beta_2: decay of the momentum, in ``[0, 1]``.
      name: the optimizer name.
      **kwargs: Keras 3's base arguments (see
        :class:`~optaxish.optimizers._adamw.Keras3Optimizer`):
        ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ...

    Raises:
      ValueError: for ``beta_1`` outside ``(0, 1]`` (Keras' message),
        ``beta_2`` outside ``[0, 1]``, an int learning rate, unknown kwargs
        or two clipping options.

    Examples:
      >>> from optaxish import Variable
      >>> from optaxish.optimizers._lion import Lion
      >>> opt = Lion(learning_rate=0.1)
      >>> var = Variable([1.0, -2.0, 0.5])
      >>> _ = opt.apply_gradients([([0.3, -4.0, 0.0], var)])
      >>> var.numpy()
      array([ 0.9, -1.9,  0.5], dtype=float32)
      >>> opt.get_slot_names()
      ['m']
    """

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.99,
        name: str = "Lion",
        **kwargs: Any,
    ) -> None:
        if isinstance(beta_1, int | float) and (beta_1 <= 0 or beta_1 > 1):
            raise ValueError(
                "Argument `beta_1` must be in the [0, 1] range. Otherwise, the "
                f"optimizer degenerates to SignSGD. Received: beta_1={beta_1}."
            )
        if isinstance(beta_2, int | float) and not 0 <= beta_2 <= 1:
            raise ValueError(f"`beta_2` must be in [0, 1]. Received: beta_2={beta_2!r}")
        super().__init__(name, learning_rate, **kwargs)
        self._set_hyper("beta_1", beta_1)
        self._set_hyper("beta_2", beta_2)

    def _core(self, lr: Any, hyper: dict[str, Any]) -> GradientTransformation:
        lion = scale_by_lion(hyper["beta_1"], hyper["beta_2"])
        return chain(lion, *self._decay(hyper), scale(-lr))

    def _slot_fields(self) -> list[tuple[str, str]]:
        return [("m", "mu")]

    def _static_key(self) -> tuple:
        return (self._decayed,)

    def get_config(self) -> dict[str, Any]:
        """Keras 3's config: the base keys plus ``beta_1``, ``beta_2``."""
        config = super().get_config()
        config.update(
            beta_1=self._config_value("beta_1"), beta_2=self._config_value("beta_2")
        )
        return config
