"""optaxish: composable, compiled JAX optimizers.

The functional core follows optax's protocol, names and numbers, so
``import optaxish as optax`` works for existing optax optimizer code (losses,
``optax.contrib``, L-BFGS and the line searches are not provided).
"""

from optaxish import loss_scale as loss_scale
from optaxish import packing as packing
from optaxish import slots as slots
from optaxish import tree as tree
from optaxish import tree_utils as tree_utils
from optaxish._base import NO_PARAMS_MSG as NO_PARAMS_MSG
from optaxish._base import ArrayTree as ArrayTree
from optaxish._base import EmptyState as EmptyState
from optaxish._base import GradientTransformation as GradientTransformation
from optaxish._base import (
    GradientTransformationExtraArgs as GradientTransformationExtraArgs,
)
from optaxish._base import MaskOrFn as MaskOrFn
from optaxish._base import OptState as OptState
from optaxish._base import Params as Params
from optaxish._base import ScalarOrSchedule as ScalarOrSchedule
from optaxish._base import Schedule as Schedule
from optaxish._base import TransformInitFn as TransformInitFn
from optaxish._base import TransformUpdateExtraArgsFn as TransformUpdateExtraArgsFn
from optaxish._base import TransformUpdateFn as TransformUpdateFn
from optaxish._base import Updates as Updates
from optaxish._base import identity as identity
from optaxish._base import init_empty_state as init_empty_state
from optaxish._base import set_to_zero as set_to_zero
from optaxish._base import stateless as stateless
from optaxish._base import stateless_with_tree_map as stateless_with_tree_map
from optaxish._base import with_extra_args_support as with_extra_args_support
from optaxish._flax_serialization import (
    register_flax_serialization as register_flax_serialization,
)
from optaxish._numerics import abs_sq as abs_sq
from optaxish._numerics import safe_increment as safe_increment
from optaxish._numerics import safe_int32_increment as safe_int32_increment
from optaxish._numerics import safe_norm as safe_norm
from optaxish._numerics import safe_root_mean_squares as safe_root_mean_squares
from optaxish._update import apply_updates as apply_updates
from optaxish._update import incremental_update as incremental_update
from optaxish._update import periodic_update as periodic_update
from optaxish._variable import Variable as Variable
from optaxish.aliases import *  # noqa: F403
from optaxish.combinators import *  # noqa: F403
from optaxish.loss_scale import DynamicLossScale as DynamicLossScale
from optaxish.loss_scale import LossScalingState as LossScalingState
from optaxish.loss_scale import NoOpLossScale as NoOpLossScale
from optaxish.loss_scale import StaticLossScale as StaticLossScale
from optaxish.loss_scale import dynamic_loss_scaling as dynamic_loss_scaling
from optaxish.loss_scale import loss_scaling as loss_scaling
from optaxish.loss_scale import loss_scaling_step as loss_scaling_step
from optaxish.schedules import *  # noqa: F403
from optaxish.transforms import *  # noqa: F403
from optaxish.tree import bias_correction as bias_correction
from optaxish.tree import global_norm as global_norm
from optaxish.tree import update_infinity_moment as update_infinity_moment
from optaxish.tree import update_moment as update_moment
from optaxish.tree import update_moment_per_elem_norm as update_moment_per_elem_norm
from optaxish.tree_utils import tree_map_params as tree_map_params

__version__ = "0.1.0.dev0"

__all__ = sorted(n for n in dir() if not n.startswith("_"))


def __getattr__(name: str):
    # The Keras-style facade builds on the core; import it only when asked for,
    # so `import optaxish` stays a core-only import.
    if name in ("optimizers", "mixed_precision"):
        import importlib

        return importlib.import_module(f"optaxish.{name}")
    raise AttributeError(f"module 'optaxish' has no attribute {name!r}")
