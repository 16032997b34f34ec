"""Loss scaling and mixed precision for float16/bfloat16 training.

* Loss-scale values (pytrees, every field a leaf): :class:`NoOpLossScale`,
  :class:`StaticLossScale`, :class:`DynamicLossScale`.
* The wrapper :func:`loss_scaling` (and :func:`dynamic_loss_scaling`) that
  unscales gradients, skips non-finite steps and adjusts the scale with
  tf-keras ``LossScaleOptimizer``'s rule; its state is :class:`LossScalingState`.
  :func:`loss_scaling_step` is the fused update-and-apply for a hand-written
  training step.
* Helpers that find that state inside any optimizer state:
  :func:`get_loss_scale`, :func:`scale_loss`, :func:`unscale_gradients`,
  :func:`scaled_value_and_grad`, plus :func:`all_finite`.
* Mixed-precision policies (:class:`Policy`, :func:`get_policy`) and
  floating-point casts (:func:`cast_floating`, :func:`cast_to_full`, ...).
"""

from optaxish.loss_scale._helpers import find_loss_scale as find_loss_scale
from optaxish.loss_scale._helpers import (
    find_loss_scaling_state as find_loss_scaling_state,
)
from optaxish.loss_scale._helpers import get_loss_scale as get_loss_scale
from optaxish.loss_scale._helpers import scale_loss as scale_loss
from optaxish.loss_scale._helpers import scaled_value_and_grad as scaled_value_and_grad
from optaxish.loss_scale._helpers import unscale_gradients as unscale_gradients
from optaxish.loss_scale._policy import Policy as Policy
from optaxish.loss_scale._policy import cast_floating as cast_floating
from optaxish.loss_scale._policy import cast_to_bfloat16 as cast_to_bfloat16
from optaxish.loss_scale._policy import cast_to_full as cast_to_full
from optaxish.loss_scale._policy import cast_to_half as cast_to_half
from optaxish.loss_scale._policy import get_policy as get_policy
from optaxish.loss_scale._values import DynamicLossScale as DynamicLossScale
from optaxish.loss_scale._values import LossScale as LossScale
from optaxish.loss_scale._values import NoOpLossScale as NoOpLossScale
from optaxish.loss_scale._values import StaticLossScale as StaticLossScale
from optaxish.loss_scale._values import all_finite as all_finite
from optaxish.loss_scale._wrapper import LossScalingState as LossScalingState
from optaxish.loss_scale._wrapper import dynamic_loss_scaling as dynamic_loss_scaling
from optaxish.loss_scale._wrapper import loss_scaling as loss_scaling
from optaxish.loss_scale._wrapper import loss_scaling_step as loss_scaling_step

__all__ = sorted(n for n in dir() if not n.startswith("_"))
