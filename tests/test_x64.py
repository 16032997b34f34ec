"""Float64 parameters and x64 mode (``jax_enable_x64``).

The checks run in one subprocess with x64 on from the start
(``tests/_x64_checks.py``); this process keeps x64 off, as other tests need.
Two cases: float64 parameters, and float32 parameters in x64 mode, where a
float64 scalar can promote float32 updates (and double their memory).

Reference behaviour: optax 0.2.8 for the core (its state dtypes and, for
float64, its numbers to 1e-12); tf-keras for the facade, whose float64
variables get float64 slots while hyperparameters are float32 variables cast
to the variable's dtype (the literals below come from
``tf_keras.optimizers.legacy.<Name>(...).apply_gradients`` on a float64
``tf.Variable([1.0, -2.0, 3.0])`` with gradients ``[0.1, 0.2, -0.3] * t`` for
``t = 1, 2, 3``; TensorFlow 2.21).
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optaxish as ox
from tests._subprocess_report import run_report
from tests.conformance import ALL

SCRIPT = pathlib.Path(__file__).with_name("_x64_checks.py")
IDS = [f"{i:02d}-{e.name}" for i, e in enumerate(ALL)]
TREES = ("f64", "f32", "mixed")
# Documented deviations from optax's numbers: rprop emits the step just
# computed (optax's lags one step; `scale_by_rprop`'s docstring).
NUMBERS_DIFFER = {"rprop", "scale_by_rprop"}
# optax's `monitor` starts without the measurements in its state (they appear
# after the first step, so a jitted step compiles twice); ours fills them in
# `init` (its docstring).
STATE_DIFFERS = {"monitor"}


@pytest.fixture(scope="module")
def report() -> dict:
    report = run_report(SCRIPT, {"JAX_ENABLE_X64": "1"})
    assert report["x64"] is True
    return report


def _section(report: dict, name: str) -> dict:
    section = report[name]
    assert "error" not in section, section["error"]
    return section


def _entry(report: dict, entry_id: str) -> dict:
    return _section(report, "core")["entries"][entry_id]


# ---------------------------------------------------------------- core


@pytest.mark.parametrize("entry_id", IDS)
def test_core_updates_keep_each_param_dtype(report, entry_id):
    """float64 params give float64 updates; float32 ones stay float32, even
    next to float64 leaves and with Python-float hyperparameters (which are
    float64 in x64 mode)."""
    for kind in TREES:
        case = _entry(report, entry_id)[kind]
        assert "error" not in case, case["error"]
        assert case["params"] == case["updates"], (kind, case)
        assert not any(d.endswith("*") for d in case["updates"].values()), kind


@pytest.mark.parametrize("entry_id", IDS)
def test_core_state_dtypes_are_stable(report, entry_id):
    """Dtypes and weak types of the state are those of ``init`` after one and
    two steps: a jitted step traces once (an int32 count turning int64, or a
    weak scalar turning strong, would retrace it)."""
    for kind in TREES:
        case = _entry(report, entry_id)[kind]
        assert case["state_init"] == case["state_1"] == case["state_2"], kind
        counts = {k: d for k, d in case["state_init"].items() if "int" in d}
        assert set(counts.values()) <= {"int32"}, counts


@pytest.mark.parametrize("entry_id", IDS)
def test_core_state_dtypes_match_optax(report, entry_id):
    entry = _entry(report, entry_id)
    if entry_id.split("-", 1)[1] in STATE_DIFFERS:
        pytest.skip("documented deviation")
    for kind in TREES:
        theirs = entry.get(kind + "_optax_state_init")
        if theirs is None:
            pytest.skip("optax has no such transformation")
        assert "error" not in theirs, theirs
        assert entry[kind]["state_init"] == theirs, kind


@pytest.mark.parametrize("entry_id", IDS)
def test_core_float64_numbers_match_optax(report, entry_id):
    entry = _entry(report, entry_id)
    if "f64_rel_err" not in entry:
        pytest.skip("optax has no such transformation")
    if entry_id.split("-", 1)[1] in NUMBERS_DIFFER:
        assert entry["f64_rel_err"] > 1e-3  # the deviation is still there
        return
    assert entry["f64_rel_err"] <= 1e-12


def test_core_one_program_traced_once(report):
    assert _section(report, "core")["traces"] == 1


def test_wider_accumulator_keeps_float32_updates(report):
    # Before the fix, `trace` and `ema` returned their float64 buffer as the
    # updates (as optax does): float32 params got float64 updates.
    for name, case in _section(report, "accumulators").items():
        assert "error" not in case, (name, case["error"])
        assert set(case["updates"].values()) == {"float32"}, name
        assert case["state_init"] == case["state_1"] == case["state_2"], name
        assert "float64" in case["state_init"].values(), name


@pytest.mark.parametrize(
    "make",
    [
        lambda: ox.trace(0.9, accumulator_dtype=jnp.float32),
        lambda: ox.trace(0.9, nesterov=True, accumulator_dtype=jnp.float32),
        lambda: ox.ema(0.9, accumulator_dtype=jnp.float32),
        lambda: ox.sgd(0.1, momentum=0.9, accumulator_dtype=jnp.float32),
        lambda: ox.signum(0.1, accumulator_dtype=jnp.float32),
        lambda: ox.adafactor(0.1, momentum=0.9),  # dtype_momentum=float32
    ],
    ids=["trace", "trace_nesterov", "ema", "sgd", "signum", "adafactor"],
)
def test_wider_accumulator_keeps_bf16_updates(make):
    # The same bug without x64: a float32 buffer promoted bf16 updates.
    params = {"w": jnp.ones((2, 3), jnp.bfloat16), "b": jnp.ones(3, jnp.bfloat16)}
    tx = make()
    state = tx.init(params)
    for _ in range(2):
        updates, state = jax.jit(tx.update)(params, state, params)
        assert {u.dtype for u in jax.tree.leaves(updates)} == {jnp.dtype("bfloat16")}


def test_wider_accumulator_keeps_its_numbers():
    """The buffer keeps its precision; only the output is rounded."""
    params = jnp.ones(3, jnp.bfloat16)
    grads = jnp.asarray([0.1, 0.2, 0.3], jnp.bfloat16)
    wide = ox.trace(0.9, accumulator_dtype=jnp.float32)
    state = wide.init(params)
    for _ in range(3):
        updates, state = wide.update(grads, state)
    g = np.asarray(grads, np.float32)
    expected = g * (1 + 0.9 + np.float32(0.9) ** 2)
    np.testing.assert_allclose(np.asarray(state.trace), expected, rtol=1e-6)
    np.testing.assert_array_equal(
        np.asarray(updates), np.asarray(state.trace.astype(jnp.bfloat16))
    )


# ---------------------------------------------------------------- schedules


def test_schedules_return_float32_in_x64_mode(report):
    """Documented: float32 whatever the count type (optax gives float64)."""
    for name, case in _section(report, "schedules").items():
        for count in ("int", "int32", "int64", "jit_int64"):
            assert case[count] == "float32", (name, count)


def test_inject_hyperparams_dtypes(report):
    inject = _section(report, "inject")
    for name, case in inject.items():
        assert "error" not in case, (name, case["error"])
        ours, theirs = case["ours"], case["optax"]
        assert ours["traces"] == 1, name
        assert ours["state_init"] == ours["state"], name
        assert ours["state_init"][".count"] == "int32", name
        # The same state dtypes as optax, for float64, float32 and mixed trees.
        assert ours["state_init"] == theirs["state_init"], name
        kind = name.split("/")[1]
        wide = "float32" if kind == "f32" else "float64"
        narrow = "float64" if kind == "f64" else "float32"
        assert ours["updates"] == {"['mat']": wide, "['vec']": narrow}, name
    # optax's float64 hyperparameters (a mixed tree is 64-bit) promote the
    # float32 leaf's updates; ours keep it float32 (CHANGELOG: updates keep
    # the gradient dtype everywhere).
    assert inject["adam/mixed"]["optax"]["updates"]["['vec']"] == "float64"
    # float64 hyperparameters for float64 params (documented); a schedule's
    # value stays float32.
    state = inject["adam_scheduled/f64"]["ours"]["state_init"]
    assert state[".hyperparams['learning_rate']"] == "float32"
    assert state[".hyperparams['b1']"] == "float64"
    for kind in TREES:
        state = inject[f"adam/{kind}"]["ours"]["state_init"]
        expected = "float32" if kind == "f32" else "float64"
        assert state[".hyperparams['learning_rate']"] == expected, kind


def test_inject_hyperparams_float64_numbers_match_optax(report):
    inject = _section(report, "inject")
    for name in ("adam/f64", "adam/mixed", "adam_scheduled/f64", "sgd/f64"):
        errors = inject[name]["ours"]["rel_err"]
        assert max(errors.values()) <= 1e-12, (name, errors)
    # float32 leaves of the mixed tree: float64 hyperparameters (mixed trees
    # are 64-bit), the same as optax.
    assert inject["adam/mixed"]["ours"]["rel_err"]["vec"] <= 1e-12


# ---------------------------------------------------------------- loss scale


def test_loss_scale_fields_stay_float32_and_int32(report):
    ls = _section(report, "loss_scale")
    expected = {
        ".loss_scale": "float32",
        ".counter": "int32",
        ".period": "int32",
        ".factor": "float32",
        ".min_loss_scale": "float32",
        ".max_loss_scale": "float32",
    }
    for name in ("default", "from_x64_arrays", "adjusted", "eager_adjusted"):
        assert ls[name] == expected, name
    assert ls["static"] == {".loss_scale": "float32"}
    assert ls["adjust_traces"] == 1
    assert ls["scales"] == [16.0, 32.0, 16.0, 16.0]


def test_loss_scaling_wrapper_in_x64_mode(report):
    ls = _section(report, "loss_scale")
    for kind in TREES:
        case = ls[f"wrapper/{kind}"]
        assert "error" not in case, (kind, case["error"])
        assert case["traces"] == 1, kind
        assert case["state_init"] == case["state"], kind
        scale_fields = {
            k: d for k, d in case["state_init"].items() if not k.startswith(".inner")
        }
        assert set(scale_fields.values()) == {"float32", "int32"}, kind
        assert case["skipped"] == 1 and case["scale"] == 2.0**14, kind
        wide = "float32" if kind == "f32" else "float64"
        assert case["updates"]["['mat']"] == wide, kind
        assert case["scaled_loss"] == wide, kind
        # Two applied steps equal plain adam's (the skipped one changes
        # nothing; the scale is a power of two, so unscaling is exact).
        assert max(case["rel_err"].values()) <= (1e-6 if kind == "f32" else 1e-12)


# ---------------------------------------------------------------- packing


def test_packed_float64_and_mixed_trees(report):
    packing = _section(report, "packing")
    buffers = {"f64": ["float64"], "f32": ["float32"], "mixed": ["float64", "float32"]}
    for kind in TREES:
        case = packing[kind]
        assert "error" not in case, (kind, case["error"])
        assert case["layout"] == case["buffers"] == case["updates"] == buffers[kind]
        assert case["unpacked"] == {
            "['mat']": "float32" if kind == "f32" else "float64",
            "['vec']": "float64" if kind == "f64" else "float32",
        }
        assert case["state_init"] == case["state"], kind
        assert case["traces"] == 1, kind
        tol = {"f64": 1e-12, "f32": 1e-6, "mixed": 1e-6}[kind]
        assert max(case["rel_err"].values()) <= tol, kind
    assert packing["mixed"]["rel_err"]["mat"] <= 1e-12


# ------------------------------------------------- float32 hyperparameters

LEAF_SCALAR_NAMES = [
    "adam",
    "adam_epsilon_hat",
    "amsgrad",
    "amsgrad_epsilon_hat",
    "adamax",
    "nadam_scheduled",
]


@pytest.mark.parametrize("name", LEAF_SCALAR_NAMES)
def test_float64_leaves_get_float64_scalars(report, name):
    """float32 hyperparameter arrays: a float64 leaf's bias corrections (and
    Nadam's schedule) are those of the float32 values cast to float64 (they
    were float32: ~1e-6 off after three steps here); a float32 leaf keeps the
    float32 ones, next to a float64 leaf or not (to an ulp: see the check)."""
    case = _section(report, "leaf_scalars")[name]
    assert "error" not in case, case["error"]
    assert case["mat_rel_err"] <= 1e-13  # float64 leaf of a mixed tree
    assert case["f64_rel_err"] <= 1e-13  # a float64 tree
    assert case["vec_rel_err"] <= 3e-7  # the float32 leaf
    assert case["dtypes"] == {"['mat']": "float64", "['vec']": "float32"}


@pytest.mark.parametrize("name", LEAF_SCALAR_NAMES)
def test_scalars_computed_once_per_precision(report, name):
    """The float32 scalars are computed once for all float32 leaves (as
    before: the same program), and once more in float64 for the float64
    leaves together."""
    powers = _section(report, "leaf_scalars")[name]["powers"]
    assert powers["mixed"] == 2 * powers["f32"] > 0
    assert powers["f64"] <= powers["mixed"]


# ---------------------------------------------------------------- facade

# tf-keras float64 trajectories (see the module docstring).
TF_KERAS_FLOAT64 = {
    "Adam": [0.970768701690043, -2.0292315651632093, 3.029231654115695],
    "Adam_amsgrad": [0.970768701690043, -2.0292315651632093, 3.029231654115695],
    "SGD": [0.9854410006551518, -2.029117998689696, 3.043676998034544],
    "RMSprop": [0.8649690687220527, -2.1350339048098186, 3.1350344554986593],
    "Adagrad": [0.9856971882144373, -2.0200336776116283, 3.0226903028583005],
    "Adadelta": [0.9973119669938137, -2.0026881867083617, 3.0026882151755157],
    "Adamax": [0.9754680686216074, -2.0245319394363395, 3.024531942122323],
    "Nadam": [0.9701880406716284, -2.0298119698807637, 3.0298119733982296],
    "Ftrl": [0.03191220100880208, -0.32928526571150524, 0.8456478772882201],
}
# The same with the float32 variable first (``apply_gradients([(g_b, b),
# (g_w, w)])``): Nadam's momentum cache is then float32 (tf-keras creates it
# in the first variable's dtype), which moves the float64 trajectory.
TF_KERAS_FLOAT32_FIRST = {
    "Adam": TF_KERAS_FLOAT64["Adam"],
    "Adamax": TF_KERAS_FLOAT64["Adamax"],
    "Nadam": [0.9701880405806905, -2.0298119699717017, 3.0298119734891675],
}


def test_facade_variable_dtypes(report):
    """Python numbers give float32/int32 variables whatever x64 says (as
    tf.Variable); NumPy and JAX float64 data stay float64."""
    assert _section(report, "facade")["variables"] == {
        "python_float": "float32",
        "python_list": "float32",
        "python_int": "int32",
        "numpy_float64": "float64",
        "numpy_array": "float64",
        "jax_float64": "float64",
        "dtype_arg": "float64",
    }


@pytest.mark.parametrize("name", sorted(TF_KERAS_FLOAT64))
def test_facade_float64_slots_and_counters(report, name):
    case = _section(report, "facade")[name]
    assert "error" not in case, case["error"]
    assert case["dtypes"] == ["float64", "float32"]
    for slot, slot_dtypes in case["slots"].items():
        assert slot_dtypes == ["float64", "float32"], slot
    assert case["iterations"] == "int32"  # documented: tf-keras has int64
    assert case["weights"][0] == "int64"  # get_weights gives tf-keras' int64
    assert set(case["config"].values()) == {"float"}


@pytest.mark.parametrize("name", sorted(TF_KERAS_FLOAT64))
def test_facade_float64_numbers_match_tf_keras(report, name):
    # Adam's, Adamax's and Nadam's bias corrections (and Nadam's schedule)
    # are computed in float64 for a float64 variable, from the float32
    # hyperparameters cast to float64, as tf-keras does (they were float32
    # scalars for the whole step: ~5e-9 off).
    case = _section(report, "facade")[name]
    assert "error" not in case, case["error"]
    np.testing.assert_allclose(case["w"], TF_KERAS_FLOAT64[name], rtol=1e-12)
    assert case["traces"] == 1


@pytest.mark.parametrize("name", sorted(TF_KERAS_FLOAT32_FIRST))
def test_facade_float64_numbers_with_float32_variable_first(report, name):
    case = _section(report, "facade")[name + "_f32_first"]
    assert "error" not in case, case["error"]
    np.testing.assert_allclose(case["w"], TF_KERAS_FLOAT32_FIRST[name], rtol=1e-12)
    assert case["traces"] == 1


def test_facade_nadam_momentum_cache_follows_first_variable(report):
    # tf-keras' Nadam creates `momentum_cache` in the first variable's dtype:
    # [iter int64, momentum_cache float64, m, m, v, v] for (float64, float32),
    # float32 for (float32, float64).
    facade = _section(report, "facade")
    assert facade["Nadam"]["weights"][:2] == ["int64", "float64"]
    assert facade["Nadam_f32_first"]["weights"][:2] == ["int64", "float32"]


@pytest.mark.parametrize("how", ["stateless", "transformation"])
def test_facade_nadam_functional_float64(report, how):
    """``stateless_apply`` and ``transformation()`` keep the float64 cache
    (the first leaf's dtype for ``transformation()``), trace once and give
    tf-keras' numbers."""
    case = _section(report, "facade")["Nadam_" + how]
    assert "error" not in case, case["error"]
    assert case["cache"] == "float64"
    assert case["stable"] and case["traces"] == 1
    np.testing.assert_allclose(case["w"], TF_KERAS_FLOAT64["Nadam"], rtol=1e-12)


def test_loss_scale_optimizer_with_float64_variables(report):
    case = _section(report, "facade")["LossScaleOptimizer"]
    assert "error" not in case, case["error"]
    assert case["dtype"] == "float64"
    assert case["loss_scale"] == "float32" and case["loss_scale_value"] == 2.0**14
    assert case["scaled_loss"] == case["unscaled"] == "float64"
    assert case["iterations"] == "int32"
    # SGD(0.1) on [1, 2] and [1, 1] (the inf step skipped); like tf-keras the
    # float32 learning rate is cast to float64.
    lr = float(np.float32(0.1))
    np.testing.assert_allclose(case["w"], [1 - 2 * lr, -2 - 3 * lr], rtol=1e-15)
