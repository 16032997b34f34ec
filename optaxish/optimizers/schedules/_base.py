"""``LearningRateSchedule`` and the ``serialize``/``deserialize`` helpers."""

from __future__ import annotations

from typing import Any

import jax

from optaxish.optimizers.schedules._numerics import plain

#: ``module`` written by :func:`serialize` for built-in schedules (tf-keras').
KERAS_MODULE = "keras.optimizers.schedules"

_BUILTINS: dict[str, type[LearningRateSchedule]] = {}


class LearningRateSchedule:
    """The base class of Keras learning-rate schedules.

    A schedule maps the optimizer step to a learning rate. Subclasses
    implement ``__call__(step)`` and, to be serializable, ``get_config()``;
    ``from_config(config)`` defaults to ``cls(**config)``. As in tf-keras the
    base class is not an ``abc.ABC``: a subclass without ``get_config`` can be
    created and used; it only fails when serialized.

    ``step`` may be a Python number, an integer or float array, or a value
    traced by ``jax.jit``; the built-in schedules return a float32 scalar and
    are written with ``jax.numpy`` only, so a compiled optimizer step can call
    them without retracing when the step changes.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish.optimizers import schedules
      >>> class InverseStep(schedules.LearningRateSchedule):
      ...     def __init__(self, initial_learning_rate):
      ...         self.initial_learning_rate = initial_learning_rate
      ...     def __call__(self, step):
      ...         return self.initial_learning_rate / (jnp.asarray(step) + 1)
      ...     def get_config(self):
      ...         return {"initial_learning_rate": self.initial_learning_rate}
      >>> s = InverseStep(0.1)
      >>> s(1)
      Array(0.05, dtype=float32, weak_type=True)
      >>> InverseStep.from_config(s.get_config()).initial_learning_rate
      0.1
    """

    def __call__(self, step: jax.typing.ArrayLike) -> jax.Array:
        """Returns the learning rate at ``step``."""
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' "
            "must override `__call__(self, step)`."
        )

    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments as a JSON-safe dict."""
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' "
            "must override `get_config()` in order to be serializable."
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LearningRateSchedule:
        """Instantiates a schedule from the output of :meth:`get_config`."""
        return cls(**config)

    def __repr__(self) -> str:
        try:
            config = self.get_config()
        except NotImplementedError:
            return object.__repr__(self)
        args = ", ".join(f"{k}={v!r}" for k, v in config.items())
        return f"{type(self).__name__}({args})"


def builtin(cls: type[LearningRateSchedule]) -> type[LearningRateSchedule]:
    """Class decorator: registers a built-in schedule for :func:`deserialize`."""
    _BUILTINS[cls.__name__] = cls
    return cls


def serialize(
    learning_rate_schedule: LearningRateSchedule, use_legacy_format: bool = False
) -> dict[str, Any]:
    """Serializes a schedule into tf-keras' JSON-safe dict.

    The dict has tf-keras' keys: ``module`` (``"keras.optimizers.schedules"``
    for built-in schedules, ``None`` for custom ones), ``class_name``,
    ``config`` (the schedule's ``get_config()``) and ``registered_name``
    (``None`` for built-ins, the class name for custom schedules), so tf-keras
    can read the built-in ones and :func:`deserialize` reads tf-keras'. With
    ``use_legacy_format=True`` it is tf-keras' legacy form, ``class_name`` and
    ``config`` only.

    Args:
      learning_rate_schedule: the schedule to serialize.
      use_legacy_format: write tf-keras' legacy form (tf-keras' argument;
        Keras 3 has no such argument).

    Returns:
      A dict that ``json.dumps`` accepts.

    Raises:
      TypeError: if the argument is not a ``LearningRateSchedule`` (tf-keras
        would pickle a lambda; we do not serialize code).

    Examples:
      >>> from optaxish.optimizers import schedules
      >>> s = schedules.ExponentialDecay(0.1, decay_steps=1000, decay_rate=0.96)
      >>> schedules.serialize(s)  # doctest: +NORMALIZE_WHITESPACE
      {'module': 'keras.optimizers.schedules', 'class_name': 'ExponentialDecay',
       'config': {'initial_learning_rate': 0.1, 'decay_steps': 1000,
                  'decay_rate': 0.96, 'staircase': False, 'name': None},
       'registered_name': None}
      >>> schedules.serialize(s, use_legacy_format=True)
      {'class_name': 'ExponentialDecay',
       'config': {'initial_learning_rate': 0.1, 'decay_steps': 1000,
                  'decay_rate': 0.96, 'staircase': False, 'name': None}}
    """
    if not isinstance(learning_rate_schedule, LearningRateSchedule):
        raise TypeError(
            "`learning_rate_schedule` must be a LearningRateSchedule. Received: "
            f"learning_rate_schedule={learning_rate_schedule!r}"
        )
    cls = type(learning_rate_schedule)
    config = plain(learning_rate_schedule.get_config())
    if use_legacy_format:
        return {"class_name": cls.__name__, "config": config}
    builtin = _BUILTINS.get(cls.__name__) is cls
    return {
        "module": KERAS_MODULE if builtin else None,
        "class_name": cls.__name__,
        "config": config,
        "registered_name": None if builtin else cls.__name__,
    }


def deserialize(
    config: dict[str, Any],
    custom_objects: dict[str, Any] | None = None,
    use_legacy_format: bool = False,
) -> LearningRateSchedule:
    """Instantiates a schedule from its serialized form.

    Accepts the output of :func:`serialize` or of tf-keras'
    ``tf.keras.optimizers.schedules.serialize`` (``module`` and
    ``registered_name`` are optional, so the older
    ``{"class_name": ..., "config": {...}}`` form works too). The class is
    looked up in ``custom_objects`` (by ``registered_name``, then
    ``class_name``), then among the built-in schedules; no module is imported.
    A ``LearningRateSchedule`` instance is returned unchanged. ``config`` is
    not modified.

    Args:
      config: a dict ``{"class_name": str, "config": dict, ...}``.
      custom_objects: maps class names to custom ``LearningRateSchedule``
        subclasses.
      use_legacy_format: accepted for tf-keras' signature; both forms are
        read whatever its value.

    Returns:
      A ``LearningRateSchedule``.

    Raises:
      TypeError: if ``config`` is not such a dict, the class name is unknown
        (tf-keras' and Keras 3's error for a custom class that is not
        registered; for an unknown name in the built-in form they return the
        name string instead), or the class found is not a
        ``LearningRateSchedule`` subclass.

    Examples:
      >>> from optaxish.optimizers import schedules
      >>> s = schedules.deserialize({
      ...     "class_name": "PolynomialDecay",
      ...     "config": {"initial_learning_rate": 0.1, "decay_steps": 10000,
      ...                "end_learning_rate": 0.01, "power": 0.5,
      ...                "cycle": False, "name": None}})
      >>> type(s).__name__, s(0)
      ('PolynomialDecay', Array(0.1, dtype=float32))
    """
    del use_legacy_format  # both forms are read either way
    if isinstance(config, LearningRateSchedule):
        return config
    if (
        not isinstance(config, dict)
        or not isinstance(config.get("class_name"), str)
        or not isinstance(config.get("config", {}), dict)
    ):
        raise TypeError(
            "`config` must be a dict of the form {'class_name': str, 'config': "
            f"dict}}, as written by `serialize`. Received: config={config!r}"
        )
    class_name = config["class_name"]
    custom_objects = dict(custom_objects or {})
    cls = None
    for key in (config.get("registered_name"), class_name):
        if key is not None and key in custom_objects:
            cls = custom_objects[key]
            break
    if cls is None:
        cls = _BUILTINS.get(class_name)
    if cls is None:  # tf-keras and Keras 3 raise a TypeError here
        raise TypeError(
            f"Unknown learning rate schedule: '{class_name}'. Pass custom "
            "schedule classes in `custom_objects`, e.g. "
            f"deserialize(config, custom_objects={{'{class_name}': "
            f"{class_name}}}). Built-in schedules: {sorted(_BUILTINS)}."
        )
    if not (isinstance(cls, type) and issubclass(cls, LearningRateSchedule)):
        raise TypeError(
            f"`custom_objects[{class_name!r}]` must be a LearningRateSchedule "
            f"subclass. Received: {cls!r}"
        )
    return cls.from_config(dict(config.get("config", {})))
