"""Loader for the tf-keras golden trajectories in ``tests/fixtures/keras/``.

The JSON files are written by ``tools/make_keras_fixtures.py`` (run with
TensorFlow and tf-keras in a separate environment); reading them needs only
numpy. A case id is ``"<file stem>/<case name>"``, e.g. ``"sgd/sgd_nesterov"``.

>>> "adam/adam_amsgrad" in list_cases()
True
>>> case = load_case("adam/adam_amsgrad")
>>> case.optimizer["class_name"], case.optimizer["kwargs"]["amsgrad"]
('Adam', True)
>>> case.num_steps, case.shapes
(20, [(3,), (2, 2), ()])
>>> case.grads[1].shape, case.params[1].dtype  # (steps, *shape) per variable
((20, 2, 2), dtype('float32'))
>>> sorted(name for _, name in case.slots)[:3]
['m', 'm', 'm']
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "keras"
EXTRA_FILES = ("seed_examples", "spec_checks")


def decode(x: Any) -> Any:
    """JSON value -> Python value, with ``"nan"``/``"inf"``/``"-inf"`` as floats."""
    if isinstance(x, list):
        return [decode(v) for v in x]
    if isinstance(x, str) and x in ("nan", "inf", "-inf"):
        return float(x)
    return x


def to_array(values: list, shape, dtype=np.float32) -> np.ndarray:
    """A flat JSON list -> an array of ``shape`` and ``dtype``."""
    return np.asarray(decode(values), dtype=np.float64).astype(dtype).reshape(shape)


@cache
def load_file(stem: str) -> dict:
    """The raw JSON of ``tests/fixtures/keras/<stem>.json``."""
    return json.loads((FIXTURE_DIR / f"{stem}.json").read_text())


def trajectory_files() -> list[str]:
    """Stems of the trajectory files (everything but the example files)."""
    stems = sorted(p.stem for p in FIXTURE_DIR.glob("*.json"))
    return [s for s in stems if s not in EXTRA_FILES]


def list_cases(stem: str | None = None) -> list[str]:
    """Case ids ``"<stem>/<name>"``, of one file or of all files."""
    stems = [stem] if stem is not None else trajectory_files()
    return [f"{s}/{c['name']}" for s in stems for c in load_file(s)["cases"]]


def raw_case(case_id: str) -> dict:
    """The JSON dict of one case."""
    stem, name = case_id.split("/")
    for c in load_file(stem)["cases"]:
        if c["name"] == name:
            return c
    raise KeyError(case_id)


@dataclass(frozen=True)
class KerasCase:
    """One tf-keras trajectory as numpy arrays.

    Attributes:
      case_id: ``"<file stem>/<case name>"``.
      optimizer: ``{"api", "class_path", "class_name", "kwargs"}``; a schedule
        in ``kwargs`` is ``{"class_name", "config"}``.
      loss_scale: ``None`` or the ``LossScaleOptimizer`` kwargs.
      features: option tags (``"momentum"``, ``"schedule:CosineDecay"``, ...).
      names, shapes, constraints: per variable.
      init: float32 initial values, per variable.
      grads: per variable, ``(num_steps, *shape)`` float32 gradients given to
        ``apply_gradients`` (non-finite values included).
      params: per variable, ``(num_steps, *shape)`` float32 values after each step.
      iterations: ``(num_steps,)`` int64 ``iterations`` after each step.
      lr: ``(num_steps,)`` learning rate used by each step (legacy) or ``None``.
      loss_scale_values, dynamic_counter, grads_finite: per step (loss-scale cases).
      slots: ``{(variable index, tf-keras slot name): array}`` after the run.
      weight_names, weights: ``opt.weights`` names and ``get_weights()`` arrays
        (for ``"new"`` optimizers: ``opt.variables``).
      slot_names: ``get_slot_names()`` (``None`` for ``"new"`` optimizers).
      config: ``get_config()`` (JSON-safe).
      raw: the JSON dict.
    """

    case_id: str
    optimizer: dict
    loss_scale: dict | None
    features: list
    names: list
    shapes: list
    constraints: list
    init: list
    grads: list
    params: list
    iterations: np.ndarray
    lr: np.ndarray | None
    loss_scale_values: np.ndarray | None
    dynamic_counter: np.ndarray | None
    grads_finite: np.ndarray | None
    slots: dict
    weight_names: list
    weights: list
    slot_names: list | None
    config: dict
    raw: dict

    @property
    def num_steps(self) -> int:
        return len(self.iterations)

    def step_grads(self, t: int) -> list:
        """The gradients of step ``t`` (0-based), one array per variable."""
        return [g[t] for g in self.grads]


def load_case(case_id: str) -> KerasCase:
    """Loads one case (see :class:`KerasCase`)."""
    c = raw_case(case_id)
    shapes = [tuple(v["shape"]) for v in c["variables"]]
    steps = c["steps"]
    n = len(steps)
    grads = [
        to_array([g[i] for g in c["grads"]], (len(c["grads"]), *s))
        for i, s in enumerate(shapes)
    ]
    params = [
        to_array([st["variables"][i] for st in steps], (n, *s))
        for i, s in enumerate(shapes)
    ]
    lso = c["loss_scale"] is not None
    final = c["final"]
    weights = [
        to_array(w["value"], tuple(w["shape"]), np.dtype(w["dtype"]))
        for w in final["weights"]
    ]
    return KerasCase(
        case_id=case_id,
        optimizer=c["optimizer"],
        loss_scale=c["loss_scale"],
        features=c["features"],
        names=[v["name"] for v in c["variables"]],
        shapes=shapes,
        constraints=[v["constraint"] for v in c["variables"]],
        init=[to_array(v["init"], s) for v, s in zip(c["variables"], shapes)],
        grads=grads,
        params=params,
        iterations=np.array([st["iterations"] for st in steps], np.int64),
        lr=np.array([st["lr"] for st in steps]) if "lr" in steps[0] else None,
        loss_scale_values=(
            np.array([st["loss_scale"] for st in steps], np.float32) if lso else None
        ),
        dynamic_counter=(
            np.array([st["dynamic_counter"] or 0 for st in steps], np.int64)
            if lso
            else None
        ),
        grads_finite=(np.array([st["grads_finite"] for st in steps]) if lso else None),
        slots={
            (s["var"], s["slot"]): to_array(s["value"], tuple(s["shape"]))
            for s in final["slots"]
        },
        weight_names=[w["name"] for w in final["weights"]],
        weights=weights,
        slot_names=final["slot_names"],
        config=final["config"],
        raw=c,
    )


def seed_examples() -> dict:
    """``{name: example}`` from ``seed_examples.json``."""
    return {e["name"]: e for e in load_file("seed_examples")["examples"]}


def spec_checks() -> dict:
    """The JSON of ``spec_checks.json`` (§2 3-step goldens and §5 examples)."""
    return load_file("spec_checks")


def replay_and_compare(case: KerasCase, opt: Any, variables: list) -> None:
    """Applies the case's gradients step by step and compares with tf-keras.

    Checks every variable after every step (rtol 1e-5) and ``iterations``, then
    the final slots by tf-keras slot name.
    """
    for t in range(case.num_steps):
        opt.apply_gradients(zip(case.step_grads(t), variables, strict=True))
        for i, v in enumerate(variables):
            np.testing.assert_allclose(
                v.numpy(),
                case.params[i][t],
                rtol=1e-5,
                atol=1e-6,
                err_msg=f"{case.case_id}: variable {i} after step {t + 1}",
            )
        assert int(opt.iterations) == case.iterations[t]
    for (i, name), value in case.slots.items():
        np.testing.assert_allclose(
            opt.get_slot(variables[i], name), value, rtol=1e-5, atol=1e-6
        )
