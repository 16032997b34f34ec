"""Re-exports for this package's __init__ (one file per contributor area)."""

from optaxish.transforms._constraints import (
    NonNegativeParamsState as NonNegativeParamsState,
)
from optaxish.transforms._constraints import ZeroNansState as ZeroNansState
from optaxish.transforms._constraints import (
    keep_params_nonnegative as keep_params_nonnegative,
)
from optaxish.transforms._constraints import zero_nans as zero_nans
from optaxish.transforms._factorized import FactoredState as FactoredState
from optaxish.transforms._factorized import (
    scale_by_factored_rms as scale_by_factored_rms,
)
from optaxish.transforms._factorized import (
    scale_by_param_block_norm as scale_by_param_block_norm,
)
from optaxish.transforms._factorized import (
    scale_by_param_block_rms as scale_by_param_block_rms,
)
from optaxish.transforms._ftrl import ScaleByFtrlState as ScaleByFtrlState
from optaxish.transforms._ftrl import scale_by_ftrl as scale_by_ftrl
from optaxish.transforms._sign_noise import AddNoiseState as AddNoiseState
from optaxish.transforms._sign_noise import add_noise as add_noise
from optaxish.transforms._sign_noise import scale_by_sign as scale_by_sign
from optaxish.transforms._trust_ratio import (
    ScaleByTrustRatioState as ScaleByTrustRatioState,
)
from optaxish.transforms._trust_ratio import (
    scale_by_trust_ratio as scale_by_trust_ratio,
)
