"""A list mixing decayed and exempt variables (``exclude_from_weight_decay``)
is stepped packed, with the numbers, slots and weights of the unpacked step."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from optaxish import Variable
from optaxish.optimizers import AdamW, Lion
from optaxish.optimizers._masked_decay import _MAX_IOTA_RUNS, _decayed_runs

# Keras' order: kernel, bias per layer, then a norm's scale and offset.
SPECS = [
    ("dense0/kernel", (3, 4)),
    ("dense0/bias", (4,)),
    ("dense1/kernel", (4, 2)),
    ("dense1/bias", (2,)),
    ("ln/gamma", (2,)),
    ("ln/beta", (2,)),
    ("dense2/kernel", (2, 3)),
    ("dense2/bias", (3,)),
]
MAKERS = {
    "adamw": lambda: AdamW(0.05, weight_decay=0.3),
    "adamw_amsgrad": lambda: AdamW(0.05, weight_decay=0.3, amsgrad=True),
    "lion": lambda: Lion(0.05, weight_decay=0.3),
}
# name -> (exclude_from_weight_decay kwargs on the variables, decayed runs)
EXCLUSIONS = {
    "names": (lambda vs: {"var_names": ["bias", "gamma", "beta"]}, 3),
    "list_middle": (lambda vs: {"var_list": [vs[2], vs[3]]}, 2),
    "list_suffix": (lambda vs: {"var_list": vs[4:]}, 1),
    "names_and_list": (lambda vs: {"var_names": ["bias$"], "var_list": [vs[0]]}, 2),
}


def _vars(seed: int = 0, dtypes: tuple = ()) -> list[Variable]:
    rng = np.random.default_rng(seed)
    out = []
    for k, (name, shape) in enumerate(SPECS):
        dtype = dtypes[k] if dtypes else np.float32
        value = rng.normal(size=shape).astype(np.float32)
        out.append(Variable(jnp.asarray(value, dtype), name=name))
    return out


def _grads(t: int, variables: list | None = None) -> list:
    rng = np.random.default_rng(100 + t)
    grads = [rng.normal(size=shape).astype(np.float32) for _, shape in SPECS]
    if variables is None:
        return grads
    return [jnp.asarray(g, v.dtype) for g, v in zip(grads, variables)]


def _bits(x) -> np.ndarray:
    x = np.asarray(x.numpy() if isinstance(x, Variable) else x)
    return np.atleast_1d(x).view(np.uint8)


def _assert_same(a: list, b: list, exact: bool = True) -> None:
    """Bit for bit, or within 1e-6 (AMSGrad: XLA fuses its packed step
    differently, 1 ulp apart on some elements even without exclusions)."""
    for x, y in zip(a, b, strict=True):
        if exact:
            np.testing.assert_array_equal(_bits(x), _bits(y))
        else:
            x = x.numpy() if isinstance(x, Variable) else x
            y = y.numpy() if isinstance(y, Variable) else y
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def _pair(maker: str, exclusion: str, dtypes: tuple = ()):
    """A packed and an unpacked optimizer with the same exclusions, each on
    its own copy of the variables."""
    opts, sets = [], []
    for packing in (True, False):
        vs = _vars(dtypes=dtypes)
        opt = MAKERS[maker]()
        opt.packing = packing
        opt.exclude_from_weight_decay(**EXCLUSIONS[exclusion][0](vs))
        opts.append(opt)
        sets.append(vs)
    return opts, sets


def _slots(opt, variables) -> list:
    return [opt.get_slot(v, s) for v in variables for s in opt.get_slot_names()]


@pytest.mark.parametrize("exclusion", sorted(EXCLUSIONS))
@pytest.mark.parametrize("maker", sorted(MAKERS))
def test_mixed_list_is_packed_with_the_unpacked_numbers(maker, exclusion):
    (packed, plain), (pv, uv) = _pair(maker, exclusion)
    exact = maker != "adamw_amsgrad"
    flags = [packed._use_weight_decay(v) for v in pv]
    assert any(flags) and not all(flags)  # a mixed list
    for t in range(4):
        packed.apply_gradients(zip(_grads(t), pv))
        plain.apply_gradients(zip(_grads(t), uv))
        # Packed: one group of the whole list (before this change: none).
        assert list(packed._groups) == [tuple(range(len(SPECS)))]
        assert not plain._groups
        _assert_same(pv, uv, exact)
    group = packed._groups[tuple(range(len(SPECS)))]
    runs = _decayed_runs(group.layout, tuple(flags))
    assert len(runs[0]) == EXCLUSIONS[exclusion][1]
    # Slots (dissolving the group), then more steps (packed again).
    _assert_same(_slots(packed, pv), _slots(plain, uv), exact)
    for t in range(4, 7):
        packed.apply_gradients(zip(_grads(t), pv))
        plain.apply_gradients(zip(_grads(t), uv))
    assert packed._groups
    _assert_same(pv, uv, exact)
    _assert_same(_slots(packed, pv), _slots(plain, uv), exact)
    assert packed._traces == plain._traces == 1


def test_both_mask_forms_are_exercised():
    # `list_middle` and `list_suffix` compare with an iota, `names` takes a
    # constant mask (see `_run_mask`).
    assert EXCLUSIONS["list_middle"][1] <= _MAX_IOTA_RUNS
    assert EXCLUSIONS["list_suffix"][1] <= _MAX_IOTA_RUNS
    assert EXCLUSIONS["names"][1] > _MAX_IOTA_RUNS


def test_mixed_dtypes_pack_per_buffer():
    # Two buffers: float32 decayed/exempt mixed; bfloat16 exempt only, then
    # mixed; the numbers are the unpacked step's in each.
    dtypes = tuple(jnp.bfloat16 if k % 4 == 1 else jnp.float32 for k in range(8))
    for exclusion in ("names", "list_middle"):
        (packed, plain), (pv, uv) = _pair("adamw", exclusion, dtypes)
        for t in range(3):
            packed.apply_gradients(zip(_grads(t, pv), pv))
            plain.apply_gradients(zip(_grads(t, uv), uv))
        assert packed._groups
        assert len(next(iter(packed._groups.values())).layout.dtypes) == 2
        _assert_same(pv, uv)
        _assert_same(_slots(packed, pv), _slots(plain, uv))


def test_no_retrace_when_hyperparameters_change():
    (packed, plain), (pv, uv) = _pair("adamw", "names")
    for t in range(3):
        for opt in (packed, plain):
            opt.learning_rate = 0.05 * (t + 1)
            opt.weight_decay = 0.1 * t
        packed.apply_gradients(zip(_grads(t), pv))
        plain.apply_gradients(zip(_grads(t), uv))
    assert packed._groups
    assert packed._traces == 1
    _assert_same(pv, uv)


def test_minimize_packs_a_mixed_list():
    (packed, plain), (pv, uv) = _pair("lion", "names")
    c = [Variable(np.zeros(shape, np.float32)) for _, shape in SPECS]

    def loss_of(variables):
        return lambda: sum(jnp.sum(v.value * g.value) for v, g in zip(variables, c))

    losses = [(packed, pv, loss_of(pv)), (plain, uv, loss_of(uv))]
    for t in range(3):
        for g, value in zip(c, _grads(t)):
            g.assign(value)
        for opt, variables, loss in losses:
            opt.minimize(loss, variables)
    assert packed._groups
    assert packed._traces == 1
    _assert_same(pv, uv)
    _assert_same(_slots(packed, pv), _slots(plain, uv))


def test_weights_round_trip_and_order():
    (packed, plain), (pv, uv) = _pair("adamw_amsgrad", "names")
    for t in range(2):
        packed.apply_gradients(zip(_grads(t), pv))
        plain.apply_gradients(zip(_grads(t), uv))
    pw, uw = packed.get_weights(), plain.get_weights()
    assert [w.name for w in packed.variables] == [w.name for w in plain.variables]
    _assert_same(pw, uw, exact=False)
    # Into a fresh optimizer over fresh variables: the same steps follow.
    fresh_vars = _vars()
    for v, w in zip(fresh_vars, pv):
        v.assign(w.numpy())
    fresh = MAKERS["adamw_amsgrad"]()
    fresh.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    fresh.build(fresh_vars)
    fresh.set_weights(pw)
    for t in range(2, 5):
        fresh.apply_gradients(zip(_grads(t), fresh_vars))
        plain.apply_gradients(zip(_grads(t), uv))
    assert fresh._groups
    _assert_same(fresh_vars, uv, exact=False)
    _assert_same(fresh.get_weights(), plain.get_weights(), exact=False)


def test_exclusions_after_build_still_raise_and_change_nothing():
    (packed, _), (pv, _) = _pair("adamw", "names")
    packed.apply_gradients(zip(_grads(0), pv))
    before = [v.numpy().copy() for v in pv]
    with pytest.raises(ValueError, match="before the optimizer is built"):
        packed.exclude_from_weight_decay(var_names=["kernel"])
    assert [packed._use_weight_decay(v) for v in pv] == [
        "bias" not in n and "gamma" not in n and "beta" not in n for n, _ in SPECS
    ]
    _assert_same(pv, before)
    assert packed._groups


def test_uniform_lists_keep_their_groups():
    # All exempt, or all decayed: packed as before, one decay for the group.
    for exempt in (True, False):
        vs, ref_vars = _vars(), _vars()
        opt, ref = AdamW(0.05, weight_decay=0.3), AdamW(0.05, weight_decay=0.3)
        ref.packing = False
        for o, v in ((opt, vs), (ref, ref_vars)):
            o.exclude_from_weight_decay(var_list=v[4:] if exempt else v[:4])
            o.apply_gradients(zip(_grads(0)[4:], v[4:]))
            o.apply_gradients(zip(_grads(1)[4:], v[4:]))
        assert list(opt._groups) == [(0, 1, 2, 3)]
        _assert_same(vs, ref_vars)
        _assert_same(opt.get_weights(), ref.get_weights())
