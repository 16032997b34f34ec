"""tf-keras parity of the Keras-style ``SGD`` and ``Adam`` (golden fixtures).

Every SGD/Adam case of ``tests/fixtures/keras`` (plain, momentum, Nesterov,
AMSGrad, clip kwargs, ``decay``, schedules, constraints) is replayed through
``apply_gradients`` with the stored gradients; each step's variables, the
final slots, weights, weight names, slot names and config must match.
"""

from __future__ import annotations

import numpy as np
import pytest

from optaxish import Variable
from optaxish.optimizers import SGD, Adam, schedules
from tests.keras_fixtures import list_cases, load_case, replay_and_compare

CLASSES = {"SGD": SGD, "Adam": Adam}
CASES = [
    c
    for c in list_cases()
    if load_case(c).optimizer["class_name"] in CLASSES
    and load_case(c).optimizer["api"] == "legacy"
    and load_case(c).loss_scale is None
]


def _constraint(spec):
    """tf-keras' NonNeg and MaxNorm constraints, in numpy-compatible jnp."""
    if spec is None:
        return None
    import jax.numpy as jnp

    if spec["class_name"] == "NonNeg":
        return lambda w: w * (w >= 0.0).astype(w.dtype)
    if spec["class_name"] == "MaxNorm":
        max_value, axis = spec["config"]["max_value"], spec["config"]["axis"]

        def max_norm(w):
            w = jnp.asarray(w)
            norms = jnp.sqrt(jnp.sum(jnp.square(w), axis=axis, keepdims=True))
            desired = jnp.clip(norms, 0.0, max_value)
            return w * (desired / (1e-7 + norms))

        return max_norm
    raise NotImplementedError(spec)


def make_optimizer(case):
    kwargs = dict(case.optimizer["kwargs"])
    if isinstance(kwargs.get("learning_rate"), dict):
        kwargs["learning_rate"] = schedules.deserialize(kwargs["learning_rate"])
    cls = CLASSES[case.optimizer["class_name"]]
    if "lr" in kwargs:
        with pytest.warns(UserWarning, match="`lr` argument is deprecated"):
            return cls(**kwargs)
    return cls(**kwargs)


def make_variables(case):
    return [
        Variable(init, name=name, constraint=_constraint(con))
        for init, name, con in zip(case.init, case.names, case.constraints)
    ]


def test_every_sgd_and_adam_case_is_covered():
    assert len(CASES) >= 40


@pytest.mark.parametrize("case_id", CASES)
def test_trajectory_matches_tf_keras(case_id):
    case = load_case(case_id)
    opt = make_optimizer(case)
    variables = make_variables(case)
    replay_and_compare(case, opt, variables)
    assert [w.name for w in opt.weights] == case.weight_names
    assert opt.get_slot_names() == case.slot_names
    ours = opt.get_weights()
    assert len(ours) == len(case.weights)
    assert ours[0].dtype == np.int64
    for a, b in zip(ours, case.weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    config = opt.get_config()
    expected = dict(case.config)
    if isinstance(expected["learning_rate"], dict):
        got, want = config.pop("learning_rate"), expected.pop("learning_rate")
        assert got["class_name"] == want["class_name"]
        assert got["config"] == want["config"]
    assert config == expected


@pytest.mark.parametrize(
    "case_id", ["sgd/sgd_nesterov", "adam/adam_amsgrad", "schedules/adam_cosine"]
)
def test_set_weights_loads_tf_keras_list_and_continues(case_id):
    """tf-keras' final ``get_weights()`` list, loaded into a fresh optimizer,
    continues exactly like the optimizer that ran the whole trajectory."""
    case = load_case(case_id)
    ran = make_optimizer(case)
    ran_vars = make_variables(case)
    for t in range(case.num_steps):
        ran.apply_gradients(zip(case.step_grads(t), ran_vars))

    opt = make_optimizer(case)
    variables = [Variable(case.params[i][-1], name=n) for i, n in enumerate(case.names)]
    opt.build(variables)
    opt.set_weights(case.weights)  # the list tf-keras returned
    assert int(opt.iterations) == case.num_steps
    for (i, name), value in case.slots.items():
        np.testing.assert_array_equal(opt.get_slot(variables[i], name), value)
    for t in range(5):  # five more steps, reusing the first gradients
        grads = case.step_grads(t)
        ran.apply_gradients(zip(grads, ran_vars))
        opt.apply_gradients(zip(grads, variables))
        for a, b in zip(variables, ran_vars):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert int(opt.iterations) == case.num_steps + 5
