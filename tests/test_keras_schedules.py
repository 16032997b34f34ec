"""optaxish.optimizers.schedules against tf-keras' learning-rate schedules.

Reference numbers come from `tests/fixtures/keras_schedules.json`, written by
`tools/make_keras_schedule_fixtures.py` with tf-keras (not a dependency);
random arguments are checked against NumPy transcriptions of tf-keras'
float32 formulas.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optaxish.optimizers import schedules

FIXTURE = json.loads(
    (Path(__file__).parent / "fixtures" / "keras_schedules.json").read_text()
)
CASES = FIXTURE["cases"]
IDS = [f"{i}-{c['class_name']}" for i, c in enumerate(CASES)]
INT_STEPS = np.asarray(FIXTURE["int_steps"], np.int32)
FLOAT_STEPS = np.asarray(FIXTURE["float_steps"], np.float32)
FEW_STEPS = [0, 3, 10, 41, 150, 12345]
CLASSES = [
    "ExponentialDecay",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "InverseTimeDecay",
    "CosineDecay",
    "CosineDecayRestarts",
]


def _make(case):
    return getattr(schedules, case["class_name"])(**case["kwargs"])


def test_fixture_covers_every_schedule():
    assert {c["class_name"] for c in CASES} == set(CLASSES)
    assert set(schedules.__all__) == {*CLASSES, "LearningRateSchedule"} | {
        "serialize",
        "deserialize",
    }


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_values_match_tf_keras(case):
    schedule = _make(case)
    traces = []

    def traced(step):
        traces.append(1)
        return schedule(step)

    compiled = jax.jit(traced)
    for steps, key in ((INT_STEPS, "int_values"), (FLOAT_STEPS, "float_values")):
        want = np.asarray(case[key], np.float32)
        batched = jax.jit(jax.vmap(schedule))(steps)
        one_by_one = np.asarray([compiled(s) for s in steps])
        for got in (batched, one_by_one):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)
        # Eager calls with Python numbers, on a few steps.
        for i in range(0, len(steps), 17):
            got = schedule(steps[i].item())
            assert got.dtype == jnp.float32 and got.shape == ()
            np.testing.assert_allclose(got, want[i], rtol=1e-6, atol=0)
    assert len(traces) == 2  # one trace per step dtype, reused across steps


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_config_matches_tf_keras_and_round_trips(case):
    schedule = _make(case)
    config = schedule.get_config()
    assert config == case["config"]
    assert json.loads(json.dumps(config)) == config
    clone = type(schedule).from_config(config)
    assert clone.get_config() == config
    for step in FEW_STEPS:
        assert float(clone(step)) == float(schedule(step))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_serialize_matches_tf_keras(case):
    schedule = _make(case)
    serialized = schedules.serialize(schedule)
    assert serialized == case["serialized"]
    json.dumps(serialized)
    tf_form = json.loads(json.dumps(case["serialized"]))
    revived = schedules.deserialize(tf_form)
    assert tf_form == case["serialized"]  # the input is not modified
    assert type(revived) is type(schedule)
    assert revived.get_config() == schedule.get_config()
    legacy = schedules.deserialize(
        {"class_name": case["class_name"], "config": case["config"]}
    )
    for step in FEW_STEPS:
        assert float(legacy(step)) == float(schedule(step))


def test_traced_step_inside_a_compiled_training_loop():
    schedule = schedules.CosineDecayRestarts(0.1, 10, t_mul=2.0, m_mul=0.5)

    @jax.jit
    def run(param):
        def step(carry, _):
            param, count = carry
            lr = schedule(count.astype(jnp.float32))
            return (param - lr, count + 1), lr

        return jax.lax.scan(step, (param, jnp.int32(0)), length=80)

    (param, count), lrs = run(jnp.float32(0.0))
    want = np.asarray([schedule(s) for s in range(80)])
    np.testing.assert_allclose(lrs, want, rtol=1e-6)
    np.testing.assert_allclose(param, -want.sum(), rtol=1e-5)
    assert int(count) == 80


def test_schedule_inputs_of_every_step_type():
    s = schedules.ExponentialDecay(0.1, 10, 0.5)
    for step in (
        20,
        20.0,
        np.int64(20),
        np.float32(20),
        jnp.int32(20),
        jnp.float32(20),
    ):
        out = s(step)
        assert out.dtype == jnp.float32
        assert float(out) == pytest.approx(0.025, rel=1e-6)
    # Integer learning rates and values give float32 (tf-keras fails or gives ints).
    assert schedules.ExponentialDecay(1, 1, 0.5)(1).dtype == jnp.float32
    pw = schedules.PiecewiseConstantDecay([1, 2], [3, 2, 1])
    assert pw(5).dtype == jnp.float32 and float(pw(5)) == 1.0


def test_piecewise_boundaries_follow_the_step_dtype():
    s = schedules.PiecewiseConstantDecay([2.5, 7.5], [0.1, 0.01, 0.001])
    # Integer steps truncate the boundaries to [2, 7], float steps do not.
    assert float(s(jnp.int32(2))) == pytest.approx(0.1)
    assert float(s(jnp.int32(3))) == pytest.approx(0.01)
    assert float(s(jnp.float32(2.5))) == pytest.approx(0.1)
    assert float(s(jnp.float32(2.6))) == pytest.approx(0.01)
    assert float(schedules.PiecewiseConstantDecay([], [0.3])(100)) == pytest.approx(0.3)


# -- NumPy transcriptions of tf-keras' float32 formulas -----------------------

f32 = np.float32


def np_exponential(step, init, decay_steps, rate, staircase):
    p = f32(step) / f32(decay_steps)
    if staircase:
        p = np.floor(p)
    return f32(init) * np.power(f32(rate), p)


def np_inverse_time(step, init, decay_steps, rate, staircase):
    p = f32(step) / f32(decay_steps)
    if staircase:
        p = np.floor(p)
    return f32(init) / (f32(1) + f32(rate) * p)


def np_polynomial(step, init, decay_steps, end, power, cycle):
    s, ds = f32(step), f32(decay_steps)
    if cycle:
        ds = ds * (f32(1) if s == 0 else np.ceil(s / ds))
    else:
        s = min(s, ds)
    p = s / ds
    return (f32(init) - f32(end)) * np.power(f32(1) - p, f32(power)) + f32(end)


def np_cosine(step, init, decay_steps, alpha, warmup_target, warmup_steps):
    def decay(s, start):
        c = s / f32(decay_steps)
        cosine = f32(0.5) * (f32(1) + np.cos(f32(math.pi) * c))
        return start * (f32(1 - alpha) * cosine + f32(alpha))

    s, init = f32(step), f32(init)
    if warmup_target is None:
        return decay(min(s, f32(decay_steps)), init)
    ws = f32(warmup_steps)
    s = min(s, f32(decay_steps) + ws)
    if s < ws:
        return (f32(warmup_target) - init) * (s / ws) + init
    return decay(s - ws, f32(warmup_target))


def np_restarts(step, init, first, t_mul, m_mul, alpha):
    alpha, t = f32(alpha), f32(t_mul)
    c = f32(step) / f32(first)
    if t == 1:
        i = np.floor(c)
        c = c - i
    else:
        i = np.floor(np.log(f32(1) - c * (f32(1) - t)) / np.log(t))
        done = (f32(1) - t**i) / (f32(1) - t)
        c = (c - done) / t**i
    cosine = f32(0.5) * f32(m_mul) ** i * (f32(1) + np.cos(f32(math.pi) * c))
    return f32(init) * ((f32(1) - alpha) * cosine + alpha)


lr_st = st.floats(1e-4, 1.0)
decay_steps_st = st.integers(1, 60)
steps_st = st.lists(st.integers(0, 600), min_size=5, max_size=20)


def _check(schedule, reference, steps):
    got = np.asarray(jax.jit(jax.vmap(schedule))(np.asarray(steps, np.float32)))
    want = np.asarray([reference(s) for s in steps], np.float32)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-9)


@settings(max_examples=12, deadline=None)
@given(lr_st, decay_steps_st, st.floats(0.1, 1.5), st.booleans(), steps_st)
def test_exponential_and_inverse_time_random(init, ds, rate, staircase, steps):
    s = schedules.ExponentialDecay(init, ds, rate, staircase)
    _check(s, lambda t: np_exponential(t, init, ds, rate, staircase), steps)
    s = schedules.InverseTimeDecay(init, ds, rate, staircase)
    _check(s, lambda t: np_inverse_time(t, init, ds, rate, staircase), steps)


@settings(max_examples=12, deadline=None)
@given(
    lr_st,
    decay_steps_st,
    st.floats(0.0, 1e-3),
    st.sampled_from([0.5, 1.0, 2.0, 3.0]),
    st.booleans(),
    steps_st,
)
def test_polynomial_random(init, ds, end, power, cycle, steps):
    s = schedules.PolynomialDecay(init, ds, end, power, cycle)
    _check(s, lambda t: np_polynomial(t, init, ds, end, power, cycle), steps)


@settings(max_examples=12, deadline=None)
@given(
    lr_st,
    decay_steps_st,
    st.floats(0.0, 0.5),
    st.one_of(st.none(), lr_st),
    st.integers(0, 30),
    steps_st,
)
def test_cosine_random(init, ds, alpha, target, warmup, steps):
    s = schedules.CosineDecay(
        init, ds, alpha, warmup_target=target, warmup_steps=warmup
    )
    _check(s, lambda t: np_cosine(t, init, ds, alpha, target, warmup), steps)


@settings(max_examples=12, deadline=None)
@given(
    lr_st,
    decay_steps_st,
    st.sampled_from([1.0, 2.0, 3.0]),
    st.floats(0.5, 1.0),
    st.floats(0.0, 0.5),
    steps_st,
)
def test_cosine_restarts_random(init, first, t_mul, m_mul, alpha, steps):
    s = schedules.CosineDecayRestarts(init, first, t_mul, m_mul, alpha)
    _check(s, lambda t: np_restarts(t, init, first, t_mul, m_mul, alpha), steps)


@settings(max_examples=12, deadline=None)
@given(
    st.lists(st.integers(0, 100), min_size=1, max_size=5, unique=True).map(sorted),
    st.integers(-5, 120),
)
def test_piecewise_random(boundaries, step):
    values = [0.5**i for i in range(len(boundaries) + 1)]
    s = schedules.PiecewiseConstantDecay(boundaries, values)
    want = values[sum(step > b for b in boundaries)]
    assert float(jax.jit(s)(step)) == pytest.approx(want)


# -- serialization and custom schedules -------------------------------------


class HalvingSchedule(schedules.LearningRateSchedule):
    def __init__(self, initial_learning_rate, every=10):
        self.initial_learning_rate = initial_learning_rate
        self.every = every

    def __call__(self, step):
        return self.initial_learning_rate * 0.5 ** jnp.floor(
            jnp.asarray(step, jnp.float32) / self.every
        )

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "every": self.every,
        }


def test_custom_schedule_round_trip():
    s = HalvingSchedule(0.4, every=5)
    serialized = schedules.serialize(s)
    assert serialized == {
        "module": None,
        "class_name": "HalvingSchedule",
        "config": {"initial_learning_rate": 0.4, "every": 5},
        "registered_name": "HalvingSchedule",
    }
    data = json.loads(json.dumps(serialized))
    revived = schedules.deserialize(
        data, custom_objects={"HalvingSchedule": HalvingSchedule}
    )
    assert isinstance(revived, HalvingSchedule)
    assert float(revived(10)) == pytest.approx(0.1)
    # tf_keras.optimizers.schedules.deserialize(data) raises TypeError too.
    with pytest.raises(
        TypeError, match="Unknown learning rate schedule: 'HalvingSchedule'"
    ):
        schedules.deserialize(data)
    # A custom class may shadow a built-in name.
    shadow = schedules.deserialize(
        {"class_name": "ExponentialDecay", "config": {"initial_learning_rate": 1.0}},
        custom_objects={"ExponentialDecay": HalvingSchedule},
    )
    assert isinstance(shadow, HalvingSchedule)


def test_numpy_arguments_give_json_safe_configs():
    s = schedules.PiecewiseConstantDecay(
        np.array([10, 20]), (np.float32(0.5), 0.25, 0.1)
    )
    assert json.dumps(s.get_config())
    e = schedules.ExponentialDecay(np.float32(0.5), np.int64(10), np.float64(0.5))
    assert json.loads(json.dumps(e.get_config())) == e.get_config()
    serialized = schedules.serialize(s)
    assert serialized["config"] == {
        "boundaries": [10, 20],
        "values": [0.5, 0.25, 0.1],
        "name": None,
    }
    assert json.loads(json.dumps(serialized)) == serialized
    assert schedules.deserialize(serialized) is not s


def test_base_class_contract():
    base = schedules.LearningRateSchedule()
    with pytest.raises(NotImplementedError, match="must override `__call__"):
        base(0)

    class NoConfig(schedules.LearningRateSchedule):  # tf-keras' docstring example
        def __call__(self, step):
            return 0.1 / (jnp.asarray(step, jnp.float32) + 1)

    s = NoConfig()
    assert float(s(1)) == pytest.approx(0.05)
    with pytest.raises(NotImplementedError, match="must override `get_config"):
        schedules.serialize(s)
    assert repr(schedules.ExponentialDecay(0.1, 10, 0.5)).startswith(
        "ExponentialDecay(initial_learning_rate=0.1, decay_steps=10"
    )


@pytest.mark.parametrize(
    "config, custom_objects, error, match",
    [
        ("ExponentialDecay", None, TypeError, "must be a dict"),
        ({"config": {}}, None, TypeError, "must be a dict"),
        (
            {"class_name": "Nope", "config": {}},
            None,
            TypeError,
            "Unknown learning rate schedule: 'Nope'",
        ),
        (
            {"class_name": "F", "config": {}},
            {"F": len},
            TypeError,
            "must be a LearningRateSchedule",
        ),
        (
            {
                "class_name": "ExponentialDecay",
                "config": {
                    "initial_learning_rate": 0.1,
                    "decay_steps": 1,
                    "decay_rate": 0.5,
                    "foo": 1,
                },
            },
            None,
            TypeError,
            "foo",
        ),
    ],
)
def test_deserialize_errors(config, custom_objects, error, match):
    with pytest.raises(error, match=match):
        schedules.deserialize(config, custom_objects=custom_objects)


def test_serialize_rejects_non_schedules():
    with pytest.raises(TypeError, match="must be a LearningRateSchedule"):
        schedules.serialize(lambda step: 0.1)


def test_deserialize_passes_instances_through():
    s = schedules.CosineDecay(0.1, 10)
    assert schedules.deserialize(s) is s


# -- argument validation -----------------------------------------------------


@pytest.mark.parametrize(
    "factory, error, match",
    [
        (
            lambda: schedules.ExponentialDecay(0.1, 0, 0.5),
            ValueError,
            "Argument `decay_steps` must be > 0. Received: decay_steps=0",
        ),
        (lambda: schedules.PolynomialDecay(0.1, -1), ValueError, "decay_steps=-1"),
        (
            lambda: schedules.InverseTimeDecay(0.1, 0.0, 0.5),
            ValueError,
            "decay_steps=0.0",
        ),
        (lambda: schedules.CosineDecay(0.1, 0), ValueError, "decay_steps=0"),
        (
            lambda: schedules.CosineDecayRestarts(0.1, 0),
            ValueError,
            "first_decay_steps=0",
        ),
        (
            lambda: schedules.CosineDecayRestarts(0.1, 10, t_mul=0.0),
            ValueError,
            "t_mul=0.0",
        ),
        (
            lambda: schedules.CosineDecay(0.1, 10, warmup_target=0.2, warmup_steps=-1),
            ValueError,
            "warmup_steps=-1",
        ),
        (
            lambda: schedules.ExponentialDecay("0.1", 10, 0.5),
            TypeError,
            "initial_learning_rate='0.1'",
        ),
        (
            lambda: schedules.ExponentialDecay(0.1, None, 0.5),
            TypeError,
            "decay_steps=None",
        ),
        (
            lambda: schedules.PolynomialDecay(0.1, 10, power=[1.0]),
            TypeError,
            r"power=\[1.0\]",
        ),
        (
            lambda: schedules.CosineDecay(0.1, 10, warmup_target="x"),
            TypeError,
            "warmup_target='x'",
        ),
        (lambda: schedules.ExponentialDecay(0.1, 10, 0.5, name=3), TypeError, "name=3"),
        (
            lambda: schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.2]),
            ValueError,
            r"The length of boundaries should be 1 less than the length of values. Received: boundaries=\[1, 2\] of length 2, and values=\[0.1, 0.2\] of length 2.",
        ),
        (
            lambda: schedules.PiecewiseConstantDecay([2, 1], [0.1, 0.2, 0.3]),
            ValueError,
            "strictly increasing",
        ),
        (
            lambda: schedules.PiecewiseConstantDecay([1, 1], [0.1, 0.2, 0.3]),
            ValueError,
            "strictly increasing",
        ),
        (lambda: schedules.PiecewiseConstantDecay(5, [0.1]), TypeError, "boundaries=5"),
        (
            lambda: schedules.PiecewiseConstantDecay([1], [0.1, "a"]),
            TypeError,
            "values='a'",
        ),
    ],
)
def test_argument_errors(factory, error, match):
    with pytest.raises(error, match=match):
        factory()


def test_defaults_match_tf_keras():
    assert schedules.PolynomialDecay(0.1, 10).get_config() == {
        "initial_learning_rate": 0.1,
        "decay_steps": 10,
        "end_learning_rate": 0.0001,
        "power": 1.0,
        "cycle": False,
        "name": None,
    }
    assert schedules.CosineDecay(0.1, 10).get_config() == {
        "initial_learning_rate": 0.1,
        "decay_steps": 10,
        "alpha": 0.0,
        "name": None,
        "warmup_target": None,
        "warmup_steps": 0,
    }
    r = schedules.CosineDecayRestarts(0.1, 10)
    assert (r.t_mul, r.m_mul, r.alpha, r.name) == (2.0, 1.0, 0.0, None)
    e = schedules.ExponentialDecay(0.1, 10, 0.5)
    assert (e.staircase, e.name) == (False, None)
