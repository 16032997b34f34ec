"""``AdamW`` (Keras 3) and the Keras 3 constructor/config shared by the
Keras 3-only optimizers (``AdamW``, ``Lion``)."""

from __future__ import annotations

import warnings
from typing import Any

from optaxish._base import GradientTransformation
from optaxish.combinators import chain
from optaxish.optimizers import schedules
from optaxish.optimizers._optimizer import Optimizer
from optaxish.transforms import add_decayed_weights, scale, scale_by_adam

# tf-keras' new-style optimizers write these to their configs; Keras 3 does not.
_TF_KERAS_CONFIG_KEYS = ("jit_compile", "is_legacy_optimizer")


class Keras3Optimizer(Optimizer):
    """Base of the optimizers that exist only in Keras 3 (``AdamW``, ``Lion``).

    Takes Keras 3's ``BaseOptimizer`` arguments: no ``lr`` alias, ``decay``
    ignored with a warning, at most one clipping option, a float (not int)
    learning rate, decoupled ``weight_decay`` (``x <- x - lr * wd * x``
    before the update, as Keras 3 does for every variable) and Keras 3's
    config keys. Hyperparameters given as Python numbers are written back
    unchanged by :meth:`get_config` (Keras 3 keeps them as Python attributes);
    the learning rate is read back through float32, as Keras 3 does.

    Not supported (``NotImplementedError``): ``use_ema=True``,
    ``loss_scale_factor`` and ``gradient_accumulation_steps`` (use the core's
    ``MultiSteps`` and the ``mixed_precision`` module instead).
    """

    def __init__(
        self,
        name: str,
        learning_rate: Any,
        weight_decay: Any = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        **kwargs: Any,
    ) -> None:
        object.__setattr__(self, "_plain", {})
        if "decay" in kwargs:
            kwargs.pop("decay")
            warnings.warn(
                "Argument `decay` is no longer supported and will be ignored.",
                UserWarning,
                stacklevel=3,
            )
        for key in _TF_KERAS_CONFIG_KEYS:  # accepted so tf-keras configs load
            kwargs.pop(key, None)
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        clips = (clipnorm, clipvalue, global_clipnorm)
        if sum(c is not None for c in clips) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can "
                f"be set. Received: clipnorm={clipnorm}, clipvalue={clipvalue}, "
                f"global_clipnorm={global_clipnorm}"
            )
        if gradient_accumulation_steps is not None:
            if (
                not isinstance(gradient_accumulation_steps, int)
                or gradient_accumulation_steps < 2
            ):
                raise ValueError(
                    "`gradient_accumulation_steps` must be an integer >= 2. "
                    f"Received: gradient_accumulation_steps="
                    f"{gradient_accumulation_steps}"
                )
            raise NotImplementedError(
                "`gradient_accumulation_steps` is not supported by the Keras-style "
                "facade; wrap a core optimizer in `optaxish.MultiSteps` instead."
            )
        if use_ema:
            if not 0 <= ema_momentum <= 1:
                raise ValueError(
                    "`ema_momentum` must be in the range [0, 1]. "
                    f"Received: ema_momentum={ema_momentum}"
                )
            raise NotImplementedError("`use_ema=True` is not supported.")
        if loss_scale_factor is not None:
            raise NotImplementedError(
                "`loss_scale_factor` is not supported; use "
                "`optaxish.mixed_precision.LossScaleOptimizer`."
            )
        if isinstance(learning_rate, int):  # bool included, as Keras 3
            raise ValueError(
                "Argument `learning_rate` should be float, or an instance of "
                "LearningRateSchedule, or a callable (that takes in the current "
                "iteration value and returns the corresponding learning rate "
                f"value). Received instead: learning_rate={learning_rate}"
            )
        clip_kwargs = dict(
            clipnorm=clipnorm, clipvalue=clipvalue, global_clipnorm=global_clipnorm
        )
        super().__init__(
            name, **{k: v for k, v in clip_kwargs.items() if v is not None}
        )
        self.use_ema = False
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self._set_hyper("learning_rate", learning_rate)
        self._decayed = weight_decay is not None
        if self._decayed:
            self._set_hyper("weight_decay", weight_decay)
        else:
            self.weight_decay = None

    def _set_hyper(self, name: str, value: Any) -> None:
        super()._set_hyper(name, value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            self._plain[name] = value
        else:
            self._plain.pop(name, None)

    def _config_value(self, name: str) -> Any:
        if name != "learning_rate" and name in self._plain:
            return self._plain[name]
        return self._serialize_hyperparameter(name)

    def _decay(self, hyper: dict[str, Any]) -> list[GradientTransformation]:
        """``[add_decayed_weights(wd)]`` (before ``scale(-lr)``) or ``[]``."""
        return [add_decayed_weights(hyper["weight_decay"])] if self._decayed else []

    def get_config(self) -> dict[str, Any]:
        """Keras 3's base config keys (subclasses add theirs)."""
        return {
            "name": self._name,
            "learning_rate": self._config_value("learning_rate"),
            "weight_decay": (
                self._config_value("weight_decay") if self._decayed else None
            ),
            "clipnorm": self._clip["clipnorm"],
            "global_clipnorm": self._clip["global_clipnorm"],
            "clipvalue": self._clip["clipvalue"],
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
            "loss_scale_factor": None,
            "gradient_accumulation_steps": None,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> Any:
        """Creates an optimizer from a Keras 3 (or tf-keras) config.

        A dict learning rate is revived as a schedule; tf-keras' extra keys
        ``jit_compile`` and ``is_legacy_optimizer`` are ignored.
        """
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(
                config["learning_rate"], custom_objects=custom_objects
            )
        return cls(**config)


def check_unit_interval(name: str, value: Any) -> None:
    """Raises for a Python number outside ``[0, 1)`` (traced values pass)."""
    if isinstance(value, int | float) and not 0 <= value < 1:
        raise ValueError(f"`{name}` must be in [0, 1). Received: {name}={value!r}")


class AdamW(Keras3Optimizer):
    """Adam with decoupled weight decay (Keras 3 ``AdamW``).

    Slots ``"m"``, ``"v"`` (and ``"vhat"`` with ``amsgrad``), named as
    tf-keras' new-style ``AdamW``. With ``t = iterations + 1``, each step
    first decays ``x <- x - lr * weight_decay * x``, then applies Keras'
    Adam: ``m <- beta_1 m + (1 - beta_1) g``, ``v <- beta_2 v + (1 - beta_2) g^2``,
    ``x <- x - lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)``
    (with ``amsgrad``, ``vhat <- max(vhat, v)`` replaces ``v``).

    Args:
      learning_rate: a float, a zero-argument callable or a
        ``LearningRateSchedule`` (called with ``iterations``).
      weight_decay: the decoupled decay rate (required).
      beta_1: decay of the first moment, in ``[0, 1)``.
      beta_2: decay of the second moment, in ``[0, 1)``.
      epsilon: added to ``sqrt(v)``.
      amsgrad: use AMSGrad.
      name: the optimizer name.
      **kwargs: Keras 3's base arguments (see :class:`Keras3Optimizer`):
        ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ...

    Raises:
      ValueError: for ``weight_decay=None``, out-of-range betas or epsilon,
        an int learning rate, unknown kwargs or two clipping options.

    Examples:
      >>> from optaxish import Variable
      >>> from optaxish.optimizers._adamw import AdamW
      >>> opt = AdamW(learning_rate=0.1, weight_decay=0.5)
      >>> var = Variable(1.0)
      >>> _ = opt.apply_gradients([(1.0, var)])
      >>> round(float(var.numpy()), 5)
      0.85
      >>> opt.get_slot_names()
      ['m', 'v']
    """

    def __init__(
        self,
        learning_rate: Any = 0.001,
        weight_decay: float = 0.004,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        name: str = "AdamW",
        **kwargs: Any,
    ) -> None:
        if weight_decay is None:
            raise ValueError(
                "Argument `weight_decay` must be a float. "
                f"Received: weight_decay={weight_decay}"
            )
        check_unit_interval("beta_1", beta_1)
        check_unit_interval("beta_2", beta_2)
        if not isinstance(epsilon, int | float) or epsilon < 0:
            raise ValueError(
                f"`epsilon` must be a float >= 0. Received: epsilon={epsilon!r}"
            )
        super().__init__(name, learning_rate, weight_decay, **kwargs)
        self._set_hyper("beta_1", beta_1)
        self._set_hyper("beta_2", beta_2)
        self.epsilon = epsilon
        self.amsgrad = bool(amsgrad)

    def _core(self, lr: Any, hyper: dict[str, Any]) -> GradientTransformation:
        adam = scale_by_adam(
            hyper["beta_1"],
            hyper["beta_2"],
            self.epsilon,
            epsilon_hat=True,
            amsgrad=self.amsgrad,
        )
        return chain(adam, *self._decay(hyper), scale(-lr))

    def _slot_fields(self) -> list[tuple[str, str]]:
        fields = [("m", "mu"), ("v", "nu")]
        return fields + [("vhat", "nu_max")] if self.amsgrad else fields

    def _static_key(self) -> tuple:
        return (float(self.epsilon), self.amsgrad)

    def get_config(self) -> dict[str, Any]:
        """Keras 3's config: the base keys plus ``beta_1``, ``beta_2``,
        ``epsilon``, ``amsgrad``."""
        config = super().get_config()
        config.update(
            beta_1=self._config_value("beta_1"),
            beta_2=self._config_value("beta_2"),
            epsilon=self.epsilon,
            amsgrad=self.amsgrad,
        )
        return config


__all__ = ["AdamW", "Keras3Optimizer"]
