"""Gradient transformations: one family per private module.

As ``optax.transforms``, the package also gives the combinators (``chain``,
``partition``, ``MultiSteps``, ...), the same objects as at the top level, so
``optax.transforms.X`` code runs under ``import optaxish as optax``.
"""

from optaxish.transforms._clipping import ClipByGlobalNormState as ClipByGlobalNormState
from optaxish.transforms._clipping import ClipState as ClipState
from optaxish.transforms._clipping import clip as clip
from optaxish.transforms._clipping import clip_by_block_rms as clip_by_block_rms
from optaxish.transforms._clipping import clip_by_global_norm as clip_by_global_norm
from optaxish.transforms._clipping import clip_by_norm as clip_by_norm
from optaxish.transforms._momentum import EmaState as EmaState
from optaxish.transforms._momentum import TraceState as TraceState
from optaxish.transforms._momentum import ema as ema
from optaxish.transforms._momentum import trace as trace
from optaxish.transforms._public_adaptive import *  # noqa: F403
from optaxish.transforms._public_extras_gradient_ops import *  # noqa: F403
from optaxish.transforms._public_extras_optimizers_1 import *  # noqa: F403
from optaxish.transforms._public_extras_optimizers_2 import *  # noqa: F403
from optaxish.transforms._public_misc import *  # noqa: F403
from optaxish.transforms._scaling import ScaleByScheduleState as ScaleByScheduleState
from optaxish.transforms._scaling import ScaleState as ScaleState
from optaxish.transforms._scaling import scale as scale
from optaxish.transforms._scaling import (
    scale_by_learning_rate as scale_by_learning_rate,
)
from optaxish.transforms._scaling import scale_by_schedule as scale_by_schedule
from optaxish.transforms._weight_decay import (
    AddDecayedWeightsState as AddDecayedWeightsState,
)
from optaxish.transforms._weight_decay import WeightDecaySchedule as WeightDecaySchedule
from optaxish.transforms._weight_decay import add_decayed_weights as add_decayed_weights

# optax.transforms also holds the combinators. They import this package's
# modules, so they are looked up on first access instead of imported here.
_COMBINATORS = frozenset(
    {
        "ApplyIfFiniteState",
        "ConditionFn",
        "ConditionallyMaskState",
        "ConditionallyTransformState",
        "MaskedNode",
        "MaskedState",
        "MonitorState",
        "MultiSteps",
        "MultiStepsState",
        "PartitionState",
        "ShouldSkipUpdateFunction",
        "SnapshotState",
        "apply_if_finite",
        "chain",
        "conditionally_mask",
        "conditionally_transform",
        "flatten",
        "freeze",
        "masked",
        "measure_with_ema",
        "monitor",
        "named_chain",
        "partition",
        "selective_transform",
        "skip_large_updates",
        "skip_not_finite",
        "snapshot",
    }
)


def __getattr__(name: str):
    if name in _COMBINATORS:
        from optaxish import combinators

        return getattr(combinators, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_COMBINATORS})
