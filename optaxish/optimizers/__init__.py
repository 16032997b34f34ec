"""Keras-style optimizers: the stateful facade over the functional core.

``optaxish.optimizers`` mirrors ``tf.keras.optimizers``: optimizer classes
with slots, ``iterations``, ``minimize``/``apply_gradients`` and configs, plus
:mod:`optaxish.optimizers.schedules` (Keras learning-rate schedules) and
:mod:`optaxish.optimizers.legacy` (tf-keras 2.11+'s name for them). It
imports the core; the core never imports it.
"""

from optaxish.optimizers import legacy as legacy
from optaxish.optimizers import schedules as schedules
from optaxish.optimizers._adadelta import Adadelta as Adadelta
from optaxish.optimizers._adafactor import Adafactor as Adafactor
from optaxish.optimizers._adagrad import Adagrad as Adagrad
from optaxish.optimizers._adam import Adam as Adam
from optaxish.optimizers._adamax import Adamax as Adamax
from optaxish.optimizers._adamw import AdamW as AdamW
from optaxish.optimizers._aggregation import (
    all_reduce_sum_gradients as all_reduce_sum_gradients,
)
from optaxish.optimizers._aggregation import axis_is_bound as axis_is_bound
from optaxish.optimizers._ftrl import Ftrl as Ftrl
from optaxish.optimizers._lion import Lion as Lion
from optaxish.optimizers._nadam import Nadam as Nadam
from optaxish.optimizers._optimizer import Optimizer as Optimizer
from optaxish.optimizers._optimizer import OptimizerState as OptimizerState
from optaxish.optimizers._registry import deserialize as deserialize
from optaxish.optimizers._registry import get as get
from optaxish.optimizers._registry import register_optimizer as register_optimizer
from optaxish.optimizers._registry import serialize as serialize
from optaxish.optimizers._rmsprop import RMSprop as RMSprop
from optaxish.optimizers._sgd import SGD as SGD

RMSProp = RMSprop  # tf-keras also exports this spelling
