"""Re-exports for this package's __init__ (one file per contributor area)."""

from optaxish.aliases._adaptive import adam as adam
from optaxish.aliases._adaptive import adamax as adamax
from optaxish.aliases._adaptive import adamaxw as adamaxw
from optaxish.aliases._adaptive import adamw as adamw
from optaxish.aliases._adaptive import amsgrad as amsgrad
from optaxish.aliases._adaptive import nadam as nadam
from optaxish.aliases._adaptive import nadamw as nadamw
from optaxish.aliases._adaptive_more import adabelief as adabelief
from optaxish.aliases._adaptive_more import adadelta as adadelta
from optaxish.aliases._adaptive_more import adagrad as adagrad
from optaxish.aliases._adaptive_more import lion as lion
from optaxish.aliases._adaptive_more import novograd as novograd
from optaxish.aliases._adaptive_more import radam as radam
from optaxish.aliases._adaptive_more import rmsprop as rmsprop
from optaxish.aliases._adaptive_more import yogi as yogi
