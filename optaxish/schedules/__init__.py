"""Learning-rate schedules: pure functions of the step count, jit-safe.

Every schedule returns a float32 array (strongly typed: the type does not
depend on whether the step count is a Python int, an int32 array or a traced
value). optax's results are weakly typed for some count types and not for
others (``optax.linear_schedule(1.0, 0.0, 10)(3)`` is a weak float32, the same
call with ``jnp.int32(3)`` is not), so a value computed with a bfloat16 array
may stay bfloat16 with optax and become float32 here; the core transforms cast
the learning rate to the update's dtype either way.

Like ``optax.schedules``, this module also gives the hyperparameter-injection
names (``inject_hyperparams``, ``inject_stateful_hyperparams``, their states,
``StatefulSchedule``, ``WrappedSchedule``) and the ``Schedule`` type; they are
the same objects as at the top level.
"""

from optaxish._base import Schedule as Schedule
from optaxish.combinators._inject import (
    InjectHyperparamsState as InjectHyperparamsState,
)
from optaxish.combinators._inject import (
    InjectStatefulHyperparamsState as InjectStatefulHyperparamsState,
)
from optaxish.combinators._inject import StatefulSchedule as StatefulSchedule
from optaxish.combinators._inject import WrappedSchedule as WrappedSchedule
from optaxish.combinators._inject import inject_hyperparams as inject_hyperparams
from optaxish.combinators._inject import (
    inject_stateful_hyperparams as inject_stateful_hyperparams,
)
from optaxish.schedules._join import join_schedules as join_schedules
from optaxish.schedules._piecewise import (
    cosine_onecycle_schedule as cosine_onecycle_schedule,
)
from optaxish.schedules._piecewise import (
    linear_onecycle_schedule as linear_onecycle_schedule,
)
from optaxish.schedules._piecewise import (
    piecewise_constant_schedule as piecewise_constant_schedule,
)
from optaxish.schedules._piecewise import (
    piecewise_interpolate_schedule as piecewise_interpolate_schedule,
)
from optaxish.schedules._schedules import constant_schedule as constant_schedule
from optaxish.schedules._schedules import cosine_decay_schedule as cosine_decay_schedule
from optaxish.schedules._schedules import exponential_decay as exponential_decay
from optaxish.schedules._schedules import linear_schedule as linear_schedule
from optaxish.schedules._schedules import polynomial_schedule as polynomial_schedule
from optaxish.schedules._warmup import sgdr_schedule as sgdr_schedule
from optaxish.schedules._warmup import (
    warmup_constant_schedule as warmup_constant_schedule,
)
from optaxish.schedules._warmup import (
    warmup_cosine_decay_schedule as warmup_cosine_decay_schedule,
)
from optaxish.schedules._warmup import (
    warmup_exponential_decay_schedule as warmup_exponential_decay_schedule,
)
