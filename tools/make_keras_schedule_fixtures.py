"""Writes tf-keras learning-rate schedule values as a JSON test fixture.

Run with a Python that has TensorFlow and tf-keras (they are *not* project
dependencies; the tests read only the JSON written here)::

    python -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu tf-keras
    /tmp/tfenv/bin/python tools/make_keras_schedule_fixtures.py

It writes ``tests/fixtures/keras_schedules.json``: for each case, the schedule
class and its constructor arguments, tf-keras' ``get_config()`` and
``schedules.serialize()`` output, and the schedule's float32 values at every
step of ``int_steps`` (called with an int64 tensor, as Keras 3 passes the
optimizer's iterations) and of ``float_steps`` (called with a float32 tensor,
as the legacy ``OptimizerV2`` passes ``cast(iterations, var_dtype)``).
``tests/test_keras_schedules.py`` compares ``optaxish.optimizers.schedules``
with these numbers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

OUT = (
    Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "keras_schedules.json"
)

INT_STEPS = [
    *range(0, 101),
    101,
    149,
    150,
    151,
    199,
    200,
    201,
    255,
    310,
    1000,
    12345,
    99999,
]
FLOAT_STEPS = [float(s) for s in INT_STEPS] + [0.5, 2.5, 7.25, 7.5, 10.5, 33.3, 64.9]

CASES = [
    (
        "ExponentialDecay",
        {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5},
    ),
    (
        "ExponentialDecay",
        {
            "initial_learning_rate": 0.1,
            "decay_steps": 10,
            "decay_rate": 0.5,
            "staircase": True,
        },
    ),
    (
        "ExponentialDecay",
        {
            "initial_learning_rate": 1.0,
            "decay_steps": 3,
            "decay_rate": 0.96,
            "name": "exp",
        },
    ),
    (
        "ExponentialDecay",
        {"initial_learning_rate": 0.01, "decay_steps": 7, "decay_rate": 1.5},
    ),
    (
        "ExponentialDecay",
        {
            "initial_learning_rate": 0.1,
            "decay_steps": 2.5,
            "decay_rate": 0.9,
            "staircase": True,
        },
    ),
    (
        "ExponentialDecay",
        {
            "initial_learning_rate": 0.3,
            "decay_steps": 41,
            "decay_rate": 0.7,
            "staircase": True,
        },
    ),
    (
        "PiecewiseConstantDecay",
        {"boundaries": [10, 20, 35], "values": [1.0, 0.5, 0.1, 0.05]},
    ),
    (
        "PiecewiseConstantDecay",
        {"boundaries": [2.5, 7.5], "values": [0.1, 0.01, 0.001]},
    ),
    (
        "PiecewiseConstantDecay",
        {"boundaries": [50], "values": [0.3, 0.03], "name": "pw"},
    ),
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 20}),
    (
        "PolynomialDecay",
        {
            "initial_learning_rate": 0.1,
            "decay_steps": 20,
            "end_learning_rate": 0.01,
            "power": 0.5,
        },
    ),
    (
        "PolynomialDecay",
        {
            "initial_learning_rate": 0.1,
            "decay_steps": 20,
            "end_learning_rate": 0.01,
            "power": 2.0,
            "cycle": True,
        },
    ),
    (
        "PolynomialDecay",
        {
            "initial_learning_rate": 1.0,
            "decay_steps": 7,
            "end_learning_rate": 0.0,
            "power": 1.0,
            "cycle": True,
        },
    ),
    (
        "PolynomialDecay",
        {
            "initial_learning_rate": 0.05,
            "decay_steps": 33,
            "end_learning_rate": 0.001,
            "power": 3.0,
        },
    ),
    (
        "PolynomialDecay",
        {
            "initial_learning_rate": 0.2,
            "decay_steps": 41,
            "end_learning_rate": 0.02,
            "power": 1.5,
            "cycle": True,
        },
    ),
    (
        "InverseTimeDecay",
        {"initial_learning_rate": 0.1, "decay_steps": 5, "decay_rate": 0.5},
    ),
    (
        "InverseTimeDecay",
        {
            "initial_learning_rate": 0.1,
            "decay_steps": 5,
            "decay_rate": 0.5,
            "staircase": True,
        },
    ),
    (
        "InverseTimeDecay",
        {
            "initial_learning_rate": 1.0,
            "decay_steps": 1.0,
            "decay_rate": 2.0,
            "name": "inv",
        },
    ),
    (
        "InverseTimeDecay",
        {
            "initial_learning_rate": 0.5,
            "decay_steps": 41,
            "decay_rate": 3.0,
            "staircase": True,
        },
    ),
    ("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 30}),
    ("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 30, "alpha": 0.1}),
    (
        "CosineDecay",
        {
            "initial_learning_rate": 0.0,
            "decay_steps": 40,
            "warmup_target": 0.1,
            "warmup_steps": 10,
        },
    ),
    (
        "CosineDecay",
        {
            "initial_learning_rate": 0.01,
            "decay_steps": 25,
            "alpha": 0.2,
            "warmup_target": 0.5,
            "warmup_steps": 7,
        },
    ),
    (
        "CosineDecay",
        {
            "initial_learning_rate": 0.1,
            "decay_steps": 13,
            "warmup_target": 0.2,
            "warmup_steps": 0,
        },
    ),
    (
        "CosineDecay",
        {"initial_learning_rate": 0.3, "decay_steps": 41, "alpha": 0.05, "name": "cos"},
    ),
    ("CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 10}),
    (
        "CosineDecayRestarts",
        {"initial_learning_rate": 0.1, "first_decay_steps": 10, "t_mul": 1.0},
    ),
    (
        "CosineDecayRestarts",
        {
            "initial_learning_rate": 0.1,
            "first_decay_steps": 10,
            "t_mul": 2.0,
            "m_mul": 0.5,
        },
    ),
    (
        "CosineDecayRestarts",
        {
            "initial_learning_rate": 0.1,
            "first_decay_steps": 7,
            "t_mul": 1.5,
            "m_mul": 0.8,
            "alpha": 0.1,
        },
    ),
    (
        "CosineDecayRestarts",
        {
            "initial_learning_rate": 1.0,
            "first_decay_steps": 3,
            "t_mul": 1.0,
            "m_mul": 0.9,
            "alpha": 0.05,
        },
    ),
    (
        "CosineDecayRestarts",
        {
            "initial_learning_rate": 0.2,
            "first_decay_steps": 41,
            "t_mul": 1.0,
            "name": "sgdr",
        },
    ),
]


def f32(x) -> float:
    """The shortest decimal that reads back as the same float32."""
    return float(str(np.float32(x)))


def plain(x):
    """Makes a config JSON-safe (tf-keras keeps Python numbers as given)."""
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def main() -> None:
    schedules = tf_keras.optimizers.schedules
    cases = []
    for class_name, kwargs in CASES:
        schedule = getattr(schedules, class_name)(**kwargs)
        int_values = [f32(schedule(tf.constant(s, tf.int64))) for s in INT_STEPS]
        float_values = [f32(schedule(tf.constant(s, tf.float32))) for s in FLOAT_STEPS]
        cases.append(
            {
                "class_name": class_name,
                "kwargs": kwargs,
                "config": plain(schedule.get_config()),
                "serialized": plain(schedules.serialize(schedule)),
                "int_values": int_values,
                "float_values": float_values,
            }
        )
    fixture = {
        "generator": "tools/make_keras_schedule_fixtures.py",
        "tensorflow": tf.__version__,
        "tf_keras": tf_keras.__version__,
        "int_steps": INT_STEPS,
        "float_steps": FLOAT_STEPS,
        "cases": cases,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    # One line per case keeps the file small and its diffs readable.
    head = {k: v for k, v in fixture.items() if k != "cases"}
    lines = [json.dumps(head)[:-1] + ', "cases": [']
    lines += [json.dumps(c) + "," for c in cases]
    lines[-1] = lines[-1][:-1]
    lines.append("]}")
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
