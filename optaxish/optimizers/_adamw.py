"""``AdamW`` (Keras 3) and the Keras 3 constructor/config shared by the
Keras 3-only optimizers (``AdamW``, ``Lion``)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Any

from optaxish._base import GradientTransformation
from optaxish.combinators import chain
from optaxish.optimizers import schedules
from optaxish.optimizers._masked_decay import masked_decay
from optaxish.optimizers._optimizer import Optimizer
from optaxish.optimizers._packing_mixin import packed_step
from optaxish.optimizers._slots_weights import CallableList
from optaxish.transforms import add_decayed_weights, scale, scale_by_adam

# tf-keras' new-style optimizers write these to their configs; Keras 3 does not.
_TF_KERAS_CONFIG_KEYS = ("jit_compile", "is_legacy_optimizer")

_SCHEDULE_NOT_SETTABLE = (
    "This optimizer was created with a `LearningRateSchedule` object as its "
    "`learning_rate` constructor argument, hence its learning rate is not "
    "settable. If you need the learning rate to be settable, you should "
    "instantiate the optimizer with a float `learning_rate` argument."
)


class Keras3Optimizer(Optimizer):
    """Base of the optimizers that exist only in Keras 3 (``AdamW``, ``Lion``).

    Takes Keras 3's ``BaseOptimizer`` arguments: no ``lr`` alias, ``decay``
    ignored with a warning, at most one clipping option, a float (not int)
    learning rate, decoupled ``weight_decay`` (``x <- x - lr * wd * x``
    before the update, as Keras 3 does for every variable) and Keras 3's
    config keys. Hyperparameters given as Python numbers are written back
    unchanged by :meth:`get_config` (Keras 3 keeps them as Python attributes);
    the learning rate is read back through float32, as Keras 3 does.

    As in Keras 3 (and tf-keras' new-style optimizers), a learning rate
    given as a ``LearningRateSchedule`` cannot be replaced by a number
    (``TypeError``; the legacy classes allow it, as ``OptimizerV2``), and
    :meth:`exclude_from_weight_decay` exempts variables from the decay.
    :attr:`variables` is a list that can also be called (tf-keras' shim):
    ``opt.variables`` (Keras 3) and ``opt.variables()`` (tf-keras legacy)
    both give :attr:`weights`: ``iterations`` then the slots, without Keras
    3's ``learning_rate`` variable (tf-keras' new-style list).

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
        object.__setattr__(self, "_wd_excluded", (frozenset(), None))
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
        if (
            name == "learning_rate"
            and isinstance(self._lr_fn, schedules.LearningRateSchedule)
            and not callable(value)
        ):  # Keras 3's `learning_rate` setter
            raise TypeError(_SCHEDULE_NOT_SETTABLE)
        super()._set_hyper(name, value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            self._plain[name] = value
        else:
            self._plain.pop(name, None)

    def _config_value(self, name: str) -> Any:
        if name != "learning_rate" and name in self._plain:
            return self._plain[name]
        return self._stored_hyperparameter(name)

    @property
    def variables(self) -> CallableList:  # type: ignore[override]
        """:attr:`weights` as a list that can also be called (see the class)."""
        return CallableList(self.weights)

    # -- weight decay exclusions ----------------------------------------------

    def exclude_from_weight_decay(
        self, var_list: Any = None, var_names: Any = None
    ) -> None:
        """Exempts variables from the weight decay (Keras 3's method).

        Call it before the optimizer is built (before its first step or
        :meth:`build`). Each call replaces the previous exclusions. A variable
        is exempt when it is in ``var_list`` or when one of ``var_names``
        occurs in its name as a regular expression (``re.search``, as Keras):
        the name is tried with and without tf's ``":0"``, so ``"bias"`` and
        ``"bias$"`` both match ``"dense/bias:0"``. The exclusions are not
        part of :meth:`get_config` (nor of Keras'), and
        :meth:`transformation` has no variables to match: it decays every
        leaf. A list mixing decayed and exempt variables is packed as any
        other (see :attr:`packing`): the decay skips the exempt variables'
        elements of the packed buffers, with the numbers of the unpacked step.

        Args:
          var_list: variables to exempt.
          var_names: a list of regular expressions.

        Raises:
          ValueError: after the optimizer is built (Keras' message), or for a
            pattern that is not a valid regular expression.
          TypeError: for a ``var_list`` item that is not a ``Variable`` or a
            ``var_names`` that is a single string or holds a non-string.
        """
        if self._vars:
            raise ValueError(
                "`exclude_from_weight_decay()` can only be configured before "
                "the optimizer is built."
            )
        ids = []
        for v in var_list or ():
            if not hasattr(v, "_unique_id"):
                raise TypeError(
                    "`var_list` must hold `optaxish.Variable`s. Received an item "
                    f"of type {type(v).__name__}: {v!r}"
                )
            ids.append(v._unique_id)
        if isinstance(var_names, str | bytes):
            raise TypeError(
                "`var_names` must be a list of strings (not a single string). "
                f"Received: var_names={var_names!r}"
            )
        names = list(var_names or ())
        for n in names:
            if not isinstance(n, str):
                raise TypeError(
                    f"`var_names` must hold strings. Received: var_names={names!r}"
                )
        pattern = None
        if names:
            try:
                pattern = re.compile("|".join(sorted(set(names))))
            except re.error as e:
                raise ValueError(
                    "`var_names` must be regular expressions. Received: "
                    f"var_names={names!r} ({e})"
                ) from None
        object.__setattr__(self, "_wd_excluded", (frozenset(ids), pattern))
        self.__dict__.pop("_wd_cache", None)

    def _excluding(self) -> bool:
        """Whether some variables may be exempt from a decay that is on."""
        ids, pattern = self._wd_excluded
        return self._decayed and (bool(ids) or pattern is not None)

    def _use_weight_decay(self, var: Any) -> bool:
        """Whether ``var`` is decayed (Keras 3's method; cached per variable)."""
        cache = self.__dict__.setdefault("_wd_cache", {})
        key = var._unique_id
        hit = cache.get(key)
        if hit is None:
            ids, pattern = self._wd_excluded
            hit = key not in ids and not (
                pattern is not None
                and (
                    pattern.search(var.name) is not None
                    or pattern.search(var._shared_name) is not None
                )
            )
            cache[key] = hit
        return hit

    def _hook_key(self, variables: list[Any]) -> tuple:
        # Which stepped variables are decayed changes the compiled step.
        key = super()._hook_key(variables)
        if not self._excluding():
            return key
        return (*key, tuple(self._use_weight_decay(v) for v in variables))

    def _step_core(
        self, lr: Any, hyper: dict[str, Any], values: list, variables: Any
    ) -> GradientTransformation:
        decay_of = None
        if variables is not None and self._excluding():
            flags = [self._use_weight_decay(v) for v in variables]
            if not all(flags):
                if not packed_step(values):
                    decay_of = {id(x): f for x, f in zip(values, flags)}
                elif any(flags):  # one flag per variable of the group
                    decay_of = {id(values[0]): tuple(flags)}
                else:
                    decay_of = {id(values[0]): False}
        self.__dict__["_decay_of"] = decay_of
        try:
            return self._core(lr, hyper)
        finally:
            self.__dict__["_decay_of"] = None

    def _decayed_value(self) -> Callable[[Any], bool | tuple[bool, ...]] | None:
        """While a step's core is built: whether the variable of a value is
        decayed (for a packed group's value: one flag per variable when they
        differ), or ``None`` when all are (then the plain decay is used)."""
        decay_of = self.__dict__.get("_decay_of")
        if decay_of is None:
            return None

        def decayed(value: Any) -> bool | tuple[bool, ...]:
            flag = decay_of.get(id(value))
            if flag is None:
                raise RuntimeError(
                    "internal error: weight decay asked for a value that is not "
                    "one of the stepped variables'"
                )
            return flag

        return decayed

    def _decay(self, hyper: dict[str, Any]) -> list[GradientTransformation]:
        """``[add_decayed_weights(wd)]`` (before ``scale(-lr)``) or ``[]``;
        masked to the decayed variables when some are exempt."""
        if not self._decayed:
            return []
        decay = add_decayed_weights(hyper["weight_decay"])
        decayed = self._decayed_value()
        return [decay if decayed is None else masked_decay(decay, decayed)]

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

    Weights (:meth:`get_weights`, :meth:`set_weights`) are in tf-keras' and
    Keras 3's order: ``iterations``, then per variable its ``m`` and ``v``,
    then (with ``amsgrad``) every variable's ``vhat``. (Earlier versions
    listed them slot-major, as the legacy classes: every ``m``, then every
    ``v``; such a list loads with the values in the wrong slots.)

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

    _native_kernel = "adamw"  # packed float32 groups step in one pass on CPU

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

    def _weight_order(
        self, batch: list[int], fields: list[tuple[str, str]]
    ) -> list[tuple[int, tuple[str, str]]]:
        # tf-keras/Keras 3: `m`, `v` per variable, then every `vhat`.
        each, after = fields[:2], fields[2:]
        return [(i, f) for i in batch for f in each] + [
            (i, f) for f in after for i in batch
        ]

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
