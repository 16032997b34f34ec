"""The facade's per-call host path: hyperparameters go into the compiled step
apart (neither donated nor returned unless the step changes them), a call
with the last call's variables checks its gradients in one pass, and
``minimize`` reuses what its last call worked out. Same numbers, same errors,
nothing changed on error."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optaxish import Variable, optimizers
from optaxish.mixed_precision import LossScaleOptimizer
from optaxish.optimizers import schedules


def _vars():
    return [
        Variable(np.full((2, 2), i + 1.0, np.float32), name=f"w{i}") for i in range(3)
    ]


def _grads(t):
    return [jnp.full((2, 2), 0.1 * (t + i + 1), jnp.float32) for i in range(3)]


def test_hyperparameters_are_neither_donated_nor_replaced():
    opt, vs = optimizers.Adam(0.01), _vars()
    opt.apply_gradients(zip(_grads(0), vs))
    before = dict(opt._cold.hyperparams)
    for t in range(3):
        opt.apply_gradients(zip(_grads(t), vs))
    after = opt._cold.hyperparams
    assert after.keys() == before.keys()
    for k, v in before.items():
        assert after[k] is v and not v.is_deleted(), k
    assert float(opt.learning_rate) == np.float32(0.01)


@pytest.mark.parametrize("packing", [True, False])
def test_a_schedule_and_a_callable_learning_rate_are_stored_after_each_step(packing):
    sched = schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    opt, vs = optimizers.SGD(sched), _vars()
    calls = iter(np.linspace(0.5, 0.1, 4).tolist())
    fn_opt, fn_vs = optimizers.SGD(lambda: next(calls)), _vars()
    opt.packing = fn_opt.packing = packing
    for t in range(4):
        opt.apply_gradients(zip(_grads(t), vs))
        fn_opt.apply_gradients(zip(_grads(t), fn_vs))
        lr = opt._cold.hyperparams["learning_rate"]
        np.testing.assert_allclose(lr, 0.1 * 0.5**t, rtol=1e-6)
        np.testing.assert_allclose(
            fn_opt._cold.hyperparams["learning_rate"],
            np.linspace(0.5, 0.1, 4)[t],
            rtol=1e-6,
        )


def test_a_step_that_changes_a_hyperparameter_returns_it():
    # Nadam's momentum cache changes every step (a hyperparameter entry).
    opt, vs = optimizers.Nadam(0.01), _vars()
    caches = []
    for t in range(3):
        opt.apply_gradients(zip(_grads(t), vs))
        caches.append(float(opt._cold.hyperparams["momentum_cache"]))
    assert len(set(caches)) == 3
    ref, ref_vs = optimizers.Nadam(0.01), _vars()
    ref.packing = False
    for t in range(3):
        ref.apply_gradients(zip(_grads(t), ref_vs))
    assert float(ref._cold.hyperparams["momentum_cache"]) == caches[-1]
    for v, r in zip(vs, ref_vs):
        np.testing.assert_allclose(v.numpy(), r.numpy(), rtol=1e-6)


def test_loss_scale_optimizer_skips_and_keeps_its_hyperparameters():
    opt, vs = LossScaleOptimizer(optimizers.Adam(0.01)), _vars()
    opt.get_scaled_loss(1.0)
    opt.get_unscaled_gradients([])
    opt.apply_gradients(zip(_grads(0), vs))
    values = [v.numpy() for v in vs]
    bad = _grads(1)
    bad[0] = bad[0].at[0, 0].set(jnp.inf)
    opt.apply_gradients(zip(bad, vs))  # skipped
    for v, x in zip(vs, values):
        np.testing.assert_array_equal(v.numpy(), x)
    assert float(opt.learning_rate) == np.float32(0.01)
    assert sorted(opt._optimizer._cold.hyperparams) == [
        "beta_1",
        "beta_2",
        "decay",
        "learning_rate",
    ]


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (lambda g, v: [(g[0][:1], v[0]), *zip(g[1:], v[1:])], ValueError, "has shape"),
        (
            lambda g, v: [(g[0].astype(jnp.float16), v[0]), *zip(g[1:], v[1:])],
            TypeError,
            "dtype",
        ),
        (lambda g, v: [(g[0], v[0]), (g[1], v[0]), (g[2], v[2])], ValueError, "twice"),
        (lambda g, v: [(None, x) for x in v], ValueError, "No gradients"),
        (lambda g, v: [(g[0], v[0], 1), *zip(g[1:], v[1:])], ValueError, "pairs"),
        (lambda g, v: [(g[0], "w"), *zip(g[1:], v[1:])], TypeError, "Variable"),
    ],
)
def test_bad_gradients_after_a_planned_call_raise_and_change_nothing(bad, error, match):
    opt, vs = optimizers.Adam(0.01), _vars()
    opt.apply_gradients(zip(_grads(0), vs))
    opt.apply_gradients(zip(_grads(1), vs))  # the plan is in use
    values = [v.numpy() for v in vs]
    iterations = int(opt.iterations)
    with pytest.raises(error, match=match):
        opt.apply_gradients(bad(_grads(2), vs))
    assert int(opt.iterations) == iterations
    for v, x in zip(vs, values):
        np.testing.assert_array_equal(v.numpy(), x)
    opt.apply_gradients(zip(_grads(2), vs))  # still usable
    assert int(opt.iterations) == iterations + 1


def test_planned_call_accepts_lists_numpy_and_another_order():
    opt, vs = optimizers.SGD(0.1), _vars()
    ref, ref_vs = optimizers.SGD(0.1), _vars()
    opt.apply_gradients(zip(_grads(0), vs))
    ref.apply_gradients(zip(_grads(0), ref_vs))
    g = _grads(1)
    opt.apply_gradients([[g[0], vs[0]], (np.asarray(g[1]), vs[1]), (g[2], vs[2])])
    ref.apply_gradients(zip(g, ref_vs))
    opt.apply_gradients([(g[2], vs[2]), (g[0], vs[0]), (g[1], vs[1])])
    ref.apply_gradients([(g[2], ref_vs[2]), (g[0], ref_vs[0]), (g[1], ref_vs[1])])
    for v, r in zip(vs, ref_vs):
        np.testing.assert_array_equal(v.numpy(), r.numpy())


def test_traced_gradients_after_a_planned_call_are_refused():
    opt, vs = optimizers.SGD(0.1), _vars()
    opt.apply_gradients(zip(_grads(0), vs))

    @jax.jit
    def inside(g):
        return opt.apply_gradients(zip([g, *_grads(0)[1:]], vs))

    with pytest.raises(RuntimeError, match="JAX transformation"):
        inside(_grads(1)[0])
    assert int(opt.iterations) == 1


def test_minimize_reuses_its_last_call(monkeypatch):
    vs = _vars()
    opt = optimizers.Adam(0.01)

    def loss():
        return sum((v * v).sum() for v in vs)

    opt.minimize(loss, vs)
    plan = opt.__dict__["_minimize_plan"]

    def no_register(variables):
        raise AssertionError("the last call's work was not reused")

    monkeypatch.setattr(opt, "_register", no_register)
    for _ in range(3):
        opt.minimize(loss, vs)
    assert opt.__dict__["_minimize_plan"] is not plan  # renewed each call
    assert opt.__dict__["_minimize_plan"].base == plan.base
    assert opt._traces == 1 and int(opt.iterations) == 4
    monkeypatch.undo()
    opt.clipvalue = 0.5  # a setting of the step: compiled anew
    opt.minimize(loss, vs)
    assert opt._traces == 2
    opt.minimize(loss, list(reversed(vs)))  # another list: another step
    assert opt._traces == 3


def test_minimize_reuse_matches_a_fresh_call_each_time():
    vs, ref_vs = _vars(), _vars()
    opt, ref = optimizers.Adam(0.01), optimizers.Adam(0.01)

    def loss():
        return sum((v * v * v).sum() for v in vs)

    def ref_loss():
        return sum((v * v * v).sum() for v in ref_vs)

    for _ in range(4):
        opt.minimize(loss, vs)
        ref.__dict__.pop("_minimize_plan", None)
        ref.minimize(ref_loss, ref_vs)
    for v, r in zip(vs, ref_vs):
        np.testing.assert_array_equal(v.numpy(), r.numpy())


def test_minimize_reuse_still_resets_the_retrace_count():
    # A repeated loss between new lambdas breaks the streak, as before.
    v = Variable([1.0, 2.0])
    opt = optimizers.SGD(0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            losses = [lambda: (v * v).sum() for _ in range(4)]
            for loss in losses:
                opt.minimize(loss, [v])
            opt.minimize(losses[-1], [v])  # the last call's: reused


def test_minimize_bad_variables_after_a_reused_call_raise():
    vs = _vars()
    opt = optimizers.SGD(0.1)

    def loss():
        return sum((v * v).sum() for v in vs)

    opt.minimize(loss, vs)
    opt.minimize(loss, vs)
    with pytest.raises(ValueError, match="twice"):
        opt.minimize(loss, [vs[0], vs[0]])
    with pytest.raises(TypeError, match="Variable"):
        opt.minimize(loss, [vs[0], "w"])
    assert int(opt.iterations) == 2
