"""Re-exports for this package's __init__ (one file per contributor area)."""

from optaxish.aliases._misc import adafactor as adafactor
from optaxish.aliases._misc import ftrl as ftrl
from optaxish.aliases._misc import lamb as lamb
from optaxish.aliases._misc import lars as lars
from optaxish.aliases._misc import noisy_sgd as noisy_sgd
from optaxish.aliases._misc import sgd as sgd
from optaxish.aliases._misc import sign_sgd as sign_sgd
