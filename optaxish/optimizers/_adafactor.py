"""``Adafactor`` (Keras 3): factored second moments over the last two axes."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optaxish import slots
from optaxish._base import GradientTransformation, GradientTransformationExtraArgs
from optaxish._update import apply_updates
from optaxish.combinators import chain
from optaxish.optimizers._adamw import Keras3Optimizer
from optaxish.optimizers._hyper import as_iterations
from optaxish.optimizers._masked_decay import masked_decay
from optaxish.transforms import (
    clip_by_block_rms,
    scale,
    scale_by_factored_rms,
    scale_by_param_block_rms,
    scale_by_schedule,
)
from optaxish.transforms._factorized import last_two_second_moment
from optaxish.tree import add as tree_add


def _decayed_first(
    inner: GradientTransformation, decay: GradientTransformation
) -> GradientTransformationExtraArgs:
    # Keras 3 decays the variable (`decay` maps params to their decrement)
    # before its update step, which reads the decayed variable's RMS: `inner`
    # sees the decayed params and the decrement is added to its update.
    def update_fn(updates, state, params=None, **extra_args):
        decrement, _ = decay.update(params, decay.init(params), params)
        decayed = apply_updates(params, decrement)
        updates, state = inner.update(updates, state, decayed, **extra_args)
        return tree_add(updates, decrement), state

    return GradientTransformationExtraArgs(inner.init, update_fn)


def _check(name: str, value: Any, ok: Any, what: str) -> None:
    # `ok(value)` is only asked of Python numbers (traced values pass).
    if isinstance(value, int | float) and not isinstance(value, bool) and not ok(value):
        raise ValueError(f"`{name}` must be {what}. Received: {name}={value!r}")


class Adafactor(Keras3Optimizer):
    """Adafactor (Keras 3 ``Adafactor``), slots ``"r"``, ``"c"``, ``"v"``.

    With ``t = iterations + 1``, ``beta_t = 1 - t ** beta_2_decay`` and
    ``s = g**2 + epsilon_1``, a variable of rank >= 2 keeps the means of ``s``
    over its last axis (``r``, shape ``shape[:-1]``) and over its second last
    axis (``c``, shape ``shape[:-2] + shape[-1:]``) as ``beta_t`` averages, and
    ``v = (r / mean(r, -1))[..., None] * c[..., None, :]``; a variable of rank
    < 2 keeps the full average ``v`` of ``s``. Then ``u = g / sqrt(v)``,
    ``u <- u / max(1, rms(u) / clip_threshold)`` and
    ``x <- x - min(lr, 1 / sqrt(t)) * max(epsilon_2, rms(x)) * u``.
    With ``weight_decay`` the variable is first decayed,
    ``x <- x - lr * weight_decay * x`` (Keras 3's base), and ``rms(x)`` is
    that of the decayed variable.

    As in Keras 3 the step size is ``min(lr, 1 / sqrt(t))`` whatever
    ``relative_step`` says (Keras applies the minimum once more when
    ``relative_step`` is true and the learning rate is a constant, which
    changes nothing), so ``relative_step`` is kept for the config only.

    Only ``r`` and ``c`` are stored for factored variables: their ``"v"``
    slot and weight is computed from them when read (Keras overwrites it from
    ``r`` and ``c`` at every step, so a ``v`` given to :meth:`set_weights` is
    checked for shape and otherwise unused). Variables of rank < 2 have no
    ``"r"``/``"c"`` slots or weights (Keras 3 keeps untracked placeholders).

    Args:
      learning_rate: a float, a zero-argument callable or a
        ``LearningRateSchedule`` (called with ``iterations``).
      beta_2_decay: the decay exponent of ``beta_2`` (``<= 0``).
      epsilon_1: added to ``g**2`` (``>= 0``).
      epsilon_2: the smallest parameter scale (``>= 0``).
      clip_threshold: the largest RMS of ``u`` (``> 0``); independent of
        ``clipnorm``/``clipvalue``/``global_clipnorm``.
      relative_step: Keras' flag (see above).
      name: the optimizer name.
      **kwargs: Keras 3's base arguments (see
        :class:`~optaxish.optimizers._adamw.Keras3Optimizer`):
        ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ...

    Raises:
      ValueError: for out-of-range hyperparameters, an int learning rate,
        unknown kwargs or two clipping options.

    Examples:
      >>> from optaxish import Variable
      >>> from optaxish.optimizers import Adafactor
      >>> opt = Adafactor(learning_rate=0.1)
      >>> w = Variable([[1.0, 2.0], [3.0, 4.0]], name="w")
      >>> _ = opt.apply_gradients([([[1.0, -1.0], [0.5, 2.0]], w)])
      >>> w.numpy().round(4)
      array([[0.596 , 2.202 ],
             [2.8614, 3.7229]], dtype=float32)
      >>> opt.get_slot(w, "r").shape, opt.get_slot(w, "v").shape
      ((2,), (2, 2))
    """

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_2_decay: float = -0.8,
        epsilon_1: float = 1e-30,
        epsilon_2: float = 1e-3,
        clip_threshold: float = 1.0,
        relative_step: bool = True,
        name: str = "Adafactor",
        **kwargs: Any,
    ) -> None:
        _check("beta_2_decay", beta_2_decay, lambda x: x <= 0, "<= 0")
        _check("epsilon_1", epsilon_1, lambda x: x >= 0, ">= 0")
        _check("epsilon_2", epsilon_2, lambda x: x >= 0, ">= 0")
        _check("clip_threshold", clip_threshold, lambda x: x > 0, "> 0")
        super().__init__(name, learning_rate, **kwargs)
        self._set_hyper("beta_2_decay", beta_2_decay)
        self._set_hyper("epsilon_1", epsilon_1)
        self._set_hyper("epsilon_2", epsilon_2)
        self._set_hyper("clip_threshold", clip_threshold)
        self.relative_step = bool(relative_step)

    def _core(self, lr: Any, hyper: dict[str, Any]) -> GradientTransformation:
        tx = chain(
            scale_by_factored_rms(
                decay_rate=-hyper["beta_2_decay"],
                min_dim_size_to_factor=0,
                epsilon=hyper["epsilon_1"],
                factored_axes="last_two",
            ),
            clip_by_block_rms(hyper["clip_threshold"]),
            scale_by_param_block_rms(hyper["epsilon_2"]),
            scale_by_schedule(lambda n: -jnp.minimum(lr, jax.lax.rsqrt(n + 1.0))),
        )
        if self._decayed:
            decay = scale(-lr * hyper["weight_decay"])
            decayed = self._decayed_value()  # some variables exempt
            if decayed is not None:  # their decrement is 0
                decay = masked_decay(decay, decayed, jnp.zeros_like)
            tx = _decayed_first(tx, decay)
        return tx

    def _slot_fields(self) -> list[tuple[str, str]]:
        return [("r", "v_row"), ("c", "v_col"), ("v", "v")]

    def _static_key(self) -> tuple:
        return (self._decayed,)

    # -- slots and weights: Keras' layout over the factored state -------------

    def _has_slot(self, index: int, keras_name: str) -> bool:
        return keras_name == "v" or len(self._vars[index].shape) >= 2

    def _slot_value(self, index: int, keras_name: str) -> jax.Array:
        state = self._state.inner_state[index]
        if keras_name == "v" and len(self._vars[index].shape) >= 2:
            return last_two_second_moment(
                slots.get(state, "v_row"), slots.get(state, "v_col")
            )
        return slots.get(state, dict(self._slot_fields())[keras_name])

    def get_slot(self, var: Any, slot_name: str) -> jax.Array:
        """The current value of ``var``'s slot ``slot_name`` (a copy).

        Raises:
          KeyError: for an unknown variable or slot name, or ``"r"``/``"c"``
            of a variable of rank < 2.
        """
        index = self._var_position(var)
        if slot_name not in dict(self._slot_fields()) or not self._has_slot(
            index, slot_name
        ):
            raise KeyError(slot_name)
        return jnp.array(self._slot_value(index, slot_name), copy=True)

    def _weight_entries(self) -> list[tuple[str, int | None, str | None]]:
        # Keras 3's order: iterations, then per variable its r, c (rank >= 2)
        # and v; named as the other facade optimizers ("<opt>/<var>/<slot>").
        if not self._vars:
            return []
        out: list[tuple[str, int | None, str | None]] = [
            (f"{self._name}/iter:0", None, None)
        ]
        for batch in self._batches:
            for i in batch:
                shared = self._vars[i]._shared_name
                for keras_name, _ in self._slot_fields():
                    if self._has_slot(i, keras_name):
                        name = f"{self._name}/{shared}/{keras_name}:0"
                        out.append((name, i, keras_name))
        return out

    def _weight_value(self, index: int | None, field: str | None) -> Any:
        if index is None:
            return self._state.iterations
        return self._slot_value(index, field)

    def set_weights(self, weights: list[Any]) -> None:
        """Loads a list in :meth:`get_weights` order (Keras 3's order).

        The ``v`` of a factored variable is checked for shape, then ignored
        (it is recomputed from ``r`` and ``c``).

        Raises:
          ValueError: on a wrong length or shape; nothing changes then.
        """
        checked = self._checked_weights(weights)
        state = self._state
        inner = list(state.inner_state)
        iterations = state.iterations
        fields = dict(self._slot_fields())
        for (_, i, keras_name), w, _ in checked:
            if i is None:
                iterations = as_iterations(w)
            elif keras_name != "v" or len(self._vars[i].shape) < 2:
                inner[i] = slots.set(inner[i], fields[keras_name], np.asarray(w))
        self._state = state._replace(iterations=iterations, inner_state=tuple(inner))

    def get_config(self) -> dict[str, Any]:
        """Keras 3's config: the base keys plus ``beta_2_decay``,
        ``epsilon_1``, ``epsilon_2``, ``clip_threshold``, ``relative_step``."""
        config = super().get_config()
        config.update(
            beta_2_decay=self._config_value("beta_2_decay"),
            epsilon_1=self._config_value("epsilon_1"),
            epsilon_2=self._config_value("epsilon_2"),
            clip_threshold=self._config_value("clip_threshold"),
            relative_step=self.relative_step,
        )
        return config
