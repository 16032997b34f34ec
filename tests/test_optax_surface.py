"""``import optaxish as optax``: every optimizer-side name of optax's top level is
here, with optax's argument names (in order) and defaults.

What optaxish leaves out on purpose is listed in ``NOT_PROVIDED`` (and in the
README); a new optax release that adds a name makes this test fail until the name
is either provided or listed.
"""

from __future__ import annotations

import inspect
import types

import pytest

import optaxish as ox

optax = pytest.importorskip("optax")

# Not optimizer code: losses, sub-packages, line searches and L-BFGS (which need
# the loss function inside the update), and numerical-linear-algebra helpers.
NOT_PROVIDED = {
    # losses (optax.losses)
    "convex_kl_divergence", "cosine_distance", "cosine_similarity", "ctc_loss",
    "ctc_loss_with_forward_probs", "generalized_kl_divergence", "hinge_loss",
    "huber_loss", "kl_divergence", "l2_loss", "log_cosh", "ntxent",
    "safe_softmax_cross_entropy", "sigmoid_binary_cross_entropy",
    "sigmoid_focal_loss", "smooth_labels", "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels", "squared_error",
    # sub-packages
    "assignment", "contrib", "experimental", "losses", "microbatching",
    "perturbations", "projections", "second_order",
    # line searches and L-BFGS
    "lbfgs", "scale_by_lbfgs", "ScaleByLBFGSState", "scale_by_backtracking_linesearch",
    "ScaleByBacktrackingLinesearchState", "scale_by_zoom_linesearch",
    "ScaleByZoomLinesearchState", "ZoomLinesearchInfo", "value_and_grad_from_state",
    # linear algebra and sampling helpers
    "matrix_inverse_pth_root", "multi_normal", "nnls", "power_iteration",
    "microbatch",
}  # fmt: skip

# Signature differences we keep, with the reason.
SIGNATURE_DEVIATIONS = {
    # The var-positional argument's name cannot matter to a caller.
    "chain": "*transforms",
    "named_chain": "*transforms",
    # Weight-decay schedules need a step count in the state.
    "AddDecayedWeightsState": "count field",
    # Stateful schedules as hyperparameters keep their states here.
    "InjectHyperparamsState": "hyperparams_states field",
    # The same decay-rate function, defined in our module.
    "scale_by_factored_rms": "decay_rate_fn default",
    # optax's default (None) means identity(), which makes adadelta climb; ours
    # takes None as a unit descent step, so it is not a silent default.
    "scale_by_learning_rate": "learning_rate required",
}


def _optax_names() -> list[str]:
    return sorted(n for n in dir(optax) if not n.startswith("_"))


def test_every_optimizer_name_is_provided():
    missing = [
        n for n in _optax_names() if n not in NOT_PROVIDED and not hasattr(ox, n)
    ]
    assert not missing, f"optax names missing from optaxish: {missing}"


def test_not_provided_lists_only_real_optax_names():
    # A stale entry would hide nothing, but it would mislead the README's list.
    assert NOT_PROVIDED <= set(_optax_names())


def _parameters(obj) -> dict[str, inspect.Parameter] | None:
    if isinstance(obj, types.ModuleType) or not callable(obj):
        return None
    try:
        return dict(inspect.signature(obj).parameters)
    except (TypeError, ValueError):
        return None


def _same_default(a, b) -> bool:
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:
        return False


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in _optax_names()
        if n not in NOT_PROVIDED and n not in SIGNATURE_DEVIATIONS
    ],
)
def test_argument_names_and_defaults_match_optax(name):
    theirs, ours = _parameters(getattr(optax, name)), _parameters(getattr(ox, name))
    if theirs is None or ours is None:
        return  # constants, modules and typing aliases
    assert list(ours)[: len(theirs)] == list(theirs), (
        f"{name}: optax takes {list(theirs)}, optaxish {list(ours)}"
    )
    for arg, p in theirs.items():
        assert (p.default is inspect.Parameter.empty) == (
            ours[arg].default is inspect.Parameter.empty
        ), f"{name}({arg}): optax default {p.default!r}, ours {ours[arg].default!r}"
        if p.default is not inspect.Parameter.empty:
            assert _same_default(p.default, ours[arg].default), (
                f"{name}({arg}): optax default {p.default!r}, ours {ours[arg].default!r}"
            )
    # Our additions come after optax's arguments and are optional.
    for arg in list(ours)[len(theirs) :]:
        kind = ours[arg].kind
        assert kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or (
            ours[arg].default is not inspect.Parameter.empty
        ), f"{name}: extra argument {arg!r} must be optional"


@pytest.mark.parametrize("name", sorted(SIGNATURE_DEVIATIONS))
def test_signature_deviations_are_still_real(name):
    # When optax or we change, the allowance must go.
    theirs, ours = _parameters(getattr(optax, name)), _parameters(getattr(ox, name))
    assert theirs is not None and ours is not None
    same_names = list(ours)[: len(theirs)] == list(theirs)
    same_defaults = same_names and all(
        _same_default(p.default, ours[a].default) for a, p in theirs.items()
    )
    extra_required = any(
        ours[a].default is inspect.Parameter.empty
        and ours[a].kind not in (inspect.Parameter.VAR_POSITIONAL,)
        for a in list(ours)[len(theirs) :]
    )
    assert not (same_defaults and not extra_required), name


# -- optax's sub-packages that optaxish mirrors ------------------------------------

SUBPACKAGES = ("transforms", "schedules", "tree", "tree_utils")


@pytest.mark.parametrize("package", SUBPACKAGES)
def test_every_name_of_the_mirrored_subpackages_is_provided(package):
    # `optax.transforms.partition(...)` must run under `import optaxish as optax`.
    theirs, ours = getattr(optax, package), getattr(ox, package)
    missing = [
        n
        for n in dir(theirs)
        if not n.startswith("_")
        and not isinstance(getattr(theirs, n), types.ModuleType)
        and not hasattr(ours, n)
    ]
    assert not missing, f"optax.{package} names missing from optaxish.{package}"


@pytest.mark.parametrize("name", ["chain", "partition", "MultiSteps", "masked"])
def test_transforms_gives_the_top_level_combinators(name):
    assert getattr(ox.transforms, name) is getattr(ox, name)
    assert name in dir(ox.transforms)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ox.transforms.nope  # noqa: B018


def test_unitwise_norm_and_clip_match_optax():
    import jax
    import numpy as np

    rng = np.random.default_rng(0)
    for shape in [(), (5,), (1, 7), (3, 4), (2, 3, 4), (3, 3, 2, 4), (2, 2, 2, 3, 4)]:
        x = rng.normal(size=shape).astype(np.float32)
        np.testing.assert_allclose(
            ox.transforms.unitwise_norm(x), optax.transforms.unitwise_norm(x), rtol=1e-6
        )
    x = rng.normal(size=(3, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(
        ox.transforms.unitwise_norm(x, axis=(1, 2)),
        optax.transforms.unitwise_norm(x, axis=(1, 2)),
        rtol=1e-6,
    )
    g = rng.normal(size=(6,)).astype(np.float32)
    g_norm, max_norm = np.abs(g), np.full(6, 0.5, np.float32)
    np.testing.assert_array_equal(
        ox.transforms.unitwise_clip(g_norm, max_norm, g),
        optax.transforms.unitwise_clip(g_norm, max_norm, g),
    )
    jax.jit(ox.transforms.unitwise_clip)(g_norm, max_norm, g)  # traceable
    with pytest.raises(ValueError, match="`max_norm` must have the shape of `grad`"):
        ox.transforms.unitwise_clip(g_norm, np.ones(3), g)
    with pytest.raises(ValueError, match="rank"):
        ox.transforms.unitwise_norm(np.ones((2,) * 6))
