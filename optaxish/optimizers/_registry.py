"""``get``/``serialize``/``deserialize`` of the Keras-style optimizers.

Names are looked up case-insensitively (tf-keras lowercases the built-in
names): ``"adam"``, ``"Adam"``, ``"RMSprop"``... Other modules (e.g. the
``LossScaleOptimizer`` of :mod:`optaxish.mixed_precision`) and users add
classes with :func:`register_optimizer`.
"""

from __future__ import annotations

from typing import Any

# Keras names of the built-in classes, and the `module` of their configs.
_BUILTIN = {
    "SGD": "keras.optimizers.legacy",
    "Adam": "keras.optimizers.legacy",
    "RMSprop": "keras.optimizers.legacy",
    "Adagrad": "keras.optimizers.legacy",
    "Adadelta": "keras.optimizers.legacy",
    "Adamax": "keras.optimizers.legacy",
    "Nadam": "keras.optimizers.legacy",
    "Ftrl": "keras.optimizers.legacy",
    "AdamW": "keras.optimizers",
    "Lion": "keras.optimizers",
    "Adafactor": "keras.optimizers",
}
_REGISTERED: dict[str, tuple[str, type]] = {}  # lowercase name -> (name, class)
# Other names tf-keras' `deserialize` knows, read as ours (lowercase -> class
# name): its new-style optimizers' configs load into the legacy classes (see
# `Optimizer`: their extra keys are checked there).
_ALIASES = {
    "experimentaladadelta": "Adadelta",
    "experimentaladagrad": "Adagrad",
    "experimentaladam": "Adam",
    "experimentalsgd": "SGD",
}
# tf-keras' loss-scale optimizer names, all read as
# `optaxish.mixed_precision.LossScaleOptimizer` (its `from_config` takes the
# TF 2.4+ form, V3's and TF 2.3's).
_LOSS_SCALE_NAMES = (
    "lossscaleoptimizer",
    "lossscaleoptimizerv3",
    "lossscaleoptimizerv1",
)


def register_optimizer(cls: type | None = None, *, name: str | None = None) -> Any:
    """Makes ``cls`` known to :func:`get` and :func:`deserialize` (a decorator).

    ``name`` defaults to the class name; lookups ignore case. Registering a
    name again replaces the earlier class.

    Args:
      cls: the optimizer class (with ``get_config``/``from_config``).
      name: the name in configs (``class_name``).

    Returns:
      ``cls`` (or a decorator when ``cls`` is omitted).

    Examples:
      >>> from optaxish import optimizers
      >>> @optimizers.register_optimizer(name="MySGD")
      ... class MySGD(optimizers.SGD):
      ...     pass
      >>> type(optimizers.get("mysgd")).__name__
      'MySGD'
    """

    def register(cls: type) -> type:
        key = name or cls.__name__
        _REGISTERED[key.lower()] = (key, cls)
        return cls

    return register if cls is None else register(cls)


def _builtins() -> dict[str, tuple[str, type]]:
    from optaxish import optimizers  # late: the classes import this package

    return {
        n.lower(): (n, getattr(optimizers, n))
        for n in _BUILTIN
        if hasattr(optimizers, n)
    }


def _lookup(class_name: str, custom_objects: dict[str, Any] | None) -> type | None:
    if custom_objects and class_name in custom_objects:
        return custom_objects[class_name]
    key = class_name.lower()
    if key in _REGISTERED:
        return _REGISTERED[key][1]
    if key in _LOSS_SCALE_NAMES:
        from optaxish.mixed_precision import LossScaleOptimizer

        return LossScaleOptimizer
    found = _builtins().get(_ALIASES.get(key, key).lower())
    return None if found is None else found[1]


def _class_name(cls: type) -> tuple[str, str, str | None]:
    """``(class_name, module, registered_name)`` of ``cls``' configs."""
    for name, registered in _REGISTERED.values():
        if registered is cls:
            builtin = name in _BUILTIN
            module = _BUILTIN.get(name, cls.__module__)
            return name, module, None if builtin else name
    for _, builtin in _builtins().values():
        if builtin is cls:
            return builtin.__name__, _BUILTIN[builtin.__name__], None
    return cls.__name__, cls.__module__, cls.__name__


def serialize(optimizer: Any) -> dict[str, Any]:
    """The optimizer as a JSON-safe ``{module, class_name, config,
    registered_name}`` dict (tf-keras' format).

    Args:
      optimizer: an optimizer instance.

    Returns:
      The dict that :func:`deserialize` revives.

    Raises:
      TypeError: when ``optimizer`` has no ``get_config``.

    Examples:
      >>> from optaxish.optimizers import Adam, serialize
      >>> config = serialize(Adam(0.1))
      >>> config["class_name"], config["config"]["learning_rate"]
      ('Adam', 0.1)
    """
    if not hasattr(optimizer, "get_config") or isinstance(optimizer, type):
        raise TypeError(
            "`serialize` expects an optimizer instance. Received: "
            f"{optimizer!r} (of type {type(optimizer).__name__})"
        )
    class_name, module, registered = _class_name(type(optimizer))
    return {
        "module": module,
        "class_name": class_name,
        "config": optimizer.get_config(),
        "registered_name": registered,
    }


def deserialize(
    config: dict[str, Any], custom_objects: dict[str, Any] | None = None, **kwargs: Any
) -> Any:
    """An optimizer from a ``{class_name, config}`` dict (:func:`serialize`).

    ``class_name`` is looked up in ``custom_objects`` first, then among the
    registered and built-in classes (ignoring case). ``use_legacy_optimizer``
    and ``use_legacy_format`` are accepted and ignored (the built-in classes
    of tf-keras names are the legacy ones). Configs of tf-keras' new-style
    optimizers (``tf_keras.optimizers.Adam``, ...; also ``ExperimentalAdam``
    and the other names tf-keras knows) and of Keras 3's load into those
    legacy classes: their extra keys (``weight_decay``, ``use_ema``,
    ``jit_compile``, ...) are dropped where they mean what the legacy class
    does, and a value it cannot honour (a non-zero ``weight_decay``,
    ``use_ema=True``, ...) raises a ``ValueError`` naming the key.
    ``LossScaleOptimizer``, ``LossScaleOptimizerV3`` and
    ``LossScaleOptimizerV1`` configs give an
    :class:`optaxish.mixed_precision.LossScaleOptimizer`.

    Args:
      config: the dict; its ``config`` entry may be missing (defaults).
      custom_objects: ``{name: class}`` for user classes.
      **kwargs: ``use_legacy_optimizer``, ``use_legacy_format``.

    Returns:
      A new optimizer.

    Raises:
      ValueError: for an unknown class name (tf-keras' message), a dict
        without ``class_name``, or a new-style key whose value the class
        cannot honour.

    Examples:
      >>> from optaxish.optimizers import deserialize
      >>> opt = deserialize({"class_name": "rmsprop", "config": {"rho": 0.8}})
      >>> type(opt).__name__, float(opt.rho)
      ('RMSprop', 0.8)
    """
    unknown = set(kwargs) - {"use_legacy_optimizer", "use_legacy_format"}
    if unknown:
        raise TypeError(f"Unexpected keyword arguments: {sorted(unknown)}")
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            "`config` must be a dict with a `class_name` (and a `config`) entry. "
            f"Received: {config!r}"
        )
    class_name = config["class_name"]
    cls = _lookup(str(class_name), custom_objects)
    if cls is None:
        raise ValueError(
            f"Unknown optimizer: '{class_name}'. Please ensure you are using a "
            "`keras.utils.custom_object_scope` and that this object is included "
            "in the scope. See https://www.tensorflow.org/guide/keras/"
            "save_and_serialize#registering_the_custom_object for details."
        )
    return cls.from_config(dict(config.get("config") or {}), custom_objects)


def get(identifier: Any, **kwargs: Any) -> Any:
    """An optimizer from a name, a config dict or an instance (returned as is).

    Args:
      identifier: ``"adam"``/``"Adam"``/... (a registered or built-in class,
        with default arguments), a ``{class_name, config}`` dict, or an
        optimizer instance.
      **kwargs: ``use_legacy_optimizer`` (accepted, ignored).

    Returns:
      An optimizer.

    Raises:
      ValueError: ``Unknown optimizer: ...`` for an unknown name, ``Could not
        interpret optimizer identifier: ...`` for anything else (as tf-keras).

    Examples:
      >>> from optaxish.optimizers import get
      >>> type(get("adam")).__name__, type(get("RMSprop")).__name__
      ('Adam', 'RMSprop')
    """
    from optaxish.mixed_precision._lso_base import LossScaleOptimizerBase
    from optaxish.optimizers._optimizer import Optimizer

    registered = tuple(cls for _, cls in _REGISTERED.values())
    if isinstance(identifier, (Optimizer, LossScaleOptimizerBase, *registered)):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier, **kwargs)
    if isinstance(identifier, str):
        return deserialize({"class_name": identifier, "config": {}}, **kwargs)
    raise ValueError(f"Could not interpret optimizer identifier: {identifier}")
