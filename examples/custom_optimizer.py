"""A custom optimizer written the tf-keras way, compiled by optaxish.

Momentum SGD as a tf-keras user writes it: ``_set_hyper`` in ``__init__``,
``add_slot`` in ``_create_slots``, ``assign`` in ``_resource_apply_dense`` and
``_serialize_hyperparameter`` in ``get_config``. optaxish traces these methods
once into the optimizer's jitted step; changing ``opt.learning_rate`` later
does not retrace. Run it with ``python examples/custom_optimizer.py``.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from optaxish import Variable
from optaxish.optimizers import Optimizer


class MomentumSGD(Optimizer):
    """``m <- momentum * m - lr * g``; ``x <- x + m`` (tf-keras' momentum SGD)."""

    def __init__(
        self,
        learning_rate: Any = 0.01,
        momentum: float = 0.9,
        name: str = "MomentumSGD",
        **kwargs: Any,
    ) -> None:
        super().__init__(name, **kwargs)
        self._set_hyper("learning_rate", kwargs.get("lr", learning_rate))
        self._set_hyper("decay", self._initial_decay)
        self._set_hyper("momentum", momentum)

    def _create_slots(self, var_list: list[Variable]) -> None:
        for var in var_list:
            self.add_slot(var, "momentum")

    def _resource_apply_dense(self, grad: Any, var: Variable, apply_state: Any) -> None:
        lr = self._decayed_lr(var.dtype)
        momentum = self._get_hyper("momentum", var.dtype)
        m = self.get_slot(var, "momentum")
        m.assign(momentum * m - lr * grad)
        var.assign_add(m)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            learning_rate=self._serialize_hyperparameter("learning_rate"),
            decay=self._initial_decay,
            momentum=self._serialize_hyperparameter("momentum"),
        )
        return config


def train(steps: int = 100) -> tuple[np.ndarray, float, MomentumSGD]:
    """Fits ``y = 2 x - 1`` by least squares; returns (w, b), loss, optimizer."""
    x = np.linspace(-1.0, 1.0, 16, dtype=np.float32)
    y = 2.0 * x - 1.0
    w, b = Variable(0.0, name="w"), Variable(0.0, name="b")
    opt = MomentumSGD(learning_rate=0.1, momentum=0.9)

    def loss() -> Any:
        return jnp.mean((w * x + b - y) ** 2)

    for step in range(steps):
        if step == steps // 2:
            opt.learning_rate = 0.05  # no retrace: the rate lives in the state
        opt.minimize(loss, [w, b])
    return np.array([w.numpy(), b.numpy()]), float(loss()), opt


if __name__ == "__main__":
    params, final_loss, optimizer = train()
    print(f"w, b = {params.round(4)}, loss = {final_loss:.2e}")
    print(f"steps = {int(optimizer.iterations)}, traces = {optimizer._traces}")
    print("slots:", optimizer.get_slot_names(), optimizer.get_config())
