"""Re-exports for this package's __init__ (one file per contributor area)."""

from optaxish.transforms._gradient_ops_extras import (
    AdaptiveGradClipState as AdaptiveGradClipState,
)
from optaxish.transforms._gradient_ops_extras import (
    adaptive_grad_clip as adaptive_grad_clip,
)
from optaxish.transforms._gradient_ops_extras import centralize as centralize
from optaxish.transforms._gradient_ops_extras import (
    normalize_by_update_norm as normalize_by_update_norm,
)
from optaxish.transforms._gradient_ops_extras import unitwise_clip as unitwise_clip
from optaxish.transforms._gradient_ops_extras import unitwise_norm as unitwise_norm
from optaxish.transforms._gradient_ops_extras_utils import (
    per_example_global_norm_clip as per_example_global_norm_clip,
)
from optaxish.transforms._gradient_ops_extras_utils import (
    per_example_layer_norm_clip as per_example_layer_norm_clip,
)
from optaxish.transforms._gradient_ops_extras_utils import (
    scale_gradient as scale_gradient,
)
