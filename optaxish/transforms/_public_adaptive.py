"""Re-exports for this package's __init__ (one file per contributor area)."""

from optaxish.transforms._adam import ScaleByAdamState as ScaleByAdamState
from optaxish.transforms._adam import ScaleByAmsgradState as ScaleByAmsgradState
from optaxish.transforms._adam import ScaleByNadamState as ScaleByNadamState
from optaxish.transforms._adam import scale_by_adam as scale_by_adam
from optaxish.transforms._adam import scale_by_amsgrad as scale_by_amsgrad
from optaxish.transforms._adam_variants import ScaleByBeliefState as ScaleByBeliefState
from optaxish.transforms._adam_variants import scale_by_adamax as scale_by_adamax
from optaxish.transforms._adam_variants import scale_by_belief as scale_by_belief
from optaxish.transforms._adam_variants import scale_by_radam as scale_by_radam
from optaxish.transforms._adam_variants import scale_by_yogi as scale_by_yogi
from optaxish.transforms._lion_novograd import ScaleByLionState as ScaleByLionState
from optaxish.transforms._lion_novograd import (
    ScaleByNovogradState as ScaleByNovogradState,
)
from optaxish.transforms._lion_novograd import scale_by_lion as scale_by_lion
from optaxish.transforms._lion_novograd import scale_by_novograd as scale_by_novograd
from optaxish.transforms._rms import ScaleByAdaDeltaState as ScaleByAdaDeltaState
from optaxish.transforms._rms import ScaleByRmsState as ScaleByRmsState
from optaxish.transforms._rms import (
    ScaleByRmsWithCountState as ScaleByRmsWithCountState,
)
from optaxish.transforms._rms import ScaleByRssState as ScaleByRssState
from optaxish.transforms._rms import ScaleByRStdDevState as ScaleByRStdDevState
from optaxish.transforms._rms import (
    ScaleByRStdDevWithCountState as ScaleByRStdDevWithCountState,
)
from optaxish.transforms._rms import scale_by_adadelta as scale_by_adadelta
from optaxish.transforms._rms import scale_by_rms as scale_by_rms
from optaxish.transforms._rms import scale_by_rss as scale_by_rss
from optaxish.transforms._rms import scale_by_stddev as scale_by_stddev
