"""optaxish.Variable: a tf.Variable-like mutable box, and its `_bind` mechanism."""

from __future__ import annotations

import re
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optaxish._variable import Variable


def test_dtypes_follow_tf():
    assert Variable(1.0).dtype == jnp.float32
    assert Variable([1, 2]).dtype == jnp.int32
    assert Variable(True).dtype == jnp.bool_
    assert Variable(np.arange(3, dtype=np.int8)).dtype == jnp.int8
    assert Variable(jnp.ones(2, jnp.bfloat16)).dtype == jnp.bfloat16
    assert Variable([1, 2], dtype=jnp.float32).dtype == jnp.float32
    assert Variable(1.0, dtype="bfloat16").dtype == jnp.bfloat16
    # A weak-typed input still gives a variable of fixed dtype.
    assert not Variable(jnp.asarray(1.0)).value.weak_type


def test_initial_value_forms():
    np.testing.assert_array_equal(Variable(lambda: [1.0, 2.0]).numpy(), [1.0, 2.0])
    a = Variable([1.0, 2.0])
    b = Variable(a)
    b.assign([3.0, 4.0])
    np.testing.assert_array_equal(a.numpy(), [1.0, 2.0])
    # Buffers are copied: deleting the caller's array leaves the variable intact.
    x = jnp.array([5.0, 6.0])
    c = Variable(x)
    x.delete()
    np.testing.assert_array_equal(c.numpy(), [5.0, 6.0])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"initial_value": None}, ValueError, "initial_value"),
        ({"initial_value": 1.5, "dtype": jnp.int32}, TypeError, "float32.*int32"),
        ({"initial_value": [1j], "dtype": jnp.float32}, TypeError, "complex64"),
        ({"initial_value": "a"}, TypeError, "numeric"),
        ({"initial_value": [1.0, [2.0]]}, TypeError, "array-like"),
        ({"initial_value": 1.0, "name": 3}, TypeError, "name=3"),
        ({"initial_value": 1.0, "constraint": 3}, ValueError, "constraint=3"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        Variable(**kwargs)


def test_names():
    default = [Variable(0.0).name for _ in range(3)]
    assert len(set(default)) == 3
    assert all(re.fullmatch(r"Variable(_\d+)?:0", n) for n in default)
    w = Variable(0.0, name="w")
    assert w.name == "w:0" and w._shared_name == "w"
    assert Variable(0.0, name="w").name == "w:0"  # tf does not uniquify names


def test_attributes():
    c = lambda x: jnp.clip(x, 0, 1)  # noqa: E731
    v = Variable(jnp.zeros((2, 3)), trainable=False, constraint=c)
    assert v.shape == (2, 3) and v.ndim == 2 and v.dtype == jnp.float32
    assert v.trainable is False and v.constraint is c
    assert isinstance(v.value, jax.Array)
    with pytest.raises(AttributeError):
        v.trainable = True
    assert Variable(1.0).trainable is True and Variable(1.0).constraint is None


def test_arithmetic_and_comparisons():
    v = Variable([1.0, -2.0])
    x = np.array([1.0, -2.0], np.float32)
    m = jnp.arange(6.0).reshape(2, 3)
    cases = {
        "3*v*v": (3 * v * v, 3 * x * x),
        "v+v": (v + v, x + x),
        "-v": (-v, -x),
        "+v": (+v, x),
        "abs": (abs(v), abs(x)),
        "v**2": (v**2, x**2),
        "2**v": (2**v, 2**x),
        "v@m": (v @ m, x @ np.asarray(m)),
        "m.T@v": (m.T @ v, np.asarray(m).T @ x),
        "v[0]": (v[0], x[0]),
        "v>0": (v > 0, x > 0),
        "v<=v": (v <= v, x <= x),
        "v==v": (v == v, x == x),
        "v!=1": (v != 1.0, x != 1.0),
        "1-v": (1 - v, 1 - x),
        "v/2": (v / 2, x / 2),
        "2/v": (2 / v, 2 / x),
        "v//3": (v // 3, x // 3),
        "v%3": (v % 3, x % 3),
        "np*v": (np.ones(2, np.float32) * v, x),
    }
    for name, (got, want) in cases.items():
        assert isinstance(got, jax.Array), name
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=name)
    i = Variable([6, 3])
    np.testing.assert_array_equal(i & 2, [2, 2])
    np.testing.assert_array_equal(5 | i, [7, 7])
    np.testing.assert_array_equal(i ^ i, [0, 0])
    np.testing.assert_array_equal(~i, [-7, -4])


def test_jax_numpy_functions():
    v = Variable([1.0, 2.0, 3.0])
    assert float(jnp.sum(v**2)) == 14.0
    assert isinstance(jnp.asarray(v), jax.Array)
    np.testing.assert_array_equal(jnp.asarray(v), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(jnp.array(v), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(jnp.stack([v, v]).shape, (2, 3))
    assert float(jnp.sum(v.value)) == 6.0


def test_python_and_numpy_conversions():
    s = Variable(2.5)
    assert float(s) == 2.5 and int(s) == 2 and bool(s) and f"{s:.2f}" == "2.50"
    assert complex(s) == 2.5 + 0j
    assert [0, 1, 2, 3][Variable(3)] == 3  # __index__
    v = Variable([1.0, 2.0])
    assert len(v) == 2
    assert [float(e) for e in v] == [1.0, 2.0]
    np.testing.assert_array_equal(np.asarray(v), [1.0, 2.0])
    assert np.asarray(v, dtype=np.float64).dtype == np.float64
    with pytest.raises(TypeError, match="unsized"):
        len(s)
    with pytest.raises(TypeError):
        float(v)
    with pytest.raises(ValueError):
        bool(v)
    out = v.numpy()
    out[0] = 9.0  # a writable copy
    assert v.numpy()[0] == 1.0


def test_repr_like_tf():
    v = Variable([1.0, 2.0], name="w")
    assert repr(v) == (
        "<optaxish.Variable 'w:0' shape=(2,) dtype=float32, "
        "numpy=array([1., 2.], dtype=float32)>"
    )
    assert repr(Variable(3.0, name="s")) == (
        "<optaxish.Variable 's:0' shape=() dtype=float32, numpy=3.0>"
    )
    assert repr(Variable(3, name="i")).endswith("dtype=int32, numpy=3>")


def test_assign_family_returns_self_and_updates():
    v = Variable([1.0, 2.0])
    assert v.assign([3.0, 4.0]) is v
    np.testing.assert_array_equal(v.numpy(), [3.0, 4.0])
    assert v.assign_add([1.0, 1.0]) is v
    np.testing.assert_array_equal(v.numpy(), [4.0, 5.0])
    assert v.assign_sub(np.array([0.5, 0.5])) is v
    np.testing.assert_array_equal(v.numpy(), [3.5, 4.5])
    v.assign(Variable([0.0, 1.0]))
    np.testing.assert_array_equal(v.numpy(), [0.0, 1.0])
    v.assign([1, 2])  # ints cast to the float variable
    assert v.dtype == jnp.float32
    i = Variable([1, 2])
    i.assign([True, False])  # bools cast to the int variable, as in tf
    np.testing.assert_array_equal(i.numpy(), [1, 0])
    assert v.assign(v * 2).numpy().tolist() == [2.0, 4.0]  # chaining, tf-like


@pytest.mark.parametrize(
    "method, value, error, match",
    [
        ("assign", [1.0, 2.0, 3.0], ValueError, r"'x:0'.*shape \(2,\).*shape \(3,\)"),
        ("assign", 1.0, ValueError, r"shape \(2,\).*shape \(\)"),  # no broadcast
        ("assign_add", 1.0, ValueError, r"delta of shape \(\)"),
        ("assign_sub", [[1.0, 2.0]], ValueError, r"delta of shape \(1, 2\)"),
        ("assign", "ab", TypeError, r"'x:0'.*numeric.*'ab'"),
        ("assign", None, TypeError, "None"),
        ("assign", [1j, 2j], TypeError, "complex64 cannot be cast to dtype float32"),
        ("assign_add", [1j, 2j], TypeError, "complex64"),
    ],
)
def test_assign_errors_leave_value_unchanged(method, value, error, match):
    v = Variable([1.0, 2.0], name="x")
    with pytest.raises(error, match=match):
        getattr(v, method)(value)
    np.testing.assert_array_equal(v.numpy(), [1.0, 2.0])


def test_assign_float_to_int_variable_rejected():
    i = Variable([1, 2], name="i")
    with pytest.raises(
        TypeError, match=r"'i:0'.*float32 cannot be cast to dtype int32"
    ):
        i.assign([1.5, 2.5])
    np.testing.assert_array_equal(i.numpy(), [1, 2])


def test_assign_copies_the_buffer():
    v = Variable([0.0, 0.0])
    x = jnp.array([1.0, 2.0])
    v.assign(x)
    x.delete()
    np.testing.assert_array_equal(v.numpy(), [1.0, 2.0])


def test_unhashable_with_ref():
    v, w = Variable(1.0), Variable(1.0)
    with pytest.raises(TypeError, match=r"variable\.ref\(\)"):
        hash(v)
    table = {v.ref(): "v", w.ref(): "w"}
    assert table[v.ref()] == "v" and table[w.ref()] == "w"
    assert v.ref().deref() is v and v.ref() != w.ref()


def test_not_a_pytree():
    v = Variable([1.0, 2.0])
    leaves = jax.tree.leaves({"a": v})
    assert len(leaves) == 1 and leaves[0] is v


@settings(max_examples=10, deadline=None)
@given(
    shape=st.lists(st.integers(1, 3), max_size=3).map(tuple),
    wrong=st.lists(st.integers(1, 3), max_size=3).map(tuple),
)
def test_assign_shapes_property(shape, wrong):
    v = Variable(np.ones(shape, np.float32))
    if wrong == shape:
        v.assign(np.full(wrong, 2.0, np.float32))
        np.testing.assert_array_equal(v.numpy(), np.full(shape, 2.0))
    else:
        with pytest.raises(ValueError, match="shape mismatch"):
            v.assign(np.full(wrong, 2.0, np.float32))
        np.testing.assert_array_equal(v.numpy(), np.ones(shape))


# -- Variable._bind ----------------------------------------------------------


def _functional(loss, variables, traces):
    """The facade's pattern: a pure function of the variables' values."""

    def pure(values):
        traces.append(1)
        with Variable._bind(variables, values):
            return loss()

    return pure


def test_grad_under_jit_traced_once():
    v = Variable([1.0, -2.0, 3.0])
    traces = []
    grad = jax.jit(jax.grad(_functional(lambda: jnp.sum(v**2), [v], traces)))
    for new in ([1.0, -2.0, 3.0], [0.5, 0.0, -4.0], [7.0, 8.0, 9.0]):
        v.assign(new)
        (g,) = grad([v.value])
        np.testing.assert_allclose(g, 2 * v.numpy(), rtol=1e-6)
    assert len(traces) == 1
    np.testing.assert_array_equal(v.numpy(), [7.0, 8.0, 9.0])


def test_value_and_grad_keras_style_closure():
    w = Variable([[1.0, 2.0], [3.0, 4.0]], name="kernel")
    b = Variable([0.5, -0.5], name="bias")
    x = jnp.array([[1.0, 1.0]])

    def loss():
        return jnp.mean(jnp.square(x @ w + b))

    traces = []
    f = jax.jit(jax.value_and_grad(_functional(loss, [w, b], traces)))
    value, (gw, gb) = f([w.value, b.value])

    def reference(wv, bv):
        return jnp.mean(jnp.square(x @ wv + bv))

    want_value, (want_gw, want_gb) = jax.value_and_grad(reference, (0, 1))(
        w.value, b.value
    )
    np.testing.assert_allclose(value, want_value, rtol=1e-6)
    np.testing.assert_allclose(gw, want_gw, rtol=1e-6)
    np.testing.assert_allclose(gb, want_gb, rtol=1e-6)
    assert float(value) == pytest.approx(float(loss()))


def test_assign_inside_bind_is_recorded_not_applied():
    v = Variable([1.0, 2.0])
    with Variable._bind([v], [jnp.array([10.0, 20.0])]) as scope:
        np.testing.assert_array_equal(v.value, [10.0, 20.0])
        v.assign_add([1.0, 1.0])
        np.testing.assert_array_equal(v.value, [11.0, 21.0])  # later reads see it
    np.testing.assert_array_equal(v.numpy(), [1.0, 2.0])  # the box is untouched
    ((var, new),) = scope.assigned
    assert var is v
    np.testing.assert_array_equal(new, [11.0, 21.0])


def test_traced_assign_does_not_leak():
    v = Variable(1.0)

    @jax.jit
    def step(value):
        with Variable._bind([v], [value]) as scope:
            v.assign(v * 3)
        return scope.assigned[0][1]

    assert float(step(jnp.float32(2.0))) == 6.0
    assert float(v) == 1.0 and not isinstance(v.value, jax.core.Tracer)


def test_unbound_reads_are_reported():
    v, frozen = Variable(2.0), Variable(5.0, name="frozen")
    with Variable._bind([v], [jnp.float32(3.0)]) as scope:
        out = v * frozen
    assert float(out) == 15.0
    assert [u.name for u in scope.unbound_reads] == ["frozen:0"]


def test_nested_binds_and_unwinding():
    a, b = Variable(1.0), Variable(2.0)
    with Variable._bind([a], [jnp.float32(10.0)]):
        with Variable._bind([b], [jnp.float32(20.0)]) as inner:
            assert float(a + b) == 30.0
        assert inner.unbound_reads == []  # `a` was bound by the outer scope
        assert float(b) == 2.0
    with pytest.raises(RuntimeError):
        with Variable._bind([a], [jnp.float32(7.0)]):
            raise RuntimeError("boom")
    assert float(a) == 1.0


def test_bindings_are_per_thread():
    v = Variable(1.0)
    seen = []
    with Variable._bind([v], [jnp.float32(9.0)]):
        thread = threading.Thread(target=lambda: seen.append(float(v)))
        thread.start()
        thread.join()
        assert float(v) == 9.0
    assert seen == [1.0]


def test_repr_inside_trace():
    v = Variable([1.0, 2.0], name="t")
    texts = []

    @jax.jit
    def f(value):
        with Variable._bind([v], [value]):
            texts.append(repr(v))
            return v * 2

    f(v.value)
    assert texts[0].startswith(
        "<optaxish.Variable 't:0' shape=(2,) dtype=float32, value="
    )


@pytest.mark.parametrize(
    "variables, values, error, match",
    [
        ("v", [], ValueError, "same length"),
        ("v", [jnp.zeros(3)], ValueError, r"'b:0' \(shape \(2,\).*shape \(3,\)"),
        ("v", [jnp.zeros(2, jnp.int32)], TypeError, "dtype int32"),
        ("vv", [jnp.zeros(2), jnp.zeros(2)], ValueError, "bound twice"),
        ("x", [jnp.zeros(2)], TypeError, "Expected a Variable"),
    ],
)
def test_bind_errors(variables, values, error, match):
    v = Variable([1.0, 2.0], name="b")
    variables = {"v": [v], "vv": [v, v], "x": [jnp.zeros(2)]}[variables]
    with pytest.raises(error, match=match):
        with Variable._bind(variables, values):
            pass
    assert float(v[0]) == 1.0
    with Variable._bind([v], [[3.0, 4.0]]):  # Python data is accepted
        assert float(v[1]) == 4.0


def test_tracers_never_enter_the_box():
    v = Variable([1.0, 2.0], name="leak")

    @jax.jit
    def bad_assign(x):
        v.assign(x)
        return x

    with pytest.raises(TypeError, match="'leak:0'.*traced"):
        bad_assign(jnp.zeros(2))
    np.testing.assert_array_equal(v.numpy(), [1.0, 2.0])
    with pytest.raises(TypeError, match="Cannot create variable.*traced"):
        jax.jit(lambda x: Variable(x).value)(jnp.zeros(2))


def test_copies_are_new_boxes():
    import copy

    v = Variable([1.0, 2.0], name="orig")
    for clone in (copy.copy(v), copy.deepcopy(v)):
        assert clone is not v and clone.name == "orig:0"
        assert clone._unique_id != v._unique_id
        clone.assign([3.0, 4.0])
        np.testing.assert_array_equal(v.numpy(), [1.0, 2.0])


_HOST_PAIRS = [
    (np.float64, "float32"),
    (np.float32, "float32"),
    (np.int64, "int32"),
    (np.int64, "float32"),
    (np.int32, "float32"),
    (np.bool_, "float32"),
    (np.bool_, "int32"),
    (np.uint8, "int32"),
    (np.float32, "complex64"),
    (np.float64, "float16"),  # JAX's own convert (NumPy would round once)
    (np.float32, "bfloat16"),
]


@pytest.mark.parametrize(("src", "target"), _HOST_PAIRS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_assign_from_numpy_matches_a_device_convert(src, target, data):
    # NumPy data cast on the host before the transfer: the same numbers, dtype
    # and shape as JAX's convert of the same data, in a buffer of its own.
    if np.issubdtype(src, np.floating):
        values = st.floats(width=32 if src == np.float32 else 64)  # inf, nan too
    elif src == np.bool_:
        values = st.booleans()
    else:
        info = np.iinfo(src if src != np.int64 else np.int32)
        values = st.integers(int(info.min), int(info.max))
    host = np.asarray(data.draw(st.lists(values, min_size=3, max_size=3)), src)
    var = Variable(jnp.zeros(3, target))
    var.assign(host)  # no overflow warning (pytest turns warnings into errors)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = jax.lax.convert_element_type(jnp.asarray(host), jnp.dtype(target))
    assert var.dtype == jnp.dtype(target) and var.shape == (3,)
    wide = np.complex128 if target == "complex64" else np.float64
    np.testing.assert_array_equal(
        np.asarray(var.value).astype(wide), np.asarray(expected).astype(wide)
    )
    before = np.asarray(var.value).astype(wide)
    host[...] = host[::-1]  # the caller's array is theirs: no shared memory
    np.testing.assert_array_equal(np.asarray(var.value).astype(wide), before)
