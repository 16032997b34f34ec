"""Keras learning-rate schedules: ``tf.keras.optimizers.schedules`` on JAX.

Classes with tf-keras' signatures, defaults, config keys and float32 numbers,
written with ``jax.numpy`` so that a compiled optimizer step can call them
with a traced step. ``serialize``/``deserialize`` use tf-keras' dict form.

Examples:
  >>> from optaxish.optimizers import schedules
  >>> s = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
  >>> s2 = schedules.deserialize(schedules.serialize(s))
  >>> float(s2(10))
  0.05000000074505806
"""

from optaxish.optimizers.schedules._base import (
    LearningRateSchedule as LearningRateSchedule,
)
from optaxish.optimizers.schedules._base import deserialize as deserialize
from optaxish.optimizers.schedules._base import serialize as serialize
from optaxish.optimizers.schedules._cosine import CosineDecay as CosineDecay
from optaxish.optimizers.schedules._cosine import (
    CosineDecayRestarts as CosineDecayRestarts,
)
from optaxish.optimizers.schedules._decay import ExponentialDecay as ExponentialDecay
from optaxish.optimizers.schedules._decay import (
    InverseTimeDecay as InverseTimeDecay,
)
from optaxish.optimizers.schedules._decay import (
    PiecewiseConstantDecay as PiecewiseConstantDecay,
)
from optaxish.optimizers.schedules._decay import PolynomialDecay as PolynomialDecay

__all__ = [
    "CosineDecay",
    "CosineDecayRestarts",
    "ExponentialDecay",
    "InverseTimeDecay",
    "LearningRateSchedule",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "deserialize",
    "serialize",
]
