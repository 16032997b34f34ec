"""Mixed precision, Keras-style: ``LossScaleOptimizer`` and dtype policies.

``optaxish.mixed_precision`` mirrors ``tf.keras.mixed_precision``:
:class:`LossScaleOptimizer` (TF 2.4+ signature), :class:`Policy`,
:func:`global_policy` and :func:`set_global_policy`, and
:mod:`optaxish.mixed_precision.experimental` (TF 2.2's
``LossScaleOptimizer(optimizer, loss_scale)``). A thin facade over the core's
:mod:`optaxish.loss_scale`; the core never imports it.
"""

from optaxish.mixed_precision import experimental as experimental
from optaxish.mixed_precision._loss_scale_optimizer import (
    LossScaleOptimizer as LossScaleOptimizer,
)
from optaxish.mixed_precision._lso_functional import (
    LossScaleOptimizerState as LossScaleOptimizerState,
)
from optaxish.mixed_precision._policy import Policy as Policy
from optaxish.mixed_precision._policy import global_policy as global_policy
from optaxish.mixed_precision._policy import set_global_policy as set_global_policy

__all__ = [
    "LossScaleOptimizer",
    "LossScaleOptimizerState",
    "Policy",
    "experimental",
    "global_policy",
    "set_global_policy",
]
