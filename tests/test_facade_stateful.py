"""Stateful property test of the facade: random sequences of calls on an
optimizer that packs its variables agree with the same calls on one that
never packs.

The packed engine regroups variables when the stepped list changes, dissolves
a group when one variable is read or assigned on its own, and reuses compiled
steps and plans across calls. Each of those paths must give the numbers of the
plain per-variable step, which the tf-keras parity suites pin down. Hypothesis
draws the call sequences (which variables each step touches, gradients,
learning-rate changes, slot reads, assignments, weight round trips, reads
under ``jit``, switching packing off and on, a second optimizer stepping the
same variables) and shrinks a failure to a short sequence.
"""

from __future__ import annotations

import copy
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from optaxish import Variable, optimizers

_SHAPES = [(3,), (2, 2), (), (5,)]
_SUBSETS = st.lists(
    st.integers(0, len(_SHAPES) - 1), min_size=1, max_size=len(_SHAPES), unique=True
)
_FACTORIES = {
    "adam": lambda: optimizers.Adam(0.05),
    "sgd_nesterov": lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "rmsprop_centered": lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    "adamw": lambda: optimizers.AdamW(0.05, weight_decay=0.01),
}


def _twin_variables(tag: str) -> list[Variable]:
    rng = np.random.default_rng(0)
    return [
        Variable(rng.normal(size=s).astype(np.float32), name=f"{tag}{i}")
        for i, s in enumerate(_SHAPES)
    ]


def _close(a, b) -> None:
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-6, atol=1e-7)


def _machine(factory):
    class PackedAgreesWithUnpacked(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.packed, self.plain = factory(), factory()
            self.plain.packing = False
            # A second optimizer over the same variables (it takes packed
            # variables back from the first).
            self.other_packed = optimizers.SGD(0.01, momentum=0.5)
            self.other_plain = optimizers.SGD(0.01, momentum=0.5)
            self.other_plain.packing = False
            self.pv, self.uv = _twin_variables("p"), _twin_variables("u")
            self.losses: dict[tuple, tuple] = {}
            self.stepped = False

        def _pairs(self, subset, seed, which):
            rng = np.random.default_rng(seed)
            grads = [rng.normal(size=_SHAPES[i]).astype(np.float32) for i in subset]
            variables = self.pv if which == "packed" else self.uv
            return [(jnp.asarray(g), variables[i]) for g, i in zip(grads, subset)]

        @rule(subset=_SUBSETS, seed=st.integers(0, 2**16))
        def apply(self, subset, seed):
            self.packed.apply_gradients(self._pairs(subset, seed, "packed"))
            self.plain.apply_gradients(self._pairs(subset, seed, "plain"))
            self.stepped = True

        @rule(subset=_SUBSETS, seed=st.integers(0, 2**16))
        def other_optimizer_steps(self, subset, seed):
            self.other_packed.apply_gradients(self._pairs(subset, seed, "packed"))
            self.other_plain.apply_gradients(self._pairs(subset, seed, "plain"))

        @rule(subset=_SUBSETS)
        def minimize(self, subset):
            # One loss per list, from one lambda expression: five lists used
            # for the first time in a row look like the retrace pattern.
            warnings.filterwarnings("ignore", "The last 5 `minimize` calls")
            key = tuple(subset)
            if key not in self.losses:  # one loss function per list: compiled once
                pv = [self.pv[i] for i in subset]
                uv = [self.uv[i] for i in subset]
                self.losses[key] = tuple(
                    (
                        lambda vs=vs: sum(
                            jnp.sum(jnp.sin(v.value) * (k + 1))
                            for k, v in enumerate(vs)
                        ),
                        vs,
                    )
                    for vs in (pv, uv)
                )
            (p_loss, pv), (u_loss, uv) = self.losses[key]
            self.packed.minimize(p_loss, pv)
            self.plain.minimize(u_loss, uv)
            self.stepped = True

        @rule(lr=st.floats(1e-4, 0.2))
        def set_learning_rate(self, lr):
            self.packed.learning_rate = lr
            self.plain.learning_rate = lr

        @rule(index=st.integers(0, len(_SHAPES) - 1), data=st.data())
        def read_slot(self, index, data):
            names = self.plain.get_slot_names()
            if not names:
                return
            name = data.draw(st.sampled_from(names))
            got = []
            for opt, variables in ((self.packed, self.pv), (self.plain, self.uv)):
                try:
                    got.append(opt.get_slot(variables[index], name))
                except KeyError:  # not stepped yet: both must say so
                    got.append(None)
            assert (got[0] is None) == (got[1] is None)
            if got[1] is not None:
                _close(got[0], got[1])

        @rule(index=st.integers(0, len(_SHAPES) - 1), value=st.floats(-2, 2))
        def assign(self, index, value):
            self.pv[index].assign(jnp.full(_SHAPES[index], value, jnp.float32))
            self.uv[index].assign(jnp.full(_SHAPES[index], value, jnp.float32))

        @rule(index=st.integers(0, len(_SHAPES) - 1))
        def read_in_jit(self, index):
            got = jax.jit(lambda: self.pv[index].value * 2)()
            _close(got, self.uv[index].numpy() * 2)

        @rule()
        def weights_round_trip(self):
            if not self.stepped:
                return
            self.packed.set_weights(self.packed.get_weights())
            self.plain.set_weights(copy.deepcopy(self.plain.get_weights()))

        @rule(on=st.booleans())
        def toggle_packing(self, on):
            self.packed.packing = on

        @invariant()
        def same_numbers(self):
            for p, u in zip(self.pv, self.uv):
                _close(p.numpy(), u.numpy())
            assert int(self.packed.iterations) == int(self.plain.iterations)
            for mine, theirs in (
                (self.packed, self.plain),
                (self.other_packed, self.other_plain),
            ):
                pw, uw = mine.get_weights(), theirs.get_weights()
                assert len(pw) == len(uw)
                for a, b in zip(pw, uw):
                    _close(a, b)

    PackedAgreesWithUnpacked.TestCase.settings = settings(
        max_examples=8,
        stateful_step_count=10,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    return PackedAgreesWithUnpacked


TestAdam = _machine(_FACTORIES["adam"]).TestCase
TestSGDNesterov = _machine(_FACTORIES["sgd_nesterov"]).TestCase
TestRMSpropCentered = _machine(_FACTORIES["rmsprop_centered"]).TestCase
TestAdamW = _machine(_FACTORIES["adamw"]).TestCase
