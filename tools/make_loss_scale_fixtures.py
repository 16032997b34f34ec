"""Writes tf-keras ``LossScaleOptimizer`` trajectories as JSON test fixtures.

Run with a Python that has TensorFlow and tf-keras (they are *not* project
dependencies; the tests read only the JSON written here)::

    python -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu tf-keras
    /tmp/tfenv/bin/python tools/make_loss_scale_fixtures.py

It writes ``tests/fixtures/loss_scale/tf_keras_trajectories.json``: for each
scenario, the inner optimizer, ``initial_scale``/``dynamic_growth_steps``, the
(unscaled) gradients fed to ``apply_gradients`` step by step, and after each
step the loss scale, the growth counter, ``iterations``, whether the step was
applied and the variables. Non-finite floats are written as the strings
``"nan"``, ``"inf"`` and ``"-inf"``. ``tests/test_loss_scale_fixtures.py``
replays every scenario through ``optaxish.loss_scale.loss_scaling``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

OUT = (
    Path(__file__).resolve().parents[1]
    / "tests"
    / "fixtures"
    / "loss_scale"
    / "tf_keras_trajectories.json"
)


def enc(x):
    """JSON-safe floats: non-finite values become strings."""
    if isinstance(x, list | tuple):
        return [enc(v) for v in x]
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    # The shortest decimal that reads back as the same float32.
    return float(str(np.float32(x)))


def make_inner(spec):
    kw = dict(spec)
    kind = kw.pop("kind")
    if kind == "sgd":
        return tf_keras.optimizers.legacy.SGD(**kw)
    raise ValueError(kind)


def run_scenario(
    name, inner, initial_scale, growth_steps, init_vars, grads, dynamic=True
):
    """Feeds ``grads`` (a list of steps, each a list of per-variable lists)."""
    opt = tf_keras.mixed_precision.LossScaleOptimizer(
        make_inner(inner),
        dynamic=dynamic,
        initial_scale=initial_scale,
        dynamic_growth_steps=growth_steps if dynamic else None,
    )
    variables = [tf.Variable(np.asarray(v, np.float32)) for v in init_vars]
    steps = []
    for g_step in grads:
        before = [v.numpy().copy() for v in variables]
        scale_before = float(opt.loss_scale.numpy())
        opt.apply_gradients(
            zip([tf.constant(np.asarray(g, np.float32)) for g in g_step], variables)
        )
        after = [v.numpy() for v in variables]
        applied = any(
            not np.array_equal(a, b, equal_nan=True) for a, b in zip(after, before)
        )
        steps.append(
            {
                "scale_before": enc(scale_before),
                "scale": enc(opt.loss_scale.numpy()),
                "counter": int(opt.dynamic_counter.numpy()) if dynamic else 0,
                "iterations": int(opt.iterations.numpy()),
                "applied": bool(applied),
                "vars": [enc(a.ravel().tolist()) for a in after],
            }
        )
    return {
        "name": name,
        "inner": inner,
        "dynamic": dynamic,
        "initial_scale": float(initial_scale),
        "dynamic_growth_steps": growth_steps if dynamic else None,
        "init_vars": [
            enc(np.asarray(v, np.float32).ravel().tolist()) for v in init_vars
        ],
        "shapes": [list(np.shape(v)) for v in init_vars],
        "grads": [
            [enc(np.asarray(g, np.float32).ravel().tolist()) for g in s] for s in grads
        ],
        "steps": steps,
    }


def seed_example():
    """The docstring example: LSO(SGD(0.25)), var=1, loss=var**2 -> 0.5, 0.25."""
    opt = tf_keras.mixed_precision.LossScaleOptimizer(
        tf_keras.optimizers.legacy.SGD(0.25)
    )
    var = tf.Variable(1.0)
    opt.minimize(lambda: var**2, [var])
    after_minimize = float(var.numpy())
    with tf.GradientTape() as tape:
        loss = var**2
        scaled_loss = opt.get_scaled_loss(loss)
    scaled_grad = tape.gradient(scaled_loss, [var])
    (grad,) = opt.get_unscaled_gradients(scaled_grad)
    opt.apply_gradients([(grad, var)])
    return {
        "name": "seed_example",
        "lr": 0.25,
        "var0": 1.0,
        "after_minimize": after_minimize,
        "loss": float(loss.numpy()),
        "scaled_loss": float(scaled_loss.numpy()),
        "scaled_grad": float(scaled_grad[0].numpy()),
        "unscaled_grad": float(grad.numpy()),
        "after_apply": float(var.numpy()),
        "iterations": int(opt.iterations.numpy()),
        "counter": int(opt.dynamic_counter.numpy()),
        "scale": float(opt.loss_scale.numpy()),
    }


def random_grads(rng, n_steps, shapes, p_start=0.15, p_stay=0.5):
    """Random nonzero gradients with bursts of NaN/inf in random leaves."""
    out, bad = [], False
    for _ in range(n_steps):
        bad = rng.random() < (p_stay if bad else p_start)
        step = [rng.uniform(0.5, 2.0, s) * rng.choice([-1, 1], s) for s in shapes]
        if bad:
            leaf = int(rng.integers(len(shapes)))
            flat = step[leaf].reshape(-1)
            flat[rng.integers(flat.size)] = rng.choice([np.nan, np.inf, -np.inf])
            step[leaf] = flat.reshape(shapes[leaf])
        out.append([np.asarray(g, np.float32) for g in step])
    return out


def main():
    tf.random.set_seed(0)
    rng = np.random.default_rng(0)
    inf, nan = float("inf"), float("nan")
    sc = []
    # §5 item 49: initial 8, [inf, 1] then NaN then finite.
    sc.append(
        run_scenario(
            "skip_then_apply",
            {"kind": "sgd", "learning_rate": 0.5},
            8.0,
            2000,
            [[1.0, 2.0]],
            [[[inf, 1.0]], [[nan, 1.0]], [[8.0, 8.0]], [[1.0, -1.0]]],
        )
    )
    # §5 item 50: initial 2, growth 3, 7 finite steps.
    sc.append(
        run_scenario(
            "growth_period_3",
            {"kind": "sgd", "learning_rate": 0.1},
            2.0,
            3,
            [[1.0, -1.0, 0.5]],
            [[[1.0, 2.0, -3.0]]] * 7,
        )
    )
    # §5 item 51: floor at 1 from 1.5 and from 1.
    sc.append(
        run_scenario(
            "floor_from_1.5",
            {"kind": "sgd", "learning_rate": 0.1},
            1.5,
            2,
            [[0.0]],
            [[[inf]], [[inf]], [[1.0]], [[1.0]], [[1.0]], [[-inf]], [[2.0]]],
        )
    )
    sc.append(
        run_scenario(
            "floor_from_1",
            {"kind": "sgd", "learning_rate": 0.1},
            1.0,
            1,
            [[0.0]],
            [[[nan]], [[1.0]], [[nan]], [[1.0]], [[1.0]]],
        )
    )
    # §5 item 52: 3e38 with growth 1 does not grow to inf.
    sc.append(
        run_scenario(
            "no_growth_to_inf",
            {"kind": "sgd", "learning_rate": 0.1},
            3e38,
            1,
            [[1.0]],
            [[[1.0]], [[1.0]], [[inf]], [[1.0]], [[1.0]]],
        )
    )
    # Inner clipnorm sees unscaled gradients (§3.2: true gradient 3 -> x = -1).
    sc.append(
        run_scenario(
            "inner_clipnorm",
            {"kind": "sgd", "learning_rate": 1.0, "clipnorm": 1.0},
            1024.0,
            2,
            [[0.0, 0.0]],
            [[[3.0, 0.0]], [[inf, 0.0]], [[0.3, 0.4]], [[0.0, -5.0]]],
        )
    )
    # Random bursts of non-finite gradients, two variables, momentum.
    for i, (init, growth, p_start) in enumerate(
        [(2.0**15, 5, 0.15), (4.0, 3, 0.3), (3.0, 4, 0.2)]
    ):
        shapes = [(3,), (2, 2)]
        sc.append(
            run_scenario(
                f"random_bursts_{i}",
                {"kind": "sgd", "learning_rate": 0.01, "momentum": 0.9},
                init,
                growth,
                [rng.standard_normal(s).astype(np.float32) for s in shapes],
                random_grads(rng, 60, shapes, p_start=p_start),
            )
        )
    # Static scale: non-finite gradients are applied (§5 item 53).
    sc.append(
        run_scenario(
            "static_applies_nonfinite",
            {"kind": "sgd", "learning_rate": 0.5},
            128.0,
            None,
            [[1.0, 2.0]],
            [[[1.0, 2.0]], [[inf, 1.0]], [[1.0, 1.0]]],
            dynamic=False,
        )
    )
    # Defaults (2**15, 2000): a long run, recorded at a few steps only.
    opt = tf_keras.mixed_precision.LossScaleOptimizer(
        tf_keras.optimizers.legacy.SGD(1e-6)
    )
    var = tf.Variable([0.0])

    @tf.function
    def step_fn(g):
        opt.apply_gradients([(g, var)])

    # Growth at step 1999 (2000 finite steps), two overflows, growth again at
    # step 4001, then a NaN.
    schedule = {2000: inf, 2001: inf, 4500: nan}
    record_at = {0, 1, 1998, 1999, 2000, 2001, 2002, 4000, 4001, 4002, 4500, 4501}
    defaults = {
        "name": "defaults_long",
        "lr": 1e-6,
        "n_steps": 4502,
        "nonfinite_steps": {str(k): enc(v) for k, v in schedule.items()},
        "defaults": {
            "dynamic": bool(opt.dynamic),
            "initial_scale": float(opt.initial_scale),
            "dynamic_growth_steps": int(opt.dynamic_growth_steps),
        },
        "records": {},
    }
    for t in range(defaults["n_steps"]):
        step_fn(tf.constant([schedule.get(t, 1.0)], tf.float32))
        if t in record_at:
            defaults["records"][str(t)] = {
                "scale": enc(opt.loss_scale.numpy()),
                "counter": int(opt.dynamic_counter.numpy()),
                "iterations": int(opt.iterations.numpy()),
                "var": enc(var.numpy()[0]),
            }
    data = {
        "generator": "tools/make_loss_scale_fixtures.py",
        "versions": {
            "tensorflow": tf.__version__,
            "tf_keras": tf_keras.__version__,
            "python": sys.version.split()[0],
        },
        "seed_example": seed_example(),
        "scenarios": sc,
        "defaults_long": defaults,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(sc)} scenarios)")


if __name__ == "__main__":
    main()
