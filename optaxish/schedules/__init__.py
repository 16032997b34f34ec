"""Learning-rate schedules: pure functions of the step count, jit-safe."""

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
