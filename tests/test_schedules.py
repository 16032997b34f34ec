"""Schedules: parity with optax 0.2.8, argument errors, traced use, exports."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import optaxish
import optaxish.schedules

SCHEDULES = (
    "constant_schedule",
    "linear_schedule",
    "polynomial_schedule",
    "exponential_decay",
    "cosine_decay_schedule",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
    "warmup_constant_schedule",
    "piecewise_constant_schedule",
    "piecewise_interpolate_schedule",
    "cosine_onecycle_schedule",
    "linear_onecycle_schedule",
    "join_schedules",
    "sgdr_schedule",
)

values = st.floats(1e-3, 10.0)
small = st.floats(0.0, 1.0)
step_counts = st.integers(0, 120)
rates = st.floats(0.2, 1.5)
scale_dicts = st.dictionaries(st.integers(0, 150), st.floats(0.0, 2.0), max_size=4)


# Each case draws arguments and returns (build, key_steps): `build(module)`
# makes the schedule with `module` = optax or optaxish (the names are the same),
# and `key_steps` are the boundaries worth probing at, and one step past each.


@st.composite
def _constant(draw):
    value = draw(values)
    return (lambda m: m.constant_schedule(value)), [10]


@st.composite
def _polynomial(draw, linear=False):
    init, end, n, begin = (
        draw(values),
        draw(values),
        draw(step_counts),
        draw(step_counts),
    )
    if linear:
        return (lambda m: m.linear_schedule(init, end, n, begin)), [begin, begin + n]
    power = draw(st.one_of(st.sampled_from([1, 2, 3]), st.floats(0.5, 3.0)))
    build = lambda m: m.polynomial_schedule(init, end, power, n, begin)  # noqa: E731
    return build, [begin, begin + n]


def _exponential_args(draw):
    return dict(
        transition_steps=draw(st.integers(5, 50)),
        decay_rate=draw(rates),
        transition_begin=draw(st.integers(0, 40)),
        staircase=draw(st.booleans()),
        end_value=draw(st.one_of(st.none(), st.floats(0.05, 3.0))),
    )


@st.composite
def _exponential(draw):
    init, kw = draw(values), _exponential_args(draw)
    begin, n = kw["transition_begin"], kw["transition_steps"]
    return (lambda m: m.exponential_decay(init, **kw)), [begin, begin + n]


@st.composite
def _cosine(draw):
    init, n, alpha = draw(values), draw(st.integers(1, 150)), draw(small)
    exponent = draw(st.floats(0.5, 3.0))
    return (lambda m: m.cosine_decay_schedule(init, n, alpha, exponent)), [n]


def _warmup_cosine_args(draw):
    warmup = draw(st.integers(0, 40))
    return dict(
        init_value=draw(small),
        peak_value=draw(st.one_of(st.just(0.0), values)),
        warmup_steps=warmup,
        decay_steps=warmup + draw(st.integers(1, 100)),
        end_value=draw(st.floats(0.0, 1e-2)),
        exponent=draw(st.floats(0.5, 2.0)),
    )


@st.composite
def _warmup_cosine(draw):
    kw = _warmup_cosine_args(draw)
    build = lambda m: m.warmup_cosine_decay_schedule(**kw)  # noqa: E731
    return build, [kw["warmup_steps"], kw["decay_steps"]]


@st.composite
def _warmup_exponential(draw):
    init, peak, warmup = draw(small), draw(values), draw(st.integers(0, 40))
    kw = _exponential_args(draw)
    build = lambda m: m.warmup_exponential_decay_schedule(init, peak, warmup, **kw)  # noqa: E731
    start = warmup + kw["transition_begin"]
    return build, [warmup, start, start + kw["transition_steps"]]


@st.composite
def _warmup_constant(draw):
    init, peak, warmup = draw(small), draw(values), draw(st.integers(0, 60))
    return (lambda m: m.warmup_constant_schedule(init, peak, warmup)), [warmup]


@st.composite
def _piecewise_constant(draw):
    init, scales = draw(values), draw(st.one_of(st.none(), scale_dicts))
    build = lambda m: m.piecewise_constant_schedule(init, scales)  # noqa: E731
    return build, sorted(scales or {0: 1})


@st.composite
def _piecewise_interpolate(draw):
    kind, init = draw(st.sampled_from(["linear", "cosine"])), draw(values)
    scales = draw(st.one_of(st.none(), scale_dicts))
    build = lambda m: m.piecewise_interpolate_schedule(kind, init, scales)  # noqa: E731
    return build, sorted(scales or {0: 1})


def _onecycle_args(draw):
    return dict(
        transition_steps=draw(st.integers(1, 200)),
        peak_value=draw(values),
        pct_start=draw(small),
        div_factor=draw(st.floats(1.0, 50.0)),
        final_div_factor=draw(st.floats(1.0, 1e4)),
    )


@st.composite
def _cosine_onecycle(draw):
    kw = _onecycle_args(draw)
    n = kw["transition_steps"]
    return (lambda m: m.cosine_onecycle_schedule(**kw)), [int(kw["pct_start"] * n), n]


@st.composite
def _linear_onecycle(draw):
    kw = _onecycle_args(draw)
    kw["pct_final"] = draw(st.floats(kw["pct_start"], 1.0))
    n = kw["transition_steps"]
    keys = [int(kw["pct_start"] * n), int(kw["pct_final"] * n), n]
    return (lambda m: m.linear_onecycle_schedule(**kw)), keys


@st.composite
def _join(draw):
    a, b, c = draw(values), draw(values), draw(small)
    n1, n2 = draw(st.integers(1, 60)), draw(st.integers(1, 60))
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=1, max_size=2)))

    def build(m):
        parts = [
            m.linear_schedule(a, b, n1),
            m.cosine_decay_schedule(b, n2, alpha=c),
            m.constant_schedule(c),
        ]
        return m.join_schedules(parts[: len(cuts) + 1], cuts)

    return build, cuts + [cuts[0] + n1]


@st.composite
def _sgdr(draw):
    cycles = [_warmup_cosine_args(draw) for _ in range(draw(st.integers(1, 3)))]
    ends = list(np.cumsum([kw["decay_steps"] for kw in cycles]))
    return (lambda m: m.sgdr_schedule(cycles)), [int(e) for e in ends]


CASES = {
    "constant_schedule": _constant(),
    "linear_schedule": _polynomial(linear=True),
    "polynomial_schedule": _polynomial(),
    "exponential_decay": _exponential(),
    "cosine_decay_schedule": _cosine(),
    "warmup_cosine_decay_schedule": _warmup_cosine(),
    "warmup_exponential_decay_schedule": _warmup_exponential(),
    "warmup_constant_schedule": _warmup_constant(),
    "piecewise_constant_schedule": _piecewise_constant(),
    "piecewise_interpolate_schedule": _piecewise_interpolate(),
    "cosine_onecycle_schedule": _cosine_onecycle(),
    "linear_onecycle_schedule": _linear_onecycle(),
    "join_schedules": _join(),
    "sgdr_schedule": _sgdr(),
}


def _probe_steps(key_steps):
    """Step 0, each boundary and its neighbours, and a sweep well past the end."""
    near = {max(k + d, 0) for k in key_steps for d in (-1, 0, 1)}
    end = max(key_steps) + 1
    sweep = np.linspace(0, 2 * end + 10, 50).astype(int).tolist()
    return sorted(near | set(sweep))


def _close(actual, expected, scale=0.0):
    """Relative error <= 1e-5, plus an absolute slack of 1e-6 * ``scale``."""
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-8 + 1e-6 * scale)


def test_every_schedule_has_a_parity_case():
    assert set(CASES) == set(SCHEDULES)


@pytest.mark.parametrize("name", SCHEDULES)
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_parity_with_optax(name, data):
    build, key_steps = data.draw(CASES[name])
    ours, ref = build(optaxish), build(optax)
    steps = _probe_steps(key_steps)
    # The reference is optax called with Python ints: its exact path. (Traced,
    # optax's staircase decay and fractional-power polynomial are off; see the
    # regression tests below.)
    expected = np.array([np.float32(ref(step)) for step in steps])

    eager = [ours(step) for step in steps]  # Python ints, no tracing
    assert all(value.dtype == jnp.float32 for value in eager)
    _close(np.array(eager), expected)

    # Compiled, XLA turns divisions by constants into multiplications by
    # reciprocals: values can move by ~1 ulp of the schedule's scale, which is
    # more than 1e-5 relative where a cosine decays to ~0 (for optax too).
    traced = jax.jit(jax.vmap(ours))(jnp.asarray(steps, jnp.int32))
    assert traced.dtype == jnp.float32 and traced.shape == (len(steps),)
    _close(traced, expected, scale=np.abs(expected).max())


def test_exports():
    for name in SCHEDULES:
        assert getattr(optaxish, name) is getattr(optaxish.schedules, name), name
        assert name in optaxish.__all__, name


@pytest.mark.parametrize(
    "factory, kwargs, message",
    [
        (optaxish.linear_schedule, dict(init_value=1.0, end_value=0.0, transition_steps=-1), "transition_steps=-1"),
        (optaxish.polynomial_schedule, dict(init_value=1.0, end_value=0.0, power=2, transition_steps=10, transition_begin=-3), "transition_begin=-3"),
        (optaxish.exponential_decay, dict(init_value=1.0, transition_steps=0, decay_rate=0.5), "transition_steps=0"),
        (optaxish.exponential_decay, dict(init_value=1.0, transition_steps=10, decay_rate=0.0), "decay_rate=0.0"),
        (optaxish.exponential_decay, dict(init_value=1.0, transition_steps=10, decay_rate=-0.5), "decay_rate=-0.5"),
        (optaxish.exponential_decay, dict(init_value=1.0, transition_steps=10, decay_rate=0.5, transition_begin=-1), "transition_begin=-1"),
        (optaxish.cosine_decay_schedule, dict(init_value=1.0, decay_steps=0), "decay_steps=0"),
        (optaxish.cosine_decay_schedule, dict(init_value=1.0, decay_steps=float("nan")), "decay_steps=nan"),
        (optaxish.warmup_cosine_decay_schedule, dict(init_value=0.0, peak_value=1.0, warmup_steps=10, decay_steps=10), "decay_steps=10, warmup_steps=10"),
        (optaxish.warmup_cosine_decay_schedule, dict(init_value=0.0, peak_value=1.0, warmup_steps=-2, decay_steps=10), "warmup_steps=-2"),
        (optaxish.warmup_exponential_decay_schedule, dict(init_value=0.0, peak_value=1.0, warmup_steps=5, transition_steps=-4, decay_rate=0.5), "transition_steps=-4"),
        (optaxish.warmup_constant_schedule, dict(init_value=0.0, peak_value=1.0, warmup_steps=-1), "warmup_steps=-1"),
        (optaxish.piecewise_constant_schedule, dict(init_value=1.0, boundaries_and_scales={10: -0.1}), "boundaries_and_scales=.*-0.1"),
        (optaxish.piecewise_interpolate_schedule, dict(interpolate_type="cubic", init_value=1.0), "interpolate_type='cubic'"),
        (optaxish.piecewise_interpolate_schedule, dict(interpolate_type="linear", init_value=1.0, boundaries_and_scales={5: -1.0}), "boundaries_and_scales="),
        (optaxish.cosine_onecycle_schedule, dict(transition_steps=0, peak_value=1.0), "transition_steps=0"),
        (optaxish.cosine_onecycle_schedule, dict(transition_steps=10, peak_value=1.0, pct_start=1.5), "pct_start=1.5"),
        (optaxish.cosine_onecycle_schedule, dict(transition_steps=10, peak_value=1.0, div_factor=0.0), "div_factor=0.0"),
        (optaxish.linear_onecycle_schedule, dict(transition_steps=-5, peak_value=1.0), "transition_steps=-5"),
        (optaxish.linear_onecycle_schedule, dict(transition_steps=10, peak_value=1.0, pct_start=0.5, pct_final=0.4), "pct_final=0.4"),
        (optaxish.linear_onecycle_schedule, dict(transition_steps=10, peak_value=1.0, final_div_factor=-1.0), "final_div_factor=-1.0"),
        (optaxish.join_schedules, dict(schedules=[], boundaries=[]), r"schedules=\(\)"),
        (optaxish.join_schedules, dict(schedules=[optaxish.constant_schedule(1.0)] * 2, boundaries=[1, 2]), r"boundaries=\(1, 2\)"),
        (optaxish.join_schedules, dict(schedules=[1.0, 2.0], boundaries=[1]), "schedules="),
        (optaxish.sgdr_schedule, dict(cosine_kwargs=[]), r"cosine_kwargs=\[\]"),
        (optaxish.sgdr_schedule, dict(cosine_kwargs=[dict(init_value=0.0, peak_value=1.0, warmup_steps=1)]), "cosine_kwargs="),
        (optaxish.sgdr_schedule, dict(cosine_kwargs=[dict(init_value=0.0, peak_value=1.0, warmup_steps=5, decay_steps=3)]), "decay_steps=3, warmup_steps=5"),
    ],
)  # fmt: skip
def test_argument_errors(factory, kwargs, message):
    # The message names the argument and the value received.
    with pytest.raises(ValueError, match=r"`\w+` must .*Received: .*" + message):
        factory(**kwargs)


def test_step_arguments_must_be_concrete():
    @jax.jit
    def build(n):
        return optaxish.linear_schedule(1.0, 0.0, transition_steps=n)(3)

    with pytest.raises(
        ValueError, match="`transition_steps` must be a concrete number"
    ):
        build(10)


def test_zero_length_transitions_hold_the_initial_value_like_optax():
    for module in (optax, optaxish):
        assert float(module.linear_schedule(0.7, 0.1, 0)(5)) == pytest.approx(0.7)
        assert float(module.warmup_constant_schedule(0.3, 1.0, 0)(5)) == pytest.approx(
            0.3
        )
    assert optaxish.linear_schedule(1, 0, 0)(5).dtype == jnp.float32


def test_value_arguments_may_be_traced():
    """Values (not step counts) may be traced: optax needs them concrete here."""

    @jax.jit
    def traced(peak, rate, end):
        count = jnp.arange(60)
        cosine = optaxish.warmup_cosine_decay_schedule(0.0, peak, 10, 50, end_value=end)
        decay = optaxish.exponential_decay(peak, 7, rate, end_value=end)
        return cosine(count), decay(count)

    for peak, rate, end in [(2.0, 0.5, 0.3), (0.0, 0.5, 0.0), (0.5, 1.2, 0.9)]:
        cosine, decay = traced(peak, rate, end)
        _close(
            cosine,
            optax.warmup_cosine_decay_schedule(0.0, peak, 10, 50, end)(jnp.arange(60)),
        )
        _close(
            decay, optax.exponential_decay(peak, 7, rate, end_value=end)(jnp.arange(60))
        )


def test_vmapped_constant_broadcasts_and_large_python_steps_work():
    steps = jnp.arange(5)
    assert jax.vmap(optaxish.constant_schedule(3))(steps).shape == (5,)
    # Python ints past int32 must not overflow (optax converts them to float).
    big = 2**31 + 10
    _close(
        optaxish.cosine_decay_schedule(1.0, big)(big - 1),
        optax.cosine_decay_schedule(1.0, big)(big - 1),
    )


def test_compiled_polynomial_reaches_end_value_with_fractional_power():
    # optax's jitted version returns NaN from step 3 on here (deviation).
    schedule = optaxish.polynomial_schedule(2.0, 1.0, power=0.5, transition_steps=3)
    values = jax.jit(jax.vmap(schedule))(jnp.arange(6))
    np.testing.assert_allclose(values[3:], 1.0)
    _close(values[:3], [2.0, 1.0 + (2 / 3) ** 0.5, 1.0 + (1 / 3) ** 0.5])


def test_compiled_staircase_decays_exactly_at_multiples():
    # optax's jitted version still gives 1.0 at step 41 here (deviation).
    schedule = optaxish.exponential_decay(1.0, 41, 0.5, staircase=True)
    steps = jnp.array([40, 41, 81, 82, 123])
    for values in (jax.jit(jax.vmap(schedule))(steps), schedule(steps)):
        np.testing.assert_array_equal(values, [1.0, 0.5, 0.5, 0.25, 0.125])
