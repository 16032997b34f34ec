"""Keras-style optimizers: the stateful facade over the functional core.

``optaxish.optimizers`` mirrors ``tf.keras.optimizers``: optimizer classes
with slots, ``iterations``, ``minimize``/``apply_gradients`` and configs, plus
:mod:`optaxish.optimizers.schedules` (Keras learning-rate schedules). It
imports the core; the core never imports it.
"""

from optaxish.optimizers import schedules as schedules
from optaxish.optimizers._adam import Adam as Adam
from optaxish.optimizers._optimizer import Optimizer as Optimizer
from optaxish.optimizers._optimizer import OptimizerState as OptimizerState
from optaxish.optimizers._sgd import SGD as SGD
