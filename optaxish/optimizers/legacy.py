"""``tf.keras.optimizers.legacy``: the ``OptimizerV2`` classes by that name.

tf-keras 2.11+ moved the ``OptimizerV2`` optimizers here when it made the new
optimizers the default. The classes of :mod:`optaxish.optimizers` follow the
``OptimizerV2`` behaviour already (slots, ``get_updates``, ``decay``, configs
with ``module: keras.optimizers.legacy``), so these are the same classes:
code written for ``tf.keras.optimizers.legacy.Adam`` works unchanged.

Examples:
  >>> from optaxish import optimizers
  >>> from optaxish.optimizers import legacy
  >>> legacy.Adam is optimizers.Adam
  True
  >>> optimizers.serialize(legacy.SGD(0.1))["module"]
  'keras.optimizers.legacy'
"""

from optaxish.optimizers._adadelta import Adadelta as Adadelta
from optaxish.optimizers._adagrad import Adagrad as Adagrad
from optaxish.optimizers._adam import Adam as Adam
from optaxish.optimizers._adamax import Adamax as Adamax
from optaxish.optimizers._ftrl import Ftrl as Ftrl
from optaxish.optimizers._nadam import Nadam as Nadam
from optaxish.optimizers._optimizer import Optimizer as Optimizer
from optaxish.optimizers._rmsprop import RMSprop as RMSprop
from optaxish.optimizers._sgd import SGD as SGD

__all__ = [
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "Adamax",
    "Ftrl",
    "Nadam",
    "Optimizer",
    "RMSprop",
]
