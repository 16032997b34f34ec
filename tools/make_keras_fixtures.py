"""Writes golden tf-keras optimizer trajectories as JSON fixtures.

TensorFlow and tf-keras are *not* project dependencies: run this script in a
separate virtual environment that has them, from the repository root::

    python3 -m venv /work/tfenv
    /work/tfenv/bin/pip install tensorflow-cpu tf-keras
    /work/tfenv/bin/python tools/make_keras_fixtures.py

It (re)writes ``tests/fixtures/keras/*.json``; the tests read only the JSON
(``tests/keras_fixtures.py`` is the loader, ``tests/test_keras_fixtures.py``
checks the data without TensorFlow).

Trajectory files (``sgd.json``, ``adam.json``, ..., ``clipping.json``,
``decay.json``, ``schedules.json``, ``constraints.json``, ``loss_scale.json``)
hold ``{"format", "generator", "tf_version", "tf_keras_version", "cases"}``.
Each case records:

* ``optimizer``: ``{"api", "class_path", "class_name", "kwargs"}`` -- ``api`` is
  ``"legacy"`` (``tf_keras.optimizers.legacy.<Name>``, Keras 2 OptimizerV2) or
  ``"new"`` (``tf_keras.optimizers.<Name>``, the Keras-3-style optimizer of
  tf-keras, used for AdamW, Lion and Adafactor). A learning-rate schedule in
  ``kwargs`` is ``{"class_name": ..., "config": {...}}``.
* ``loss_scale``: ``None`` or the ``tf_keras.mixed_precision.LossScaleOptimizer``
  kwargs (``dynamic``, ``initial_scale``, ``dynamic_growth_steps``).
* ``features``: tags such as ``"momentum"``, ``"clipnorm"``, ``"schedule:CosineDecay"``.
* ``seed`` (numpy ``default_rng`` seed of the initial values and gradients),
  ``variables`` (name, shape, float32 initial value, constraint).
* ``grads``: per step, per variable, the gradient passed to ``apply_gradients``
  (flat, row-major). Non-finite values are the strings ``"nan"``, ``"inf"``,
  ``"-inf"``. For loss-scale cases these are the *unscaled* gradients, i.e.
  what ``get_unscaled_gradients`` returned for ``grad * loss_scale``.
* ``steps``: per step, after ``apply_gradients``: ``variables`` (flat values),
  ``iterations``, ``lr`` (the learning rate the step used: schedule and
  ``decay`` applied; legacy only), and for loss-scale cases ``loss_scale``,
  ``dynamic_counter`` and ``grads_finite``.
* ``final``: ``slots`` (``{"var", "slot", "shape", "value"}`` with tf-keras slot
  names), ``weights`` (``{"name", "shape", "dtype", "value"}`` in
  ``get_weights()`` order; for ``"new"`` optimizers, ``variables`` order),
  ``slot_names`` (``get_slot_names()``; ``None`` for ``"new"``), ``config``
  (``get_config()``, JSON-safe).
* ``note``: a remark where tf-keras differs from what the facade follows; and
  for ``"new"`` cases ``keras3``: the same case run through Keras 3 itself
  (version, backend, ``max_abs_diff`` against the tf-keras trajectory, and its
  ``variables`` paths), so the fixture is known to match Keras 3's numbers.

All float values are float32 numbers written exactly as float64 JSON numbers.
``seed_examples.json`` holds the numeric docstring examples of the seed pages
(``../shared/reference/seeds/``) and of the tf-keras legacy optimizer classes;
``spec_checks.json`` holds the spec's 3-step golden checks
(``keras-behaviour.md`` §2) and a few §5 examples, each with the spec's
expected numbers next to what tf-keras produced.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
import zlib
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

try:  # Keras 3 (a TensorFlow dependency), for the Keras-3-only optimizers' check
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras as keras3  # noqa: E402
except ImportError:  # pragma: no cover
    keras3 = None

OUT_DIR = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "keras"
FORMAT = 1
NAMES = ("a", "b", "c")
SHAPES = ((3,), (2, 2), ())
LEGACY = tf_keras.optimizers.legacy
SCHEDULES = tf_keras.optimizers.schedules
LSO = tf_keras.mixed_precision.LossScaleOptimizer

# --------------------------------------------------------------------------
# JSON helpers


def enc_float(x) -> float | str:
    """A float32 value as an exact JSON number, or a string if non-finite."""
    x = float(np.float32(x)) if not isinstance(x, float) else x
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def enc_array(a) -> list:
    a = np.asarray(a)
    if a.dtype.kind in "iub":
        return [int(v) for v in a.reshape(-1)]
    return [enc_float(float(v)) for v in a.astype(np.float32).reshape(-1)]


def json_safe(obj):
    """Converts configs (numpy scalars, tensors, tuples) to plain JSON data."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, tf.Variable | tf.Tensor):
        obj = obj.numpy()
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.bool_ | bool):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating | float):
        return enc_float(float(obj))
    return obj


def dumps(obj, indent: int = 0) -> str:
    """Pretty JSON with flat lists (and lists of flat lists) kept on one line."""
    pad = " " * indent
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [
            f"{pad} {json.dumps(k)}: {dumps(v, indent + 1)}" for k, v in obj.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        flat = all(not isinstance(v, dict | list) for v in obj)
        nested_flat = all(
            isinstance(v, list) and all(not isinstance(w, dict | list) for w in v)
            for v in obj
        )
        if flat or nested_flat:
            return json.dumps(obj, separators=(",", ":"))
        items = [f"{pad} {dumps(v, indent + 1)}" for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj)


# --------------------------------------------------------------------------
# Builders


def sched(class_name: str, **config) -> dict:
    return {"class_name": class_name, "config": config}


def is_schedule(value) -> bool:
    return isinstance(value, dict) and "class_name" in value


def build_schedule(spec: dict):
    return getattr(SCHEDULES, spec["class_name"])(**spec["config"])


def build_optimizer(spec: dict):
    kwargs = {
        k: build_schedule(v) if is_schedule(v) else v for k, v in spec["kwargs"].items()
    }
    module = LEGACY if spec["api"] == "legacy" else tf_keras.optimizers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the `lr` alias warns
        return getattr(module, spec["class_name"])(**kwargs)


def build_constraint(spec):
    if spec is None:
        return None
    return getattr(tf_keras.constraints, spec["class_name"])(**spec["config"])


# --------------------------------------------------------------------------
# Case table

CASES: list[dict] = []


def case(
    file: str,
    name: str,
    class_name: str,
    features: list[str],
    api: str = "legacy",
    steps: int = 20,
    grad_scale: float = 1.0,
    constraints: tuple = (None, None, None),
    loss_scale: dict | None = None,
    inject: tuple = (),
    note: str | None = None,
    **kwargs,
) -> None:
    CASES.append(
        {
            "file": file,
            "name": name,
            "optimizer": {
                "api": api,
                "class_path": (
                    f"tf_keras.optimizers.legacy.{class_name}"
                    if api == "legacy"
                    else f"tf_keras.optimizers.{class_name}"
                ),
                "class_name": class_name,
                "kwargs": kwargs,
            },
            "features": features,
            "steps": steps,
            "grad_scale": grad_scale,
            "constraints": list(constraints),
            "loss_scale": loss_scale,
            "inject": [list(i) for i in inject],
            "note": note,
        }
    )


# The case table. fmt: off keeps one case per line.
# fmt: off
def _table() -> None:
    # Defaults and options of every legacy optimizer.
    case("sgd", "sgd_default", "SGD", ["defaults"])
    case("sgd", "sgd_lr", "SGD", ["plain"], learning_rate=0.1)
    case("sgd", "sgd_momentum", "SGD", ["momentum"], learning_rate=0.05, momentum=0.9)
    case("sgd", "sgd_nesterov", "SGD", ["momentum", "nesterov"], learning_rate=0.05, momentum=0.9, nesterov=True)
    case("sgd", "sgd_nesterov_no_momentum", "SGD", ["nesterov"], learning_rate=0.1, nesterov=True)
    case("sgd", "sgd_lr_alias", "SGD", ["lr_alias", "momentum"], lr=0.05, momentum=0.5)

    case("adam", "adam_default", "Adam", ["defaults"])
    case("adam", "adam_custom", "Adam", ["epsilon"], learning_rate=0.05, beta_1=0.8, beta_2=0.95, epsilon=0.1)
    case("adam", "adam_amsgrad_default", "Adam", ["defaults", "amsgrad"], amsgrad=True)
    case("adam", "adam_amsgrad", "Adam", ["amsgrad"], learning_rate=0.05, beta_2=0.9, amsgrad=True)

    case("rmsprop", "rmsprop_default", "RMSprop", ["defaults"])
    case("rmsprop", "rmsprop_custom", "RMSprop", ["epsilon"], learning_rate=0.01, rho=0.8, epsilon=0.1)
    case("rmsprop", "rmsprop_momentum", "RMSprop", ["momentum"], learning_rate=0.01, momentum=0.5, epsilon=0.1)
    case("rmsprop", "rmsprop_centered", "RMSprop", ["centered"], learning_rate=0.01, centered=True, epsilon=0.1)
    case("rmsprop", "rmsprop_momentum_centered", "RMSprop", ["momentum", "centered"], learning_rate=0.01, momentum=0.5, centered=True, epsilon=0.1)
    case("rmsprop", "rmsprop_momentum_default_eps", "RMSprop", ["momentum"], momentum=0.9)

    case("adagrad", "adagrad_default", "Adagrad", ["defaults"])
    case("adagrad", "adagrad_custom", "Adagrad", ["epsilon", "initial_accumulator_value"], learning_rate=0.1, initial_accumulator_value=0.5, epsilon=0.1)
    case("adadelta", "adadelta_default", "Adadelta", ["defaults"])
    case("adadelta", "adadelta_custom", "Adadelta", ["epsilon"], learning_rate=1.0, rho=0.9, epsilon=1e-3)
    case("adamax", "adamax_default", "Adamax", ["defaults"])
    case("adamax", "adamax_custom", "Adamax", ["epsilon"], learning_rate=0.05, beta_1=0.8, beta_2=0.9, epsilon=0.1)
    case("nadam", "nadam_default", "Nadam", ["defaults"])
    case("nadam", "nadam_custom", "Nadam", ["epsilon"], learning_rate=0.05, beta_1=0.8, beta_2=0.95, epsilon=0.1)
    case("nadam", "nadam_schedule_decay", "Nadam", ["schedule_decay"], learning_rate=0.05, schedule_decay=0.1)
    case("ftrl", "ftrl_default", "Ftrl", ["defaults"])
    case("ftrl", "ftrl_l1_l2_beta", "Ftrl", ["l1", "l2", "beta"], learning_rate=0.1, l1_regularization_strength=0.05, l2_regularization_strength=0.1, beta=0.3)
    case("ftrl", "ftrl_shrinkage", "Ftrl", ["l1", "l2_shrinkage", "learning_rate_power", "initial_accumulator_value"], learning_rate=0.1, learning_rate_power=-0.3, initial_accumulator_value=0.5, l1_regularization_strength=0.05, l2_shrinkage_regularization_strength=0.2)

    # Keras-3-only optimizers: the new-style tf-keras classes.
    case("adamw", "adamw_default", "AdamW", ["defaults"], api="new")
    case("adamw", "adamw_custom", "AdamW", ["weight_decay", "epsilon"], api="new", learning_rate=0.05, weight_decay=0.1, beta_1=0.8, beta_2=0.95, epsilon=0.1)
    case("adamw", "adamw_amsgrad", "AdamW", ["weight_decay", "amsgrad"], api="new", learning_rate=0.05, weight_decay=0.05, beta_2=0.9, amsgrad=True)
    case("lion", "lion_default", "Lion", ["defaults"], api="new", learning_rate=0.001, note="tf-keras' Lion defaults to learning_rate=1e-4, Keras 3's to 1e-3: Keras 3's value is passed explicitly")
    case("lion", "lion_custom", "Lion", ["beta"], api="new", learning_rate=0.01, beta_1=0.8, beta_2=0.95)
    case("adafactor", "adafactor_default", "Adafactor", ["defaults"], api="new")
    case("adafactor", "adafactor_custom", "Adafactor", ["relative_step", "clip_threshold"], api="new", learning_rate=0.5, beta_2_decay=-0.5, epsilon_2=1e-2, clip_threshold=0.5)
    case("adafactor", "adafactor_no_relative_step", "Adafactor", ["relative_step"], api="new", learning_rate=0.05, relative_step=False)

    # Gradient clipping kwargs (gradients scaled up so that the clips bite).
    for clip_kw in ({"clipnorm": 1.0}, {"clipvalue": 0.5}, {"global_clipnorm": 1.0}):
        (key,) = clip_kw
        case("clipping", f"sgd_{key}", "SGD", [key, "momentum"], grad_scale=3.0, learning_rate=0.05, momentum=0.5, **clip_kw)
        case("clipping", f"adam_{key}", "Adam", [key], grad_scale=3.0, learning_rate=0.05, **clip_kw)
    case("clipping", "sgd_clipnorm_clipvalue", "SGD", ["clipnorm", "clipvalue"], grad_scale=3.0, learning_rate=0.1, clipnorm=1.0, clipvalue=1.5)
    case("clipping", "rmsprop_clipnorm", "RMSprop", ["clipnorm"], grad_scale=3.0, learning_rate=0.01, clipnorm=1.0)

    # Time-inverse `decay`.
    case("decay", "sgd_decay", "SGD", ["decay"], learning_rate=0.1, decay=0.1)
    case("decay", "sgd_momentum_decay", "SGD", ["decay", "momentum"], learning_rate=0.05, momentum=0.9, decay=0.2)
    case("decay", "adam_decay", "Adam", ["decay"], learning_rate=0.05, decay=0.2)
    case("decay", "rmsprop_decay", "RMSprop", ["decay"], learning_rate=0.01, decay=0.3)
    case("decay", "adagrad_decay", "Adagrad", ["decay"], learning_rate=0.1, decay=0.3)
    case("decay", "sgd_schedule_and_decay", "SGD", ["decay", "schedule:ExponentialDecay"], learning_rate=sched("ExponentialDecay", initial_learning_rate=0.1, decay_steps=4, decay_rate=0.5), decay=0.5)

    # Learning-rate schedules on SGD(momentum) and Adam, plus variants on SGD.
    for key, spec in {
        "exponential": sched("ExponentialDecay", initial_learning_rate=0.1, decay_steps=5, decay_rate=0.5),
        "piecewise": sched("PiecewiseConstantDecay", boundaries=[5, 12], values=[0.1, 0.05, 0.01]),
        "polynomial": sched("PolynomialDecay", initial_learning_rate=0.1, decay_steps=12, end_learning_rate=0.01, power=2.0),
        "inverse_time": sched("InverseTimeDecay", initial_learning_rate=0.1, decay_steps=4, decay_rate=0.5),
        "cosine": sched("CosineDecay", initial_learning_rate=0.1, decay_steps=15, alpha=0.1),
        "cosine_restarts": sched("CosineDecayRestarts", initial_learning_rate=0.1, first_decay_steps=4, t_mul=2.0, m_mul=0.8, alpha=0.05),
    }.items():
        tag = "schedule:" + spec["class_name"]
        case("schedules", f"sgd_momentum_{key}", "SGD", [tag, "momentum"], learning_rate=spec, momentum=0.9)
        case("schedules", f"adam_{key}", "Adam", [tag], learning_rate=spec)
    for key, spec in {
        "exponential_staircase": sched("ExponentialDecay", initial_learning_rate=0.1, decay_steps=3, decay_rate=0.7, staircase=True),
        "polynomial_cycle": sched("PolynomialDecay", initial_learning_rate=0.1, decay_steps=6, end_learning_rate=0.02, power=1.5, cycle=True),
        "inverse_time_staircase": sched("InverseTimeDecay", initial_learning_rate=0.1, decay_steps=3, decay_rate=1.0, staircase=True),
        "cosine_warmup": sched("CosineDecay", initial_learning_rate=0.0, decay_steps=10, alpha=0.1, warmup_target=0.1, warmup_steps=5),
        "cosine_restarts_tmul1": sched("CosineDecayRestarts", initial_learning_rate=0.1, first_decay_steps=6, t_mul=1.0, m_mul=0.5),
    }.items():
        case("schedules", f"sgd_momentum_{key}", "SGD", ["schedule:" + spec["class_name"], "momentum"], learning_rate=spec, momentum=0.9)

    # Variable constraints: NonNeg on `a`, MaxNorm on `b`.
    constraints = ({"class_name": "NonNeg", "config": {}}, {"class_name": "MaxNorm", "config": {"max_value": 1.0, "axis": 0}}, None)
    case("constraints", "sgd_momentum_constraints", "SGD", ["constraint", "momentum"], constraints=constraints, learning_rate=0.1, momentum=0.5)
    case("constraints", "adam_constraints", "Adam", ["constraint"], constraints=constraints, learning_rate=0.1)

    # Loss scaling with injected non-finite gradients: (step, var, flat index, value).
    inject = ((3, 1, 0, "inf"), (4, 0, 2, "nan"), (9, 2, 0, "-inf"), (10, 1, 3, "inf"), (17, 0, 0, "nan"))
    case("loss_scale", "lso_sgd_dynamic", "SGD", ["loss_scale", "nonfinite", "momentum"], steps=24, inject=inject, loss_scale={"dynamic": True, "initial_scale": 2.0, "dynamic_growth_steps": 3}, learning_rate=0.05, momentum=0.9)
    case("loss_scale", "lso_sgd_plain_dynamic", "SGD", ["loss_scale", "nonfinite"], steps=24, inject=inject, loss_scale={"dynamic": True, "initial_scale": 16.0, "dynamic_growth_steps": 4}, learning_rate=0.1)
    case("loss_scale", "lso_adam_dynamic", "Adam", ["loss_scale", "nonfinite"], steps=24, inject=inject, loss_scale={"dynamic": True, "initial_scale": 8.0, "dynamic_growth_steps": 2}, learning_rate=0.05)
    case("loss_scale", "lso_sgd_fixed", "SGD", ["loss_scale", "loss_scale_fixed"], loss_scale={"dynamic": False, "initial_scale": 64.0}, learning_rate=0.1)


# (name, api, class, kwargs, spec step-3 value from keras-behaviour.md §2)
GOLDEN = [
    ("sgd", "legacy", "SGD", {"learning_rate": 0.1}, [0.88, -1.92, 0.35]),
    ("sgd_momentum", "legacy", "SGD", {"learning_rate": 0.1, "momentum": 0.9}, [0.8215, -1.767, -0.127]),
    ("sgd_nesterov", "legacy", "SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}, [0.71935, -1.7103, -0.2143]),
    ("adam", "legacy", "Adam", {"learning_rate": 0.1, "epsilon": 0.5}, [0.991981, -1.9885656, 0.4721009]),
    ("rmsprop", "legacy", "RMSprop", {"learning_rate": 0.1, "epsilon": 0.5}, [0.8517921, -1.9022808, 0.3415494]),
    ("rmsprop_momentum_centered", "legacy", "RMSprop", {"learning_rate": 0.1, "epsilon": 0.5, "momentum": 0.5, "centered": True}, [0.8132211, -1.8112559, 0.0628558]),
    ("rmsprop_centered", "legacy", "RMSprop", {"learning_rate": 0.1, "epsilon": 0.5, "centered": True}, [0.8483249, -1.9000471, 0.3293387]),
    ("adagrad", "legacy", "Adagrad", {"learning_rate": 0.1, "epsilon": 0.5}, [0.9211606, -1.9481917, 0.4249218]),
    ("adadelta", "legacy", "Adadelta", {"learning_rate": 1.0, "epsilon": 0.5}, [-0.1503105, -1.2457999, -0.8180673]),
    ("adamax", "legacy", "Adamax", {"learning_rate": 0.1, "epsilon": 0.5}, [0.91418, -1.8932367, 0.3361533]),
    ("nadam", "legacy", "Nadam", {"learning_rate": 0.1, "epsilon": 0.5}, [0.9127064, -1.9353072, 0.4122426]),
    ("ftrl", "legacy", "Ftrl", {"learning_rate": 0.1}, [0.3428555, -1.3203628, 0.3257815]),
    ("ftrl_l1_l2_beta", "legacy", "Ftrl", {"learning_rate": 0.1, "l1_regularization_strength": 0.05, "l2_regularization_strength": 0.1, "beta": 0.3}, [0.2064681, -1.0080953, 0.2806335]),
    ("ftrl_shrinkage", "legacy", "Ftrl", {"learning_rate": 0.1, "learning_rate_power": -0.3, "l2_shrinkage_regularization_strength": 0.2, "l1_regularization_strength": 0.05}, [0.1148773, -0.8007578, 0.1953214]),
    # Keras 3 reference values; produced here with tf-keras' new-style classes.
    ("lion", "new", "Lion", {"learning_rate": 0.1}, [0.9, -1.9, 0.4]),
    ("adafactor", "new", "Adafactor", {"learning_rate": 0.1}, [0.788786, -1.903778, 0.394213]),
    ("adamw", "new", "AdamW", {"learning_rate": 0.1, "weight_decay": 0.1}, [0.790684, -1.752496, 0.270502]),
]
# fmt: on


_table()


# --------------------------------------------------------------------------
# Running a case


def make_data(spec: dict, seed: int):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    grads = []
    for _ in range(spec["steps"]):
        scale = math.exp(rng.uniform(-1.0, 1.0)) * spec["grad_scale"]
        grads.append(
            [(rng.standard_normal(s) * scale).astype(np.float32) for s in SHAPES]
        )
    for step, var, idx, value in spec["inject"]:
        flat = grads[step - 1][var].reshape(-1)
        flat[idx] = np.float32(float(value))
        grads[step - 1][var] = flat.reshape(SHAPES[var])
    return init, grads


def step_lr(opt, spec):
    """The learning rate the next legacy step uses (iterations not yet bumped)."""
    if spec["optimizer"]["class_name"] == "Nadam":
        return float(opt._get_hyper("learning_rate", tf.float32).numpy())
    return float(opt._decayed_lr(tf.float32).numpy())


def parse_new_slot(var_name: str, names: list[str]):
    """'AdamW/m/a:0' -> ('m', index of 'a')."""
    parts = var_name.split(":")[0].split("/")
    return parts[-2], names.index(parts[-1])


def run_case(spec: dict) -> dict:
    seed = zlib.crc32(spec["name"].encode()) % (2**31)
    init, grads = make_data(spec, seed)
    variables = [
        tf.Variable(v, name=n, constraint=build_constraint(c))
        for v, n, c in zip(init, NAMES, spec["constraints"])
    ]
    inner = build_optimizer(spec["optimizer"])
    legacy = spec["optimizer"]["api"] == "legacy"
    opt = inner if spec["loss_scale"] is None else LSO(inner, **spec["loss_scale"])
    steps = []
    for t, g_step in enumerate(grads):
        record = {}
        if legacy and t > 0:
            record["lr"] = step_lr(inner, spec)
        tensors = [tf.constant(g) for g in g_step]
        if spec["loss_scale"] is not None:
            scale = opt.loss_scale
            opt.get_scaled_loss(tf.constant(1.0))  # keeps the "forgot" warning away
            tensors = opt.get_unscaled_gradients([g * scale for g in tensors])
            for g, u in zip(g_step, tensors):
                np.testing.assert_array_equal(g, u.numpy())
        opt.apply_gradients(zip(tensors, variables))
        if legacy and t == 0:
            # Reading lr before the first step would create `iterations` outside
            # apply_gradients and rename it from "<Name>/iter:0" to "iter:0".
            it = inner.iterations
            it.assign(0)
            record["lr"] = step_lr(inner, spec)
            it.assign(1)
        record["variables"] = [enc_array(v.numpy()) for v in variables]
        record["iterations"] = int(inner.iterations.numpy())
        if spec["loss_scale"] is not None:
            record["loss_scale"] = enc_float(float(opt.loss_scale.numpy()))
            counter = opt.dynamic_counter
            record["dynamic_counter"] = (
                None if counter is None else int(counter.numpy())
            )
            record["grads_finite"] = bool(all(np.isfinite(g).all() for g in g_step))
        steps.append(record)

    final = {}
    if legacy:
        slot_names = list(inner.get_slot_names())
        slots = []
        for i, v in enumerate(variables):
            for s in slot_names:
                try:
                    value = inner.get_slot(v, s).numpy()
                except KeyError:
                    continue
                slots.append(
                    {
                        "var": i,
                        "slot": s,
                        "shape": list(value.shape),
                        "value": enc_array(value),
                    }
                )
        weights = inner.weights
        values = inner.get_weights()
        final["slot_names"] = slot_names
    else:
        slots = []
        for w in inner.variables:
            if "iteration" in w.name:
                continue
            s, i = parse_new_slot(w.name, list(NAMES))
            value = w.numpy()
            slots.append(
                {
                    "var": i,
                    "slot": s,
                    "shape": list(value.shape),
                    "value": enc_array(value),
                }
            )
        weights = inner.variables
        values = [w.numpy() for w in weights]
        final["slot_names"] = None
    final["slots"] = slots
    final["weights"] = [
        {
            "name": w.name,
            "shape": list(np.shape(val)),
            "dtype": w.dtype.name,
            "value": enc_array(val),
        }
        for w, val in zip(weights, values)
    ]
    final["config"] = json_safe(opt.get_config())
    return {
        "name": spec["name"],
        "optimizer": spec["optimizer"],
        "loss_scale": spec["loss_scale"],
        "features": spec["features"],
        "qualified_class": f"{type(inner).__module__}.{type(inner).__qualname__}",
        "seed": seed,
        "grad_scale": spec["grad_scale"],
        "num_steps": spec["steps"],
        "variables": [
            {"name": n, "shape": list(s), "init": enc_array(v), "constraint": c}
            for n, s, v, c in zip(NAMES, SHAPES, init, spec["constraints"])
        ],
        "injected_nonfinite": spec["inject"],
        "grads": [[enc_array(g) for g in g_step] for g_step in grads],
        "steps": steps,
        "final": final,
        "note": spec["note"],
        **({} if legacy else keras3_check(spec, init, grads, steps)),
    }


def keras3_check(spec, init, grads, steps) -> dict:
    """Runs a Keras-3-only optimizer case through Keras 3 itself, for comparison."""
    if keras3 is None:
        return {}
    opt = getattr(keras3.optimizers, spec["optimizer"]["class_name"])(
        **spec["optimizer"]["kwargs"]
    )
    variables = [keras3.Variable(v, name=n) for v, n in zip(init, NAMES)]
    diff = 0.0
    for g_step, record in zip(grads, steps):
        opt.apply_gradients(zip([tf.constant(g) for g in g_step], variables))
        for v, ref in zip(variables, record["variables"]):
            got = np.asarray(v.value).reshape(-1)
            diff = max(diff, float(np.max(np.abs(got - np.asarray(ref)), initial=0)))
    return {
        "keras3": {
            "version": keras3.__version__,
            "backend": keras3.backend.backend(),
            "max_abs_diff": diff,
            "variables": [v.path for v in opt.variables],
        }
    }


# --------------------------------------------------------------------------
# Seed and spec examples


def _num(x):
    return json_safe(np.asarray(x).tolist())


def seed_examples() -> list[dict]:
    out = []

    # keras-2.9 / tf-2.0 "Usage": SGD(0.1) minimising 3*v1*v1 + 2*v2*v2.
    v1, v2 = tf.Variable(1.0, name="var1"), tf.Variable(2.0, name="var2")
    opt = LEGACY.SGD(learning_rate=0.1)
    values = []
    for _ in range(2):
        opt.minimize(lambda: 3 * v1 * v1 + 2 * v2 * v2, var_list=[v1, v2])
        values.append([_num(v1.numpy()), _num(v2.numpy())])
    out.append(
        {
            "name": "usage_minimize_quadratic",
            "source": "keras-2.9_optimizers_Optimizer.md#Usage; tf-2.0_keras_optimizers_Optimizer_short.md#Usage",
            "code": "opt = SGD(learning_rate=0.1); loss = lambda: 3*var1*var1 + 2*var2*var2; opt.minimize(loss, var_list=[var1, var2]) (twice)",
            "note": "var1=1.0, var2=2.0 chosen here (the page leaves them open)",
            "inputs": {"var1": 1.0, "var2": 2.0},
            "outputs": {
                "after_each_minimize": values,
                "iterations": int(opt.iterations.numpy()),
            },
        }
    )

    # keras-2.9 "Hyperparameters": lr overwritten between two minimize calls.
    v1, v2 = tf.Variable(1.0, name="var1"), tf.Variable(2.0, name="var2")
    opt = LEGACY.SGD(learning_rate=0.1)
    values = []
    opt.minimize(lambda: 3 * v1 + 2 * v2, var_list=[v1, v2])
    values.append([_num(v1.numpy()), _num(v2.numpy())])
    opt.learning_rate = 0.05
    opt.minimize(lambda: 3 * v1 + 2 * v2, var_list=[v1, v2])
    values.append([_num(v1.numpy()), _num(v2.numpy())])
    out.append(
        {
            "name": "hyperparameters_set_learning_rate",
            "source": "keras-2.9_optimizers_Optimizer.md#Hyperparameters",
            "code": "opt = SGD(0.1); loss = lambda: 3*var1 + 2*var2; opt.minimize(...); opt.learning_rate = 0.05; opt.minimize(...)",
            "inputs": {"var1": 1.0, "var2": 2.0},
            "outputs": {
                "after_each_minimize": values,
                "learning_rate": _num(opt.learning_rate.numpy()),
            },
        }
    )

    # Callable learning rate: a schedule, and a zero-argument function.
    var = tf.Variable(np.array([0.5]), name="var")  # float64 like np.random.random
    lr = SCHEDULES.ExponentialDecay(
        initial_learning_rate=0.01, decay_steps=20, decay_rate=0.1
    )
    opt = LEGACY.SGD(learning_rate=lr)
    values = []
    for _ in range(3):
        opt.minimize(lambda: 3 * var, var_list=[var])
        values.append(_num(var.numpy()))
    out.append(
        {
            "name": "callable_lr_schedule",
            "source": "keras-2.9_optimizers_Optimizer.md#Callable learning rate; tf-2.3_keras_optimizers_Optimizer.md",
            "code": "var = tf.Variable(np.random.random(size=(1,))); lr = ExponentialDecay(.01, 20, .1); opt = SGD(lr); opt.minimize(lambda: 3*var, [var]) x3",
            "note": "var=[0.5] (float64, like np.random.random) chosen here",
            "inputs": {"var": [0.5], "var_dtype": "float64"},
            "outputs": {
                "after_each_minimize": values,
                "var_dtype": var.dtype.name,
                "iterations": int(opt.iterations.numpy()),
                "config_learning_rate": json_safe(opt.get_config()["learning_rate"]),
            },
        }
    )
    var = tf.Variable(np.array([0.5]), name="var")
    opt = LEGACY.SGD(learning_rate=lambda: 0.1)
    values = []
    for _ in range(2):
        opt.minimize(lambda: 3 * var, var_list=[var])
        values.append(_num(var.numpy()))
    out.append(
        {
            "name": "callable_lr_function",
            "source": "keras-2.9_optimizers_Optimizer.md#Callable learning rate",
            "code": "def lr_callable(): return .1; opt = SGD(lr_callable); opt.minimize(lambda: 3*var, [var]) x2",
            "inputs": {"var": [0.5], "var_dtype": "float64"},
            "outputs": {
                "after_each_minimize": values,
                "config_learning_rate": json_safe(opt.get_config()["learning_rate"]),
            },
        }
    )

    # get_weights / set_weights docstring (RMSprop on Dense(10), one fit step).
    tf_keras.utils.set_random_seed(0)
    opt = LEGACY.RMSprop()
    model = tf_keras.models.Sequential([tf_keras.layers.Dense(10)])
    data = np.arange(100).reshape(5, 20)
    labels = np.zeros(5)
    model.build((None, 20))
    kernel0, bias0 = (w.numpy() for w in model.weights)
    model.compile(opt, loss="mse")
    model.fit(data, labels, verbose=0)
    kernel1, bias1 = (w.numpy() for w in model.weights)
    weights_after_fit = opt.get_weights()
    names = [w.name for w in opt.weights]
    opt.set_weights([np.array(10), np.ones([20, 10]), np.zeros([10])])
    out.append(
        {
            "name": "rmsprop_dense_get_set_weights",
            "source": "keras-2.9_optimizers_Optimizer.md#get_weights / #set_weights (also the tf-2.2 LSO and tf-2.3 pages)",
            "code": "opt = RMSprop(); m = Sequential([Dense(10)]); m.compile(opt, loss='mse'); m.fit(np.arange(100).reshape(5, 20), np.zeros(5)); len(opt.get_weights()); opt.set_weights([np.array(10), np.ones([20, 10]), np.zeros([10])]); opt.iterations",
            "documented": {
                "len_get_weights": 3,
                "iterations_after_set_weights": "<tf.Variable 'RMSprop/iter:0' shape=() dtype=int64, numpy=10>",
            },
            "inputs": {
                "kernel": _num(kernel0),
                "bias": _num(bias0),
                "data": data.tolist(),
                "labels": labels.tolist(),
                "loss": "mse: mean((pred - labels[:, None])**2) over the batch of 5 (one step, batch_size 32)",
            },
            "outputs": {
                "len_get_weights": len(weights_after_fit),
                "weight_names": names,
                "weight_shapes": [list(w.shape) for w in weights_after_fit],
                "weights_after_fit": [_num(w) for w in weights_after_fit],
                "kernel_after_fit": _num(kernel1),
                "bias_after_fit": _num(bias1),
                "iterations_after_set_weights": int(opt.iterations.numpy()),
                "iterations_dtype": opt.iterations.dtype.name,
                "iterations_name": opt.iterations.name,
            },
        }
    )

    # LossScaleOptimizer docstring: 0.5 then 0.25.
    opt = LSO(LEGACY.SGD(0.25))
    var = tf.Variable(1.0, name="var")

    def loss_fn():
        return var**2

    opt.minimize(loss_fn, var_list=[var])
    after_minimize = _num(var.numpy())
    scale_after_minimize = _num(opt.loss_scale.numpy())
    with tf.GradientTape() as tape:
        loss = loss_fn()
        scaled_loss = opt.get_scaled_loss(loss)
    scaled_grad = tape.gradient(scaled_loss, var)
    (grad,) = opt.get_unscaled_gradients([scaled_grad])
    opt.apply_gradients([(grad, var)])
    out.append(
        {
            "name": "loss_scale_optimizer_docstring",
            "source": "tf-2.2_mixed_precision_LossScaleOptimizer.md (experimental LSO(opt, 'dynamic')); run with tf_keras.mixed_precision.LossScaleOptimizer(SGD(0.25)) (dynamic, initial 2**15, growth 2000)",
            "code": "opt = LSO(SGD(0.25)); var = tf.Variable(1.); loss_fn = lambda: var**2; opt.minimize(loss_fn, var_list=var); var.numpy(); then tape: get_scaled_loss, tape.gradient, get_unscaled_gradients, apply_gradients; var.numpy()",
            "documented": {"after_minimize": 0.5, "after_apply_gradients": 0.25},
            "outputs": {
                "after_minimize": after_minimize,
                "loss_scale_after_minimize": scale_after_minimize,
                "loss": _num(loss.numpy()),
                "scaled_loss": _num(scaled_loss.numpy()),
                "scaled_grad": _num(scaled_grad.numpy()),
                "unscaled_grad": _num(grad.numpy()),
                "after_apply_gradients": _num(var.numpy()),
                "loss_scale": _num(opt.loss_scale.numpy()),
                "dynamic_counter": int(opt.dynamic_counter.numpy()),
                "iterations": int(opt.iterations.numpy()),
                "config": json_safe(opt.get_config()),
            },
        }
    )

    # tf-keras legacy subclass docstrings: loss = var**2 / 2, minimize.
    for name, ctor, x0, steps, documented, code in (
        ("sgd_docstring", lambda: LEGACY.SGD(learning_rate=0.1), 1.0, 1, {"var": 0.9}, "SGD(0.1); var=1.0; minimize"),
        ("sgd_momentum_docstring", lambda: LEGACY.SGD(learning_rate=0.1, momentum=0.9), 1.0, 2, {"decrements": [0.1, 0.18]}, "SGD(0.1, momentum=0.9); var=1.0; minimize x2"),
        ("adam_docstring", lambda: LEGACY.Adam(learning_rate=0.1), 10.0, 1, {"var": 9.9}, "Adam(0.1); var=10.0; minimize"),
        ("rmsprop_docstring", lambda: LEGACY.RMSprop(learning_rate=0.1), 10.0, 1, {"var": 9.683772}, "RMSprop(0.1); var=10.0; minimize"),
        ("nadam_docstring", lambda: LEGACY.Nadam(learning_rate=0.2), 10.0, 1, {"var_1f": "9.8"}, "Nadam(0.2); var=10.0; minimize; '{:.1f}'.format(var)"),
    ):  # fmt: skip
        opt = ctor()
        var = tf.Variable(x0, name="var1")
        values = []
        for _ in range(steps):
            count = opt.minimize(lambda v=var: (v**2) / 2.0, [var]).numpy()
            values.append(_num(var.numpy()))
        out.append(
            {
                "name": name,
                "source": f"tf_keras.optimizers.legacy.{type(opt).__name__} docstring",
                "code": code + " with loss = (var**2)/2",
                "documented": documented,
                "inputs": {"var": x0},
                "outputs": {
                    "after_each_minimize": values,
                    "minimize_returned": int(count),
                },
            }
        )

    # LSO hyperparameter delegation docstring.
    opt = LSO(LEGACY.Adam(beta_1=0.8, epsilon=1e-5))
    b1 = _num(tf.convert_to_tensor(opt.beta_1).numpy())
    opt.beta_1 = 0.7
    b1_after = _num(tf.convert_to_tensor(opt.beta_1).numpy())
    inner_b1 = _num(tf.convert_to_tensor(opt.inner_optimizer.beta_1).numpy())
    try:
        _ = opt.epsilon
        eps_error = None
    except AttributeError as e:
        eps_error = f"AttributeError: {e}"
    opt.epsilon = 1e-4
    out.append(
        {
            "name": "loss_scale_optimizer_delegation_docstring",
            "source": "tf_keras.mixed_precision.LossScaleOptimizer docstring (hyperparameter delegation)",
            "code": "opt = LSO(Adam(beta_1=0.8, epsilon=1e-5)); opt.beta_1; opt.beta_1 = 0.7; opt.inner_optimizer.beta_1; opt.epsilon (error); opt.epsilon = 1e-4; opt.inner_optimizer.epsilon",
            "documented": {
                "beta_1": 0.8,
                "beta_1_after_set": 0.7,
                "inner_beta_1": 0.7,
                "inner_epsilon": 1e-5,
            },
            "outputs": {
                "beta_1": b1,
                "beta_1_after_set": b1_after,
                "inner_beta_1": inner_b1,
                "epsilon_error": eps_error,
                "inner_epsilon_after_setting_outer": opt.inner_optimizer.epsilon,
            },
        }
    )
    return out


GOLDEN_X0 = [1.0, -2.0, 0.5]
GOLDEN_GRADS = [[0.5, -1.0, 2.0], [-0.3, 0.2, 1.5], [1.0, 0.0, -2.0]]


def spec_checks() -> dict:
    golden = []
    for name, api, cls, kwargs, expected in GOLDEN:
        module = LEGACY if api == "legacy" else tf_keras.optimizers
        opt = getattr(module, cls)(**kwargs)
        # float64 as in the spec's check scripts (t4_formulas.py) for legacy
        dtype = np.float64 if api == "legacy" else np.float32
        var = tf.Variable(np.array(GOLDEN_X0, dtype), name="x")
        for g in GOLDEN_GRADS:
            opt.apply_gradients([(tf.constant(np.array(g, dtype)), var)])
        got = var.numpy()
        golden.append(
            {
                "name": name,
                "api": api,
                "class_name": cls,
                "kwargs": kwargs,
                "dtype": np.dtype(dtype).name,
                "spec_step3": expected,
                "tf_keras_step3": [float(v) for v in got],
                "max_abs_diff": float(np.max(np.abs(got - np.array(expected)))),
            }
        )

    examples = []

    def record(name, spec_ref, expected, got, note=None):
        entry = {
            "name": name,
            "spec": spec_ref,
            "spec_expected": expected,
            "tf_keras": got,
        }
        if note:
            entry["note"] = note
        examples.append(entry)

    # §5.17: decay.
    v = tf.Variable(0.0, name="v")
    opt = LEGACY.SGD(1.0, decay=0.5)
    sizes = []
    for _ in range(3):
        before = float(v.numpy())
        opt.minimize(lambda: v, [v])
        sizes.append(before - float(v.numpy()))
    record("sgd_decay_step_sizes", "§5.17", [1.0, 0.666667, 0.5], sizes)

    # §5.18: schedule (+ decay).
    for decay, expected in ((0.0, [0.1, 0.05, 0.025]), (1.0, [0.1, 0.025, 0.008333])):
        v = tf.Variable(0.0, name="v")
        opt = LEGACY.SGD(SCHEDULES.ExponentialDecay(0.1, 1, 0.5), decay=decay)
        sizes = []
        for _ in range(3):
            before = float(v.numpy())
            opt.minimize(lambda v=v: v, [v])
            sizes.append(before - float(v.numpy()))
        record(
            f"sgd_exponential_decay_decay{decay:g}_step_sizes", "§5.18", expected, sizes
        )

    # §5.19 / §5.20: clipping.
    v = tf.Variable([1.0, 2.0], name="v")
    LEGACY.SGD(1.0, clipvalue=1.0).minimize(lambda: 3 * v, [v])
    record("sgd_clipvalue_minimize", "§5.19", [0.0, 1.0], _num(v.numpy()))
    v = tf.Variable([1.0], name="v")
    LEGACY.SGD(1.0, clipnorm=1.0).minimize(lambda: 3 * v, [v])
    record("sgd_clipnorm_minimize", "§5.19", [0.0], _num(v.numpy()))
    a, b = tf.Variable([1.0], name="a"), tf.Variable([2.0], name="b")
    LEGACY.SGD(1.0, global_clipnorm=2.0).minimize(lambda: 3 * a + 4 * b, [a, b])
    record(
        "sgd_global_clipnorm_minimize",
        "§5.19",
        [[-0.2], [0.4]],
        [_num(a.numpy()), _num(b.numpy())],
    )
    v = tf.Variable([1.0, 2.0], name="v")
    LEGACY.SGD(1.0, clipvalue=1.0).apply_gradients([(tf.constant([3.0, -5.0]), v)])
    record("sgd_clipvalue_apply_gradients", "§5.20", [0.0, 3.0], _num(v.numpy()))
    v = tf.Variable([0.0, 0.0], name="v")
    LEGACY.SGD(1.0, clipvalue=3.5, clipnorm=1.0).apply_gradients(
        [(tf.constant([3.0, 4.0]), v)]
    )
    record(
        "sgd_clipvalue_then_clipnorm", "§5.20", [-0.650791, -0.759257], _num(v.numpy())
    )

    # §5.16: lr alias; §5.27: grad_loss; §5.28: constraints; §5.31: duplicates.
    v = tf.Variable([1.0, 2.0], name="v")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        LEGACY.SGD(lr=3.0).minimize(lambda: 3 * v, [v])
    record("sgd_lr_alias", "§5.16", [-8.0, -7.0], _num(v.numpy()))
    v = tf.Variable([1.0, 2.0], name="v")
    with tf.GradientTape() as tape:
        loss = 5 * v
    LEGACY.SGD(3.0).minimize(loss, [v], grad_loss=tf.constant([42.0, -42.0]), tape=tape)
    record("sgd_grad_loss", "§5.27", [-629.0, 632.0], _num(v.numpy()))
    v0 = tf.Variable(
        [1.0, 2.0], name="v0", constraint=lambda x: tf.clip_by_value(x, -0.1, 0.0)
    )
    v1 = tf.Variable(
        [3.0, 4.0], name="v1", constraint=lambda x: tf.clip_by_value(x, 0.0, 1.0)
    )
    LEGACY.SGD(3.0).minimize(lambda: 5 * v0 + 3 * v1, [v0, v1])
    record(
        "sgd_constraints_clip",
        "§5.28",
        [[-0.1, -0.1], [0.0, 0.0]],
        [_num(v0.numpy()), _num(v1.numpy())],
    )
    v = tf.Variable([1.0, 1.0], name="v")
    LEGACY.SGD(1.0).apply_gradients(
        [(tf.constant([1.0, 1.0]), v), (tf.constant([2.0, 2.0]), v)]
    )
    record("sgd_duplicate_variable", "§5.31", [-2.0, -2.0], _num(v.numpy()))

    # §5.49 - §5.53: loss scaling.
    opt = LSO(LEGACY.SGD(1.0), initial_scale=8.0)
    v = tf.Variable([1.0, 1.0], name="v")
    seq = []
    for g in ([np.inf, 1.0], [np.nan, 1.0], [1.0, 1.0]):
        opt.apply_gradients([(tf.constant(g, tf.float32), v)])
        seq.append(
            {
                "var": _num(v.numpy()),
                "loss_scale": _num(opt.loss_scale.numpy()),
                "dynamic_counter": int(opt.dynamic_counter.numpy()),
                "iterations": int(opt.iterations.numpy()),
            }
        )
    record(
        "lso_skip_increments_iterations",
        "§5.49",
        [
            {
                "var": [1.0, 1.0],
                "loss_scale": 4.0,
                "dynamic_counter": 0,
                "iterations": 1,
            },
            {
                "var": [1.0, 1.0],
                "loss_scale": 2.0,
                "dynamic_counter": 0,
                "iterations": 2,
            },
            {
                "var": [0.0, 0.0],
                "loss_scale": 2.0,
                "dynamic_counter": 1,
                "iterations": 3,
            },
        ],
        seq,
        note="inputs: LSO(SGD(1.0), initial_scale=8), var=[1,1], gradients [inf,1], [nan,1], [1,1]",
    )
    opt = LSO(LEGACY.SGD(0.0), initial_scale=2.0, dynamic_growth_steps=3)
    v = tf.Variable([1.0], name="v")
    seq = []
    for _ in range(7):
        opt.apply_gradients([(tf.constant([1.0]), v)])
        seq.append([_num(opt.loss_scale.numpy()), int(opt.dynamic_counter.numpy())])
    record(
        "lso_growth",
        "§5.50",
        [[2, 1], [2, 2], [4, 0], [4, 1], [4, 2], [8, 0], [8, 1]],
        seq,
    )
    floors = []
    for initial in (1.0, 1.5):
        opt = LSO(LEGACY.SGD(0.0), initial_scale=initial)
        v = tf.Variable([1.0], name="v")
        opt.apply_gradients([(tf.constant([np.inf]), v)])
        floors.append(_num(opt.loss_scale.numpy()))
    record(
        "lso_floor",
        "§5.51",
        [1.0, 1.0],
        floors,
        note="initial 1.0 and 1.5, then an inf gradient",
    )
    opt = LSO(LEGACY.SGD(0.0), initial_scale=3e38, dynamic_growth_steps=1)
    v = tf.Variable([1.0], name="v")
    opt.apply_gradients([(tf.constant([1.0]), v)])
    record(
        "lso_no_growth_to_inf",
        "§5.52",
        {"loss_scale": float(np.float32(3e38)), "dynamic_counter": 0},
        {
            "loss_scale": _num(opt.loss_scale.numpy()),
            "dynamic_counter": int(opt.dynamic_counter.numpy()),
        },
    )
    opt = LSO(LEGACY.SGD(1.0), dynamic=False, initial_scale=128.0)
    v = tf.Variable([1.0], name="v")
    opt.apply_gradients([(tf.constant([np.inf]), v)])
    record(
        "lso_fixed_applies_nonfinite",
        "§5.53",
        {"var": ["-inf"], "iterations": 1},
        {"var": _num(v.numpy()), "iterations": int(opt.iterations.numpy())},
    )
    return {
        "golden_3_step": {"x0": GOLDEN_X0, "grads": GOLDEN_GRADS, "cases": golden},
        "examples": examples,
    }


# --------------------------------------------------------------------------


def header() -> dict:
    return {
        "format": FORMAT,
        "generator": "tools/make_keras_fixtures.py",
        "tf_version": tf.__version__,
        "tf_keras_version": tf_keras.__version__,
    }


def write(path: Path, payload: dict) -> int:
    text = dumps(payload) + "\n"
    path.write_text(text)
    return len(text.encode())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    tf.get_logger().setLevel("ERROR")

    files: dict[str, list] = {}
    for spec in CASES:
        files.setdefault(spec["file"], []).append(run_case(spec))
    total = 0
    for stem, cases in files.items():
        size = write(args.out / f"{stem}.json", {**header(), "cases": cases})
        total += size
        print(f"{stem}.json: {len(cases)} cases, {size} bytes")
    size = write(
        args.out / "seed_examples.json", {**header(), "examples": seed_examples()}
    )
    total += size
    print(f"seed_examples.json: {size} bytes")
    checks = spec_checks()
    size = write(args.out / "spec_checks.json", {**header(), **checks})
    total += size
    print(f"spec_checks.json: {size} bytes")
    for g in checks["golden_3_step"]["cases"]:
        if g["max_abs_diff"] > 1e-5:
            print(
                f"  spec golden differs: {g['name']}: {g['tf_keras_step3']} vs {g['spec_step3']}"
            )
    for e in checks["examples"]:
        print(f"  {e['name']}: spec {e['spec_expected']} tf-keras {e['tf_keras']}")
    print(f"total: {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
