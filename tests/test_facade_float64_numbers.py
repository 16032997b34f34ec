"""The shared scalars of Adam, Adamax and Nadam for leaves of at most 32 bits.

Float64 leaves (x64 mode) get their bias corrections, and Nadam its
schedule, computed again in float64; that is checked, against tf-keras, by
``tests/test_x64.py``. Here, without x64: every other leaf keeps the scalars
computed once for the whole tree (the program of a float32 tree did not
change), and ``Nadam``'s momentum cache is float32 for a low-precision first
variable (a documented deviation: tf-keras would keep it in that dtype).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optaxish as ox
from optaxish._numerics import LeafScalars
from optaxish.optimizers import Nadam

F32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731  (as the facade)

TRANSFORMS = {
    "adam": lambda: ox.adam(1e-3),
    "adam_f32_hyper": lambda: ox.scale_by_adam(F32(0.9), F32(0.999)),
    "epsilon_hat": lambda: ox.scale_by_adam(F32(0.9), F32(0.999), epsilon_hat=True),
    "amsgrad_epsilon_hat": lambda: ox.scale_by_adam(
        F32(0.9), F32(0.999), epsilon_hat=True, amsgrad=True
    ),
    "adamax": lambda: ox.scale_by_adamax(F32(0.9), F32(0.999), eps_in_max=False),
    "nadam_scheduled": lambda: ox.scale_by_adam(
        F32(0.9), F32(0.999), nesterov=True, momentum_schedule_decay=0.004
    ),
}


def _powers(tx, params) -> int:
    text = jax.jit(tx.update).lower(params, tx.init(params), params).as_text()
    return text.count("stablehlo.power")


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_scalars_computed_once_for_narrow_leaves(name):
    one = {"w": jnp.ones((2, 3), jnp.float32)}
    many = {
        "w": jnp.ones((2, 3), jnp.float32),
        "b": jnp.ones(3, jnp.bfloat16),
        "h": jnp.ones(4, jnp.float16),
        "v": jnp.ones(5, jnp.float32),
    }
    tx = TRANSFORMS[name]()
    assert _powers(tx, one) == _powers(tx, many) > 0


@pytest.mark.parametrize(
    "dtype", [jnp.float32, jnp.bfloat16, jnp.float16, jnp.complex64, jnp.int32]
)
def test_leaf_scalars_give_narrow_leaves_the_first_scalars(dtype):
    decay = F32(0.9)
    calls = []

    def compute(dt):
        calls.append(dt)
        return 1 - (decay if dt is None else decay.astype(dt))

    scalars = LeafScalars(compute)
    assert scalars.like(jnp.zeros(2, dtype)) is scalars.base
    assert scalars.like(0.5) is scalars.base  # a Python number
    assert calls == [None]


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_nadam_momentum_cache_float32_for_low_precision_first_variable(dtype):
    # Deviation (Nadam's docstring): tf-keras would create it in `dtype`.
    first = ox.Variable(jnp.asarray([1.0, -2.0], dtype))
    second = ox.Variable([0.5, 0.25])
    opt = Nadam(0.01)
    for _ in range(2):
        opt.apply_gradients(
            [(jnp.asarray([0.1, 0.2], dtype), first), (F32([0.1, -0.1]), second)]
        )
    weights = opt.get_weights()
    assert np.asarray(weights[1]).dtype == np.float32
    # The product of the first two scheduled coefficients, in float32.
    t = np.float32([1.0, 2.0])
    mu = np.float32(0.9) * (1 - np.float32(0.5) * np.float32(0.96) ** (0.004 * t))
    np.testing.assert_allclose(weights[1], mu[0] * mu[1], rtol=1e-6)
    assert opt.state.hyperparams["momentum_cache"].dtype == jnp.float32


def test_nadam_momentum_cache_float32_before_any_variable():
    opt = Nadam(0.01)
    assert opt.state.hyperparams["momentum_cache"].dtype == jnp.float32
    opt.build([ox.Variable([1.0, 2.0])])
    assert opt.get_weights()[1].dtype == np.float32
