"""Re-exports for this package's __init__ (one file per contributor area)."""

from optaxish.combinators._accumulation import MultiSteps as MultiSteps
from optaxish.combinators._accumulation import MultiStepsState as MultiStepsState
from optaxish.combinators._accumulation import (
    ShouldSkipUpdateFunction as ShouldSkipUpdateFunction,
)
from optaxish.combinators._accumulation import skip_large_updates as skip_large_updates
from optaxish.combinators._accumulation import skip_not_finite as skip_not_finite
from optaxish.combinators._conditionality import (
    ApplyIfFiniteState as ApplyIfFiniteState,
)
from optaxish.combinators._conditionality import (
    ConditionallyMaskState as ConditionallyMaskState,
)
from optaxish.combinators._conditionality import (
    ConditionallyTransformState as ConditionallyTransformState,
)
from optaxish.combinators._conditionality import ConditionFn as ConditionFn
from optaxish.combinators._conditionality import apply_if_finite as apply_if_finite
from optaxish.combinators._conditionality import (
    conditionally_mask as conditionally_mask,
)
from optaxish.combinators._conditionality import (
    conditionally_transform as conditionally_transform,
)
from optaxish.combinators._inject import (
    InjectHyperparamsState as InjectHyperparamsState,
)
from optaxish.combinators._inject import (
    InjectStatefulHyperparamsState as InjectStatefulHyperparamsState,
)
from optaxish.combinators._inject import StatefulSchedule as StatefulSchedule
from optaxish.combinators._inject import WrappedSchedule as WrappedSchedule
from optaxish.combinators._inject import WrappedScheduleState as WrappedScheduleState
from optaxish.combinators._inject import inject_hyperparams as inject_hyperparams
from optaxish.combinators._inject import (
    inject_stateful_hyperparams as inject_stateful_hyperparams,
)
from optaxish.combinators._masking import MaskedNode as MaskedNode
from optaxish.combinators._masking import MaskedState as MaskedState
from optaxish.combinators._masking import freeze as freeze
from optaxish.combinators._masking import masked as masked
from optaxish.combinators._partition import MultiTransformState as MultiTransformState
from optaxish.combinators._partition import PartitionState as PartitionState
from optaxish.combinators._partition import multi_transform as multi_transform
from optaxish.combinators._partition import partition as partition
from optaxish.combinators._partition import selective_transform as selective_transform
