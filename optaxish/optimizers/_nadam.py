"""``Nadam``: tf-keras' legacy Nadam (Dozat's momentum schedule, ``0.004``)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from optaxish import slots
from optaxish._base import GradientTransformation, GradientTransformationExtraArgs
from optaxish.combinators import chain
from optaxish.optimizers import schedules
from optaxish.optimizers._optimizer import Optimizer, OptimizerState
from optaxish.transforms import scale, scale_by_adam

_CACHE = "momentum_cache"  # the key of the shared product in the hyperparams


def _cache_dtype(first: Any) -> Any:
    """The momentum cache's dtype for a first variable of dtype ``first``."""
    return jnp.promote_types(first, jnp.float32)


def _with_product(inner_state: Any, value: jax.Array) -> Any:
    """``inner_state`` with its ``mu_product`` replaced by ``value`` as it is
    (``slots.set`` would cast it to the dtype it replaces)."""

    def put(path: tuple, x: Any) -> Any:
        name = getattr(path[-1], "name", None) if path else None
        return value if name == "mu_product" else x

    return jax.tree_util.tree_map_with_path(put, inner_state)


class Nadam(Optimizer):
    """Nadam (tf-keras legacy ``Nadam``), slots ``"m"``, ``"v"``.

    With ``t = iterations + 1`` and ``sd`` the schedule decay (``0.004``):
    ``mu_t = beta_1 (1 - 0.5 * 0.96^(sd t))``, ``momentum_cache <-
    momentum_cache * mu_t``, ``m <- beta_1 m + (1 - beta_1) g``,
    ``v <- beta_2 v + (1 - beta_2) g^2`` and ``x <- x - lr * m_bar /
    (sqrt(v / (1 - beta_2^t)) + epsilon)`` with ``m_bar = (1 - mu_t) g /
    (1 - cache) + mu_{t+1} m / (1 - cache * mu_{t+1})``. This is
    ``scale_by_adam(nesterov=True, momentum_schedule_decay=sd)`` followed by
    ``scale(-lr)``.

    As in tf-keras: ``schedule_decay`` (a keyword argument, default ``0.004``)
    replaces any ``decay`` given, is reported as ``decay`` by
    :meth:`get_config`, and does **not** decay the learning rate; a
    ``LearningRateSchedule`` learning rate is rejected. The non-slot weight
    ``momentum_cache`` (the product of the ``mu_t``, shared by all variables
    and advanced once per step) comes second in :meth:`get_weights`:
    ``[iterations, momentum_cache, m..., v...]``. As in tf-keras it takes the
    dtype of the first variable the optimizer sees (float64 for a float64
    one) and is advanced in that dtype; each variable's step uses it cast to
    its own dtype. Deviation: a float16 or bfloat16 first variable gives a
    float32 cache, and its product is kept in float32 (tf-keras would keep it
    in float16, where the product of coefficients near ``0.9`` loses its
    digits after a few hundred steps). Before the optimizer knows a
    variable, and in :meth:`transformation` over float32 parameters, the
    cache is float32.

    Args:
      learning_rate: a float or a zero-argument callable.
      beta_1: decay of the first moment, in ``[0, 1)``.
      beta_2: decay of the second moment, in ``[0, 1)``.
      epsilon: added to ``sqrt(v_hat)``; ``None`` or ``0`` means ``1e-7``.
      name: the optimizer name.
      **kwargs: ``schedule_decay``, ``clipnorm``, ``clipvalue``,
        ``global_clipnorm``, ``lr`` (see :class:`Optimizer`).

    Raises:
      ValueError: for a ``LearningRateSchedule`` learning rate, ``beta_1`` or
        ``beta_2`` outside ``[0, 1)`` or a negative ``epsilon``.

    Examples:
      >>> from optaxish import Variable
      >>> from optaxish.optimizers._nadam import Nadam
      >>> opt = Nadam(0.2)
      >>> var = Variable(10.0, name="x")
      >>> _ = opt.minimize(lambda: (var**2) / 2.0, [var])
      >>> "{:.1f}".format(var.numpy())
      '9.8'
      >>> [w.name for w in opt.weights]
      ['Nadam/iter:0', 'Nadam/momentum_cache:0', 'Nadam/x/m:0', 'Nadam/x/v:0']
    """

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float | None = 1e-7,
        name: str = "Nadam",
        **kwargs: Any,
    ) -> None:
        if isinstance(learning_rate, schedules.LearningRateSchedule):
            raise ValueError(
                "The Nadam optimizer does not support "
                "tf.keras.optimizers.LearningRateSchedules as the learning rate."
            )
        kwargs["decay"] = kwargs.pop("schedule_decay", 0.004)
        super().__init__(name, **kwargs)
        for arg, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            if isinstance(value, int | float) and not 0 <= value < 1:
                raise ValueError(
                    f"`{arg}` must be in [0, 1). Received: {arg}={value!r}"
                )
        if isinstance(epsilon, int | float) and epsilon < 0:
            raise ValueError(f"`epsilon` must be >= 0. Received: epsilon={epsilon!r}")
        # `decay` is the momentum schedule's decay here, not a learning-rate
        # decay: keep it apart so the base class does not divide the lr by it.
        self._schedule_decay = float(self._initial_decay)
        self._initial_decay = 0.0
        self._set_hyper("learning_rate", kwargs.get("lr", learning_rate))
        self._set_hyper("decay", self._schedule_decay)
        self._set_hyper("beta_1", beta_1)
        self._set_hyper("beta_2", beta_2)
        self.epsilon = epsilon or 1e-7
        hp = {**self._state.hyperparams, _CACHE: jnp.ones([], jnp.float32)}
        self._state = self._state._replace(hyperparams=hp)

    def _core(self, lr: Any, hyper: dict[str, Any]) -> GradientTransformation:
        return chain(
            scale_by_adam(
                hyper["beta_1"],
                hyper["beta_2"],
                self.epsilon,
                nesterov=True,
                momentum_schedule_decay=self._schedule_decay,
            ),
            scale(-lr),
        )

    def _slot_fields(self) -> list[tuple[str, str]]:
        return [("m", "mu"), ("v", "nu")]

    def _static_key(self) -> tuple:
        return (float(self.epsilon), self._schedule_decay)

    def _non_slot_weights(self) -> list[tuple[str, str, float]]:
        return [(_CACHE, _CACHE, 1.0)]

    def _register(self, variables: list[Any]) -> list[int]:
        positions = super()._register(variables)
        self._type_cache()
        return positions

    def _registry_rollback(self, mark: Any) -> None:
        super()._registry_rollback(mark)
        self._type_cache()  # a failed first step leaves the cache as it was

    def _type_cache(self) -> None:
        """Gives the momentum cache the first variable's dtype (tf-keras),
        at least float32 (float32 before any variable)."""
        hp = self._cold.hyperparams
        first = self._vars[0].dtype if self._vars else jnp.float32
        dtype = _cache_dtype(first)
        if hp[_CACHE].dtype != dtype:
            self._set_cold(hyperparams={**hp, _CACHE: hp[_CACHE].astype(dtype)})

    def _compute_updates(
        self, state: OptimizerState, values, grads, variables=None, aggregate=True
    ):
        # tf-keras keeps one momentum cache for all variables, advanced once
        # per step: every variable's core state starts the step from it, in
        # its dtype (the core computes each variable's scalars from it cast to
        # that variable's dtype, and the new product in the cache's dtype).
        # The stored core states keep the dtype they were created with.
        cache = state.hyperparams[_CACHE]
        kept = [slots.get(st, "mu_product").dtype for st in state.inner_state]
        inner = tuple(_with_product(st, cache) for st in state.inner_state)
        new_state, updates = super()._compute_updates(
            state._replace(inner_state=inner), values, grads, variables, aggregate
        )
        if new_state.inner_state:
            cache = slots.get(new_state.inner_state[0], "mu_product")
        inner = tuple(
            _with_product(st, cache.astype(dtype))
            for st, dtype in zip(new_state.inner_state, kept)
        )
        hp = {**new_state.hyperparams, _CACHE: cache}
        return new_state._replace(hyperparams=hp, inner_state=inner), updates

    def transformation(self) -> GradientTransformationExtraArgs:
        """As :meth:`Optimizer.transformation`; ``init`` gives the momentum
        cache the dtype of the first leaf of ``params`` (at least float32)."""
        tx = super().transformation()

        def init_fn(params: Any) -> Any:
            state = tx.init(params)
            leaves = jax.tree.leaves(params)
            if not leaves:
                return state
            cache = state.hyperparams[_CACHE]
            dtype = _cache_dtype(jnp.result_type(leaves[0]))
            hp = {**state.hyperparams, _CACHE: cache.astype(dtype)}
            return state._replace(hyperparams=hp)

        return GradientTransformationExtraArgs(init_fn, tx.update)

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> Any:
        """Creates a ``Nadam`` from :meth:`get_config`'s output.

        Deviation: the config's ``decay`` is passed as ``schedule_decay``, so
        the round trip keeps it (tf-keras' constructor would replace it by
        ``0.004``).
        """
        config = dict(config)
        if "decay" in config and "schedule_decay" not in config:
            config["schedule_decay"] = config.pop("decay")
        return super().from_config(config, custom_objects=custom_objects)

    def get_config(self) -> dict[str, Any]:
        """The config: ``name``, ``learning_rate``, ``decay`` (the schedule
        decay), ``beta_1``, ``beta_2``, ``epsilon`` (and the clip kwargs that
        are set)."""
        config = super().get_config()
        config.update(
            learning_rate=self._serialize_hyperparameter("learning_rate"),
            decay=self._schedule_decay,
            beta_1=self._serialize_hyperparameter("beta_1"),
            beta_2=self._serialize_hyperparameter("beta_2"),
            epsilon=self.epsilon,
        )
        return config
