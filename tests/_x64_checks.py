"""Checks under ``jax_enable_x64``, run by ``tests/test_x64.py``.

Run as a script in a fresh process: x64 is on before any array exists (as
for a user who sets ``JAX_ENABLE_X64=1``). Prints one JSON report on its last
line. Each check catches its own errors, so one failure shows up in the
report instead of hiding the others.

Two kinds of parameters matter: float64 ones, and float32 ones in x64 mode,
where a float64 scalar (or a Python number turned into a strong float64)
can promote float32 updates. Dtypes are read with ``jax.eval_shape`` (weak
types included: a jitted step retraces when its state's dtypes or weak types
change), so no entry compiles for them; numbers are compared with optax in
one compiled program per library (XLA's compile time dominates here).
"""

from __future__ import annotations

import os

os.environ["JAX_ENABLE_X64"] = "1"
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import json  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import optaxish as ox  # noqa: E402
from optaxish.packing import pack, packed  # noqa: E402
from tests.conformance import ALL, Entry  # noqa: E402

if __name__ == "__main__":  # never in the test process (pytest imports modules)
    jax.config.update("jax_enable_x64", True)
    warnings.simplefilter("ignore")

STEPS = 3
TREES = ("f64", "f32", "mixed")


def entry_id(i: int, entry: Entry) -> str:
    """A unique name per registry entry (some names appear twice)."""
    return f"{i:02d}-{entry.name}"


def _dtype(x: Any) -> str:
    name = str(jnp.result_type(x))  # also a PRNG key's ``key<fry>``
    return name + ("*" if getattr(x, "weak_type", False) else "")


def dtypes(tree: Any) -> dict[str, str]:
    """``{key path: dtype}``, a ``*`` marking a weakly typed leaf."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path): _dtype(x) for path, x in flat}


def make_params(kind: str, seed: int) -> dict[str, jax.Array]:
    """A matrix and a vector: float64 (``f64``), float32 (``f32``) or one
    of each (``mixed``: the matrix is float64)."""
    rng = np.random.default_rng(seed)
    mat = rng.normal(size=(3, 4))
    vec = rng.normal(size=(4,))
    wide = {"f64": jnp.float64, "f32": jnp.float32, "mixed": jnp.float64}[kind]
    narrow = jnp.float64 if kind == "f64" else jnp.float32
    return {"mat": jnp.asarray(mat, wide), "vec": jnp.asarray(vec, narrow)}


def _quadratic_grads(params, target):
    return jax.tree.map(lambda p, t: p - t, params, target)


def _loss_value(grads):
    """The battery's loss ``0.5 * |g|^2`` (the polyak entries read it)."""
    return 0.5 * sum(jnp.sum(jnp.square(g)) for g in jax.tree.leaves(grads))


def _step_fn(tx: Any, apply: Callable, target: Any, feed_value: bool) -> Callable:
    def step(p, s):
        g = _quadratic_grads(p, target)
        extra = {"value": _loss_value(g)} if feed_value else {}
        u, s = tx.update(g, s, p, **extra)
        return apply(p, u), u, s

    return step


def _optax_twin(entry: Entry) -> Any | None:
    """optax's transformation for ``entry``, or None when it has none."""
    if entry.name == "flatten":
        return optax.flatten(optax.adam(0.05))
    factory = getattr(optax, entry.name, None) or getattr(
        optax.contrib, entry.name, None
    )
    if factory is None or any(
        type(v).__module__.startswith("optaxish") for v in entry.kwargs.values()
    ):
        return None
    tx = factory(**entry.kwargs)
    if entry.lr is not None:
        lr = optax.scale(-entry.lr)
        tx = optax.chain(lr, tx) if entry.lr_first else optax.chain(tx, lr)
    return tx


def abstract_steps(tx: Any, kind: str, feed_value: bool = False) -> dict[str, Any]:
    """Dtypes of params, updates and state through two abstract steps."""
    params, target = make_params(kind, 0), make_params(kind, 1)
    step = _step_fn(tx, ox.apply_updates, target, feed_value)
    state = tx.init(params)
    out = {"state_init": dtypes(state)}
    p, u, s = jax.eval_shape(step, params, state)
    out.update(params=dtypes(p), updates=dtypes(u), state_1=dtypes(s))
    _, _, s = jax.eval_shape(step, p, s)
    out["state_2"] = dtypes(s)
    return out


def _rel_err(a: Any, b: Any) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))


def run_together(cases: dict[str, tuple[Any, Callable]], params: Any) -> dict:
    """``STEPS`` jitted steps of every case, compiled as one program.

    Returns ``{"params": {case: final params}, "traces": n}``.
    """
    states = {k: tx.init(params) for k, (tx, _) in cases.items()}
    traces = []

    @jax.jit
    def step_all(ps, ss):
        traces.append(1)
        res = {k: cases[k][1](ps[k], ss[k]) for k in cases}
        return {k: r[0] for k, r in res.items()}, {k: r[2] for k, r in res.items()}

    ps = {k: params for k in cases}
    for _ in range(STEPS):
        ps, states = step_all(ps, states)
    return {"params": ps, "traces": len(traces)}


def _traces(tx: Any, step: Callable, params: Any) -> bool:
    """Whether ``step`` traces (a failure is reported by the dtype checks)."""
    try:
        jax.eval_shape(step, params, tx.init(params))
    except Exception:  # noqa: BLE001
        return False
    return True


def check_core() -> dict[str, Any]:
    """Every registry entry: dtypes on the three trees, numbers vs optax."""
    entries: dict[str, Any] = {}
    ours, theirs = {}, {}
    # One float64 leaf for the numbers: the compile time grows with leaves.
    params = {"mat": make_params("f64", 0)["mat"]}
    target = {"mat": make_params("f64", 1)["mat"]}
    for i, entry in enumerate(ALL):
        name = entry_id(i, entry)
        case: dict[str, Any] = {}
        entries[name] = case
        for kind in TREES:
            case[kind] = _guard(lambda e=entry, k=kind: abstract_steps(e.make(), k))
        twin = _guard(lambda e=entry: _optax_twin(e))
        if twin is None or isinstance(twin, dict):
            continue
        feed = "polyak" in entry.name
        for kind in TREES:
            case[kind + "_optax_state_init"] = _guard(
                lambda t=twin, k=kind: dtypes(t.init(make_params(k, 0)))
            )
        tx = entry.make()
        step = _step_fn(tx, ox.apply_updates, target, False)
        step_twin = _step_fn(twin, optax.apply_updates, target, feed)
        if _traces(tx, step, params) and _traces(twin, step_twin, params):
            ours[name], theirs[name] = (tx, step), (twin, step_twin)
    mine = run_together(ours, params)
    other = run_together(theirs, params)
    for name in ours:
        entries[name]["f64_rel_err"] = max(
            _rel_err(a, b)
            for a, b in zip(
                jax.tree.leaves(mine["params"][name]),
                jax.tree.leaves(other["params"][name]),
            )
        )
    return {"entries": entries, "traces": mine["traces"]}


def check_accumulator_dtypes() -> dict[str, Any]:
    """A float64 momentum buffer for float32 params must not promote updates."""
    out = {}
    cases = {
        "trace": lambda: ox.trace(0.9, accumulator_dtype=jnp.float64),
        "trace_nesterov": lambda: ox.trace(
            0.9, nesterov=True, accumulator_dtype=jnp.float64
        ),
        "ema": lambda: ox.ema(0.9, accumulator_dtype=jnp.float64),
        "sgd_momentum": lambda: ox.sgd(0.1, 0.9, accumulator_dtype=jnp.float64),
        "signum": lambda: ox.signum(0.1, accumulator_dtype=jnp.float64),
        "adafactor_momentum": lambda: ox.adafactor(
            0.1, momentum=0.9, dtype_momentum=jnp.float64
        ),
        "adam_mu_dtype": lambda: ox.adam(0.1, mu_dtype=jnp.float64),
    }
    for name, make in cases.items():
        out[name] = _guard(lambda m=make: abstract_steps(m(), "f32"))
    return out


# ---------------------------------------------------------------- schedules


def _schedules() -> dict[str, Any]:
    return {
        "constant": ox.constant_schedule(0.1),
        "linear": ox.linear_schedule(0.1, 0.0, 100),
        "polynomial": ox.polynomial_schedule(0.1, 0.0, 2.0, 100),
        "exponential": ox.exponential_decay(0.1, 100, 0.9),
        "exponential_staircase": ox.exponential_decay(0.1, 10, 0.9, staircase=True),
        "cosine": ox.cosine_decay_schedule(0.1, 100),
        "warmup_cosine": ox.warmup_cosine_decay_schedule(0.0, 0.1, 10, 100),
        "warmup_exponential": ox.warmup_exponential_decay_schedule(
            0.0, 0.1, 10, 100, 0.9
        ),
        "piecewise_constant": ox.piecewise_constant_schedule(0.1, {10: 0.5}),
        "piecewise_interpolate": ox.piecewise_interpolate_schedule(
            "cosine", 0.1, {10: 0.5, 20: 2.0}
        ),
        "linear_onecycle": ox.linear_onecycle_schedule(100, 0.1),
        "cosine_onecycle": ox.cosine_onecycle_schedule(100, 0.1),
        "sgdr": ox.sgdr_schedule(
            [dict(init_value=0.0, peak_value=0.1, warmup_steps=5, decay_steps=50)]
        ),
        "join": ox.join_schedules(
            [ox.constant_schedule(0.1), ox.linear_schedule(0.1, 0.0, 10)], [5]
        ),
    }


def check_schedules() -> dict[str, Any]:
    """Output dtypes for a Python int, int32 and int64 count, and under jit."""
    out = {}
    for name, fn in _schedules().items():
        counts = {"int": 7, "int32": jnp.int32(7), "int64": jnp.int64(7)}
        case = {k: _dtype(fn(c)) for k, c in counts.items()}
        case["jit_int64"] = _dtype(jax.jit(fn)(jnp.int64(7)))
        values = [float(fn(c)) for c in counts.values()]
        case["same_value"] = max(values) == min(values)
        out[name] = case
    return out


def check_inject() -> dict[str, Any]:
    """``inject_hyperparams``: hyperparameter dtypes, count, traces, numbers."""
    out = {}
    factories = {
        "adam": lambda m: m.inject_hyperparams(m.adam)(learning_rate=0.05, b1=0.8),
        "adam_scheduled": lambda m: m.inject_hyperparams(m.adam)(
            learning_rate=m.exponential_decay(0.05, 10, 0.9)
        ),
        "sgd": lambda m: m.inject_hyperparams(m.sgd)(learning_rate=0.1, momentum=0.9),
        "adamw_f32_hyper": lambda m: m.inject_hyperparams(
            m.adamw, hyperparam_dtype=jnp.float32
        )(learning_rate=0.05),
    }
    for name, make in factories.items():
        for kind in TREES if name == "adam" else ("f64",):
            case = _guard(lambda m=make, k=kind: _inject_case(m, k))
            out[f"{name}/{kind}"] = case
    return out


def _inject_case(make: Callable, kind: str) -> dict[str, Any]:
    params, target = make_params(kind, 0), make_params(kind, 1)
    res = {}
    for lib, apply in ((ox, ox.apply_updates), (optax, optax.apply_updates)):
        tx = make(lib)
        traces = []
        step = _step_fn(tx, apply, target, False)

        @jax.jit
        def jstep(p, s, step=step, traces=traces):
            traces.append(1)
            return step(p, s)

        state = tx.init(params)
        first = dtypes(state)
        p = params
        for _ in range(STEPS):
            p, u, state = jstep(p, state)
        res[lib.__name__] = dict(
            state_init=first,
            state=dtypes(state),
            updates=dtypes(u),
            traces=len(traces),
            p=p,
        )
    mine, other = res["optaxish"], res["optax"]
    got, want = mine.pop("p"), other.pop("p")
    mine["rel_err"] = {k: _rel_err(got[k], want[k]) for k in got}
    return {"ours": mine, "optax": other}


# ---------------------------------------------------------------- loss scale


def check_loss_scale() -> dict[str, Any]:
    ls = ox.loss_scale
    out: dict[str, Any] = {}
    out["default"] = dtypes(ls.DynamicLossScale())
    out["from_x64_arrays"] = dtypes(
        ls.DynamicLossScale(
            jnp.asarray(2.0**10),
            jnp.asarray(3),
            jnp.asarray(10),
            jnp.asarray(2.0),
            jnp.asarray(1.0),
            jnp.asarray(2.0**20),
        )
    )
    out["static"] = dtypes(ls.StaticLossScale(128.0))
    traces = []

    @jax.jit
    def adjust(value, finite):
        traces.append(1)
        return value.adjust(finite)

    value = ls.DynamicLossScale(2.0**4, period=2)
    scales = []
    for finite in (True, True, False, True):
        value = adjust(value, jnp.asarray(finite))
        scales.append(float(value.loss_scale))
    out["adjusted"] = dtypes(value)
    out["adjust_traces"] = len(traces)
    out["scales"] = scales
    eager = ls.DynamicLossScale().adjust(True).adjust(False)
    out["eager_adjusted"] = dtypes(eager)
    for kind in TREES:
        out[f"wrapper/{kind}"] = _guard(lambda k=kind: _loss_scaling_case(k))
    return out


def _loss_scaling_case(kind: str) -> dict[str, Any]:
    ls = ox.loss_scale
    tx = ls.dynamic_loss_scaling(ox.adam(0.05))
    params, target = make_params(kind, 0), make_params(kind, 1)
    state = tx.init(params)
    first = dtypes(state)
    traces = []

    @jax.jit
    def step(p, s, bad):
        traces.append(1)
        scale = ls.get_loss_scale(s)  # gradients of the scaled loss
        g = jax.tree.map(lambda x, t: (x - t) * scale.astype(x.dtype), p, target)
        g = jax.tree.map(lambda x: jnp.where(bad, jnp.inf, x), g)
        u, s = tx.update(g, s, p)
        return ox.apply_updates(p, u), u, s

    p = params
    for bad in (False, True, False):
        p, u, state = step(p, state, jnp.asarray(bad))
    plain = ox.adam(0.05)
    q, s = params, plain.init(params)
    for _ in range(2):
        v, s = plain.update(_quadratic_grads(q, target), s, q)
        q = ox.apply_updates(q, v)
    return dict(
        state_init=first,
        state=dtypes(state),
        updates=dtypes(u),
        traces=len(traces),
        skipped=int(state.skipped_steps),
        scale=float(ls.get_loss_scale(state)),
        scaled_loss=_dtype(ls.scale_loss(jnp.asarray(1.0, params["mat"].dtype), state)),
        rel_err={k: _rel_err(p[k], q[k]) for k in p},
    )


# ---------------------------------------------------------------- packing


def check_packing() -> dict[str, Any]:
    out = {}
    for kind in TREES:
        out[kind] = _guard(lambda k=kind: _packing_case(k))
    return out


def _packing_case(kind: str) -> dict[str, Any]:
    params, target = make_params(kind, 0), make_params(kind, 1)
    tx = packed(ox.adam(0.05))
    pp = pack(params)
    state = tx.init(pp)
    first = dtypes(state)
    traces = []

    @jax.jit
    def step(p, s):
        traces.append(1)
        g = pack(_quadratic_grads(p.unpack(), target), p.layout)
        u, s = tx.update(g, s, p)
        return ox.apply_updates(p, u), u, s

    p = pp
    for _ in range(STEPS):
        p, u, state = step(p, state)
    plain = ox.adam(0.05)
    q, s = params, plain.init(params)
    for _ in range(STEPS):
        v, s = plain.update(_quadratic_grads(q, target), s, q)
        q = ox.apply_updates(q, v)
    got = p.unpack()
    return dict(
        layout=list(pp.layout.dtypes),
        buffers=[_dtype(b) for b in pp.buffers],
        state_init=first,
        state=dtypes(state),
        updates=[_dtype(b) for b in u.buffers],
        unpacked=dtypes(got),
        traces=len(traces),
        rel_err={k: _rel_err(got[k], q[k]) for k in q},
    )


# ------------------------------------------------- float32 hyperparameters


def _scalar_transforms(h: Callable[[float], Any]) -> dict[str, Any]:
    """The transformations whose shared scalars (bias corrections, Nadam's
    schedule) are computed per leaf precision, with hyperparameters ``h(x)``."""
    b1, b2 = h(0.9), h(0.999)
    return {
        "adam": ox.scale_by_adam(b1, b2),
        "adam_epsilon_hat": ox.scale_by_adam(b1, b2, 1e-7, epsilon_hat=True),
        "amsgrad_epsilon_hat": ox.scale_by_adam(
            b1, b2, 1e-7, epsilon_hat=True, amsgrad=True
        ),
        "amsgrad": ox.scale_by_amsgrad(b1, b2),
        "adamax": ox.scale_by_adamax(b1, b2, 1e-7, eps_in_max=False),
        "nadam_scheduled": ox.scale_by_adam(
            b1, b2, 1e-7, nesterov=True, momentum_schedule_decay=0.004
        ),
    }


def _wide_product(state: Any) -> Any:
    """Nadam's momentum product in float64, as the Keras-style ``Nadam``
    keeps it for a float64 first variable (a float32 one would round the
    float64 leaves' schedule to float32 at every step)."""
    if hasattr(state, "mu_product"):
        return state._replace(mu_product=state.mu_product.astype(jnp.float64))
    return state


def _scalar_updates(h: Callable[[float], Any], kind: str) -> tuple[dict, dict]:
    """Each transformation's last updates after ``STEPS`` jitted steps on
    ``kind`` params (one program), and its update's count of ``power`` ops."""
    txs = _scalar_transforms(h)
    params = make_params(kind, 0)

    def run(states, t):
        grads = jax.tree.map(lambda p: p * t.astype(p.dtype), params)
        res = {k: tx.update(grads, states[k], params) for k, tx in txs.items()}
        return {k: r[1] for k, r in res.items()}, {k: r[0] for k, r in res.items()}

    states = {k: _wide_product(tx.init(params)) for k, tx in txs.items()}
    step = jax.jit(run)
    for t in range(1, STEPS + 1):
        states, updates = step(states, jnp.asarray(t))
    powers = {
        k: jax.jit(tx.update).lower(params, tx.init(params), params).as_text()
        for k, tx in txs.items()
    }
    return updates, {k: text.count("stablehlo.power") for k, text in powers.items()}


def check_leaf_scalars() -> dict[str, Any]:
    """float32 hyperparameter arrays (as the Keras-style optimizers pass
    them): a float64 leaf gets its scalars in float64, from the float32
    values cast to float64; a float32 leaf gets the float32 scalars, next to
    float64 leaves or not (its numbers agree with a float32 tree's to an ulp:
    XLA turns a division by a scalar that only one leaf uses into a
    multiplication by its reciprocal, as in a one-leaf float32 tree)."""
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    wide = lambda x: jnp.asarray(np.float32(x), jnp.float64)  # noqa: E731
    mixed, mixed_powers = _scalar_updates(f32, "mixed")
    narrow, narrow_powers = _scalar_updates(f32, "f32")
    all_wide, wide_powers = _scalar_updates(f32, "f64")
    reference, _ = _scalar_updates(wide, "f64")  # float64 hyperparameters
    out = {}
    for name in mixed:
        out[name] = dict(
            mat_rel_err=_rel_err(mixed[name]["mat"], reference[name]["mat"]),
            f64_rel_err=max(
                _rel_err(all_wide[name][k], reference[name][k]) for k in ("mat", "vec")
            ),
            vec_rel_err=_rel_err(mixed[name]["vec"], narrow[name]["vec"]),
            dtypes=dtypes(mixed[name]),
            powers={
                "f32": narrow_powers[name],
                "mixed": mixed_powers[name],
                "f64": wide_powers[name],
            },
        )
    return out


# ---------------------------------------------------------------- facade


def check_facade() -> dict[str, Any]:
    from optaxish import mixed_precision
    from optaxish import optimizers as K

    out: dict[str, Any] = {}
    out["variables"] = {
        "python_float": str(ox.Variable(1.0).dtype),
        "python_list": str(ox.Variable([1.0, 2.0]).dtype),
        "python_int": str(ox.Variable(3).dtype),
        "numpy_float64": str(ox.Variable(np.float64(1.5)).dtype),
        "numpy_array": str(ox.Variable(np.array([1.0, 2.0])).dtype),
        "jax_float64": str(ox.Variable(jnp.ones(2, jnp.float64)).dtype),
        "dtype_arg": str(ox.Variable(1.0, dtype=jnp.float64).dtype),
    }
    grads = np.array([0.1, 0.2, -0.3])
    makers = {
        "Adam": lambda: K.Adam(0.01),
        "Adam_amsgrad": lambda: K.Adam(0.01, amsgrad=True),
        "SGD": lambda: K.SGD(0.01, momentum=0.9, nesterov=True),
        "RMSprop": lambda: K.RMSprop(0.01, momentum=0.5, centered=True),
        "Adagrad": lambda: K.Adagrad(0.01),
        "Adadelta": lambda: K.Adadelta(0.5),
        "Adamax": lambda: K.Adamax(0.01),
        "Nadam": lambda: K.Nadam(0.01),
        "Ftrl": lambda: K.Ftrl(
            0.01, l1_regularization_strength=0.01, l2_regularization_strength=0.01
        ),
    }
    for name, make in makers.items():
        out[name] = _guard(lambda m=make: _facade_case(m(), grads))
    for name in ("Adam", "Adamax", "Nadam"):  # the float32 variable first
        out[name + "_f32_first"] = _guard(
            lambda m=makers[name]: _facade_case(m(), grads, f32_first=True)
        )
    out["Nadam_stateless"] = _guard(lambda: _nadam_stateless(grads))
    out["Nadam_transformation"] = _guard(lambda: _nadam_transformation(grads))
    out["LossScaleOptimizer"] = _guard(
        lambda: _lso_case(mixed_precision.LossScaleOptimizer(K.SGD(0.1)))
    )
    return out


def _facade_case(
    opt: Any, grads: np.ndarray, f32_first: bool = False
) -> dict[str, Any]:
    w = ox.Variable(np.array([1.0, -2.0, 3.0]), name="w")  # float64
    b = ox.Variable([0.5, 0.25], name="b")  # float32
    for t in range(STEPS):
        pairs = [(jnp.asarray(grads * (t + 1)), w), (np.float32([0.1, -0.1]), b)]
        opt.apply_gradients(pairs[::-1] if f32_first else pairs)
    slots = {
        s: [str(opt.get_slot(v, s).dtype) for v in (w, b)] for s in opt.get_slot_names()
    }
    config = {
        k: type(v).__name__
        for k, v in opt.get_config().items()
        if not isinstance(v, str | bool | type(None))
    }
    return dict(
        w=[float(x) for x in w.numpy()],
        dtypes=[str(w.dtype), str(b.dtype)],
        slots=slots,
        iterations=str(opt.iterations.dtype),
        config=config,
        weights=[str(np.asarray(x).dtype) for x in opt.get_weights()],
        traces=opt._traces,
    )


def _nadam_stateless(grads: np.ndarray) -> dict[str, Any]:
    """``Nadam.stateless_apply`` over (float64, float32) variables, jitted."""
    from optaxish import optimizers as K

    w = ox.Variable(np.array([1.0, -2.0, 3.0]))
    b = ox.Variable([0.5, 0.25])
    opt = K.Nadam(0.01)
    opt.build([w, b])
    state, values = opt.state, [w.value, b.value]
    first = dtypes(state)
    step = jax.jit(opt.stateless_apply)
    for t in range(STEPS):
        g = [jnp.asarray(grads * (t + 1)), np.float32([0.1, -0.1])]
        values, state = step(state, g, values)
    return dict(
        w=[float(x) for x in values[0]],
        cache=_dtype(state.hyperparams["momentum_cache"]),
        stable=dtypes(state) == first,
        traces=step._cache_size(),
    )


def _nadam_transformation(grads: np.ndarray) -> dict[str, Any]:
    """``Nadam.transformation()`` over a (float64, float32) list, jitted."""
    from optaxish import optimizers as K

    tx = K.Nadam(0.01).transformation()
    params = [jnp.asarray([1.0, -2.0, 3.0]), jnp.float32([0.5, 0.25])]
    state = tx.init(params)
    first = dtypes(state)
    update = jax.jit(tx.update)
    for t in range(STEPS):
        g = [jnp.asarray(grads * (t + 1)), jnp.float32([0.1, -0.1])]
        updates, state = update(g, state, params)
        params = ox.apply_updates(params, updates)
    return dict(
        w=[float(x) for x in params[0]],
        cache=_dtype(state.hyperparams["momentum_cache"]),
        stable=dtypes(state) == first,
        traces=update._cache_size(),
    )


def _lso_case(lso: Any) -> dict[str, Any]:
    w = ox.Variable(np.array([1.0, -2.0]))  # float64
    for g in ([1.0, 2.0], [np.inf, 1.0], [1.0, 1.0]):
        scaled = lso.get_scaled_loss(jnp.asarray(1.0, jnp.float64)) * jnp.asarray(g)
        (unscaled,) = lso.get_unscaled_gradients([scaled])
        lso.apply_gradients([(unscaled, w)])
    return dict(
        w=[float(x) for x in w.numpy()],
        dtype=str(w.dtype),
        loss_scale=_dtype(lso.loss_scale),
        loss_scale_value=float(lso.loss_scale),
        iterations=str(lso.iterations.dtype),
        scaled_loss=_dtype(lso.get_scaled_loss(jnp.asarray(2.0, jnp.float64))),
        unscaled=_dtype(lso.get_unscaled_gradients([jnp.ones(2, jnp.float64)])[0]),
    )


def _guard(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception:  # noqa: BLE001  (reported, not raised)
        return {"error": traceback.format_exc(limit=6)[-2000:]}


def main() -> None:
    report: dict[str, Any] = {"x64": bool(jax.config.jax_enable_x64)}
    for name, check in (
        ("core", check_core),
        ("accumulators", check_accumulator_dtypes),
        ("schedules", check_schedules),
        ("inject", check_inject),
        ("loss_scale", check_loss_scale),
        ("packing", check_packing),
        ("leaf_scalars", check_leaf_scalars),
        ("facade", check_facade),
    ):
        start = time.perf_counter()
        report[name] = _guard(check)
        report.setdefault("seconds", {})[name] = round(time.perf_counter() - start, 2)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
